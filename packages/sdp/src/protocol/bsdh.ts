// The Base Sockets Direct Header (IBTA Annex A4): the 16 bytes that open
// every SDP message, big-endian on the wire.
//
//   0  MID        u8   message id
//   1  Flags      u8   OOB_PRES, OOB_PEND, REQ_PIPE
//   2  Bufs       u16  receive buffers the sender has posted (credits)
//   4  Len        u32  length of the whole message, BSDH included
//   8  MSeq       u32  sequence number of this message
//  12  MSeqAck    u32  MSeq of the last message the sender received

import { SdpProtocolError } from '../errors.js';

export const BSDH_SIZE = 16;

/** Message ids (BSDH.MID). */
export const Mid = {
  Hello: 0x00,
  HelloAck: 0x01,
  DisConn: 0x02,
  AbortConn: 0x03,
  SendSM: 0x04,
  RdmaWrCompl: 0x05,
  RdmaRdCompl: 0x06,
  ModeChange: 0x07,
  SrcAvailCancel: 0x08,
  SinkAvailCancel: 0x09,
  SinkCancelAck: 0x0a,
  ChRcvBuf: 0x0b,
  ChRcvBufAck: 0x0c,
  SuspComm: 0x0d,
  SuspCommAck: 0x0e,
  SinkAvail: 0xfd,
  SrcAvail: 0xfe,
  Data: 0xff,
} as const;

export type MidName = keyof typeof Mid;

const midNames = new Map<number, MidName>(Object.entries(Mid).map(([k, v]) => [v, k as MidName]));

/** The name of a message id, or undefined for a reserved or experimental one. */
export function midName(mid: number): MidName | undefined {
  return midNames.get(mid);
}

/** BSDH.Flags bits. */
export const BsdhFlags = {
  OOB_PRES: 0x01,
  OOB_PEND: 0x02,
  REQ_PIPE: 0x04,
} as const;

export interface Bsdh {
  mid: number;
  flags: number;
  bufs: number;
  len: number;
  mseq: number;
  mseqAck: number;
}

export function newBsdh(): Bsdh {
  return { mid: 0, flags: 0, bufs: 0, len: 0, mseq: 0, mseqAck: 0 };
}

/** Writes a BSDH at buf[offset]; allocation-free (it runs for every message sent). */
export function writeBsdh(buf: Uint8Array, offset: number, mid: number, flags: number, bufs: number, len: number, mseq: number, mseqAck: number): void {
  buf[offset] = mid;
  buf[offset + 1] = flags;
  buf[offset + 2] = bufs >>> 8;
  buf[offset + 3] = bufs;
  writeU32(buf, offset + 4, len);
  writeU32(buf, offset + 8, mseq);
  writeU32(buf, offset + 12, mseqAck);
}

/**
 * Reads the BSDH at buf[offset .. offset+length) into `out`. `length` is how
 * many bytes arrived; a header whose Len disagrees with it is refused, as
 * is anything shorter than a BSDH.
 */
export function readBsdh(buf: Uint8Array, offset: number, length: number, out: Bsdh = newBsdh()): Bsdh {
  if (length < BSDH_SIZE) throw new SdpProtocolError(`an SDP message of ${length} bytes is shorter than the ${BSDH_SIZE}-byte BSDH`);
  out.mid = buf[offset]!;
  out.flags = buf[offset + 1]!;
  out.bufs = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  out.len = readU32(buf, offset + 4);
  out.mseq = readU32(buf, offset + 8);
  out.mseqAck = readU32(buf, offset + 12);
  if (out.len !== length) throw new SdpProtocolError(`BSDH.Len ${out.len} does not match the ${length} bytes received (MID 0x${out.mid.toString(16)})`);
  return out;
}

export function writeU32(buf: Uint8Array, offset: number, v: number): void {
  buf[offset] = v >>> 24;
  buf[offset + 1] = v >>> 16;
  buf[offset + 2] = v >>> 8;
  buf[offset + 3] = v;
}

export function readU32(buf: Uint8Array, offset: number): number {
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

export function writeU16(buf: Uint8Array, offset: number, v: number): void {
  buf[offset] = v >>> 8;
  buf[offset + 1] = v;
}

export function readU16(buf: Uint8Array, offset: number): number {
  return (buf[offset]! << 8) | buf[offset + 1]!;
}
