import { readU16, readU24, writeU16, writeU24 } from './big-endian.js';

// Base Transport Header, 12 bytes:
//   0: OpCode
//   1: SE(7) M(6) PadCnt(5:4) TVer(3:0)
//   2: P_Key(16)
//   4: F(7) B(6) resv6 — RoCEv2 annex A17 gives the old resv8a byte's top
//      bits to FECN/BECN; the whole byte is outside the ICRC
//   5: DestQP(24)
//   8: A(7) resv7
//   9: PSN(24)

export interface BthFields {
  opcode: number;
  /** Solicited event. */
  se: boolean;
  migReq: boolean;
  padCount: number;
  tver: number;
  pkey: number;
  fecn: boolean;
  becn: boolean;
  destQp: number;
  /** Acknowledge request (the A bit). */
  ackReq: boolean;
  psn: number;
}

export function writeBth(b: Uint8Array, o: number, h: BthFields): void {
  b[o] = h.opcode;
  b[o + 1] = (h.se ? 0x80 : 0) | (h.migReq ? 0x40 : 0) | ((h.padCount & 3) << 4) | (h.tver & 0xf);
  writeU16(b, o + 2, h.pkey);
  b[o + 4] = (h.fecn ? 0x80 : 0) | (h.becn ? 0x40 : 0);
  writeU24(b, o + 5, h.destQp);
  b[o + 8] = h.ackReq ? 0x80 : 0;
  writeU24(b, o + 9, h.psn);
}

export function readBth(b: Uint8Array, o: number, out: BthFields): void {
  const b1 = b[o + 1]!;
  const b4 = b[o + 4]!;
  out.opcode = b[o]!;
  out.se = (b1 & 0x80) !== 0;
  out.migReq = (b1 & 0x40) !== 0;
  out.padCount = (b1 >>> 4) & 3;
  out.tver = b1 & 0xf;
  out.pkey = readU16(b, o + 2);
  out.fecn = (b4 & 0x80) !== 0;
  out.becn = (b4 & 0x40) !== 0;
  out.destQp = readU24(b, o + 5);
  out.ackReq = (b[o + 8]! & 0x80) !== 0;
  out.psn = readU24(b, o + 9);
}

export function setBthPadCount(b: Uint8Array, o: number, pad: number): void {
  b[o + 1] = (b[o + 1]! & 0xcf) | ((pad & 3) << 4);
}

// Peeks for dispatch and retransmission, which need one field without a
// full decode.

export function bthDestQp(b: Uint8Array, o: number): number {
  return readU24(b, o + 5);
}

export function bthPsn(b: Uint8Array, o: number): number {
  return readU24(b, o + 9);
}

export function setBthPsn(b: Uint8Array, o: number, psn: number): void {
  writeU24(b, o + 9, psn);
}

export function setBthAckReq(b: Uint8Array, o: number, ackReq: boolean): void {
  b[o + 8] = ackReq ? b[o + 8]! | 0x80 : b[o + 8]! & 0x7f;
}
