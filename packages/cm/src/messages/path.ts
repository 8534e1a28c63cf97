// The 44-byte path description a REQ carries twice (primary and alternate).

import { getBits, getBytes, getU16, getU32, getU8, setBits, setBytes, setU16, setU32, setU8 } from '../fields.js';

export interface CmPath {
  localLid: number;
  remoteLid: number;
  localGid: Uint8Array;
  remoteGid: Uint8Array;
  flowLabel: number;
  packetRate: number;
  trafficClass: number;
  hopLimit: number;
  sl: number;
  subnetLocal: number;
  /** Local ACK timeout exponent (4.096 µs · 2^n). */
  localAckTimeout: number;
}

export function emptyPath(): CmPath {
  return {
    localLid: 0,
    remoteLid: 0,
    localGid: new Uint8Array(16),
    remoteGid: new Uint8Array(16),
    flowLabel: 0,
    packetRate: 0,
    trafficClass: 0,
    hopLimit: 0,
    sl: 0,
    subnetLocal: 0,
    localAckTimeout: 0,
  };
}

export function writePath(m: Uint8Array, o: number, p: CmPath): void {
  setU16(m, o, p.localLid);
  setU16(m, o + 2, p.remoteLid);
  setBytes(m, o + 4, 16, p.localGid);
  setBytes(m, o + 20, 16, p.remoteGid);
  setU32(m, o + 36, (p.flowLabel & 0xfffff) << 12);
  setBits(m, o + 39, 2, 6, p.packetRate);
  setU8(m, o + 40, p.trafficClass);
  setU8(m, o + 41, p.hopLimit);
  setBits(m, o + 42, 0, 4, p.sl);
  setBits(m, o + 42, 4, 1, p.subnetLocal);
  setBits(m, o + 43, 0, 5, p.localAckTimeout);
}

export function readPath(m: Uint8Array, o: number): CmPath {
  return {
    localLid: getU16(m, o),
    remoteLid: getU16(m, o + 2),
    localGid: getBytes(m, o + 4, 16),
    remoteGid: getBytes(m, o + 20, 16),
    flowLabel: getU32(m, o + 36) >>> 12,
    packetRate: getBits(m, o + 39, 2, 6),
    trafficClass: getU8(m, o + 40),
    hopLimit: getU8(m, o + 41),
    sl: getBits(m, o + 42, 0, 4),
    subnetLocal: getBits(m, o + 42, 4, 1),
    localAckTimeout: getBits(m, o + 43, 0, 5),
  };
}
