// REQ: IBTA vol. 1 §12.6.5, table 106.

import { getBits, getBytes, getU24, getU32, getU64, getU8, getU16, setBits, setBytes, setU16, setU24, setU32, setU64, setU8 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';
import { emptyPath, readPath, writePath, type CmPath } from './path.js';

export const REQ_PRIVATE_DATA_SIZE = 92;

/** Transport Service Type of a REQ. */
export const CmTransport = { RC: 0, UC: 1, RD: 2 } as const;

export interface ReqMsg {
  localCommId: number;
  serviceId: bigint;
  localCaGuid: bigint;
  localQkey: number;
  localQpn: number;
  responderResources: number;
  localEecn: number;
  initiatorDepth: number;
  remoteEecn: number;
  /** How long the passive side may take to answer (exponent, 4.096 µs · 2^n). */
  remoteCmResponseTimeout: number;
  transportServiceType: number;
  endToEndFlowControl: number;
  startingPsn: number;
  /** How long the active side may take to answer the REP. */
  localCmResponseTimeout: number;
  retryCount: number;
  pkey: number;
  pathMtu: number;
  rdcExists: number;
  rnrRetryCount: number;
  maxCmRetries: number;
  srq: number;
  extendedTransportType: number;
  primary: CmPath;
  alternate: CmPath;
  privateData: Uint8Array;
}

export function newReq(): ReqMsg {
  return {
    localCommId: 0,
    serviceId: 0n,
    localCaGuid: 0n,
    localQkey: 0,
    localQpn: 0,
    responderResources: 0,
    localEecn: 0,
    initiatorDepth: 0,
    remoteEecn: 0,
    remoteCmResponseTimeout: 0,
    transportServiceType: CmTransport.RC,
    endToEndFlowControl: 0,
    startingPsn: 0,
    localCmResponseTimeout: 0,
    retryCount: 0,
    pkey: 0xffff,
    pathMtu: 0,
    rdcExists: 0,
    rnrRetryCount: 0,
    maxCmRetries: 0,
    srq: 0,
    extendedTransportType: 0,
    primary: emptyPath(),
    alternate: emptyPath(),
    privateData: new Uint8Array(REQ_PRIVATE_DATA_SIZE),
  };
}

export function encodeReq(r: ReqMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.REQ, tid);
  setU32(m, 0, r.localCommId);
  setU64(m, 8, r.serviceId);
  setU64(m, 16, r.localCaGuid);
  setU32(m, 28, r.localQkey);
  setU24(m, 32, r.localQpn);
  setU8(m, 35, r.responderResources);
  setU24(m, 36, r.localEecn);
  setU8(m, 39, r.initiatorDepth);
  setU24(m, 40, r.remoteEecn);
  setBits(m, 43, 0, 5, r.remoteCmResponseTimeout);
  setBits(m, 43, 5, 2, r.transportServiceType);
  setBits(m, 43, 7, 1, r.endToEndFlowControl);
  setU24(m, 44, r.startingPsn);
  setBits(m, 47, 0, 5, r.localCmResponseTimeout);
  setBits(m, 47, 5, 3, r.retryCount);
  setU16(m, 48, r.pkey);
  setBits(m, 50, 0, 4, r.pathMtu);
  setBits(m, 50, 4, 1, r.rdcExists);
  setBits(m, 50, 5, 3, r.rnrRetryCount);
  setBits(m, 51, 0, 4, r.maxCmRetries);
  setBits(m, 51, 4, 1, r.srq);
  setBits(m, 51, 5, 3, r.extendedTransportType);
  writePath(m, 52, r.primary);
  writePath(m, 96, r.alternate);
  setBytes(m, 140, REQ_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeReq(m: Uint8Array): ReqMsg {
  return {
    localCommId: getU32(m, 0),
    serviceId: getU64(m, 8),
    localCaGuid: getU64(m, 16),
    localQkey: getU32(m, 28),
    localQpn: getU24(m, 32),
    responderResources: getU8(m, 35),
    localEecn: getU24(m, 36),
    initiatorDepth: getU8(m, 39),
    remoteEecn: getU24(m, 40),
    remoteCmResponseTimeout: getBits(m, 43, 0, 5),
    transportServiceType: getBits(m, 43, 5, 2),
    endToEndFlowControl: getBits(m, 43, 7, 1),
    startingPsn: getU24(m, 44),
    localCmResponseTimeout: getBits(m, 47, 0, 5),
    retryCount: getBits(m, 47, 5, 3),
    pkey: getU16(m, 48),
    pathMtu: getBits(m, 50, 0, 4),
    rdcExists: getBits(m, 50, 4, 1),
    rnrRetryCount: getBits(m, 50, 5, 3),
    maxCmRetries: getBits(m, 51, 0, 4),
    srq: getBits(m, 51, 4, 1),
    extendedTransportType: getBits(m, 51, 5, 3),
    primary: readPath(m, 52),
    alternate: readPath(m, 96),
    privateData: getBytes(m, 140, REQ_PRIVATE_DATA_SIZE),
  };
}
