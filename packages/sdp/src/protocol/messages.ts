// The SDP messages that follow the BSDH over the QP, written straight into
// registered send buffers (no allocation on the data path).
//
// Data         BSDH, then the payload (none: a credit update, as OFED sent them)
// SinkAvailCancel BSDH only; with no SinkAvail outstanding it cancels nothing,
//              and this implementation sends it as its credit update
// DisConn      BSDH only: the sender will send no more data (half-close)
// AbortConn    BSDH only: the connection is reset
// SrcAvail     BSDH, SrcAH { Len u32, RKey u32, VAddr u64 }, then the first
//              bytes of the advertised buffer in line. Len counts every
//              advertised byte, the in-line ones included; the sink RDMA
//              READs the rest from VAddr + (in-line bytes).
// RdmaRdCompl  BSDH, RRCH { Len u32 }: bytes of the current SrcAvail the sink
//              has read. Padded with zeros to 64 bytes: Wireshark's SDP
//              dissector reads a 48-byte header after the BSDH.
// ChRcvBuf     BSDH, { Size u32 }: asks the peer to resize its receive buffers.

import { SdpProtocolError } from '../errors.js';
import { BSDH_SIZE, Mid, readU32, writeBsdh, writeU32 } from './bsdh.js';

export const SRCAH_SIZE = 16;
export const SRC_AVAIL_HEADER_SIZE = BSDH_SIZE + SRCAH_SIZE;
/**
 * Bytes a SrcAvail carries in line at least (when the buffer has them): with
 * fewer the message is under 64 bytes and Wireshark's dissector, which reads
 * a 48-byte SrcAH, reports it malformed.
 */
export const SRC_AVAIL_MIN_INLINE = 32;
export const RDMA_RD_COMPL_SIZE = 64;
export const CH_RCV_BUF_SIZE = BSDH_SIZE + 4;

export interface SrcAvail {
  /** Advertised bytes, the in-line ones included. */
  len: number;
  rkey: number;
  vaddr: number;
  /** Bytes that follow the SrcAH in this message. */
  inlineLen: number;
}

/** Writes a SrcAvail's BSDH and SrcAH; the caller copies `inlineLen` bytes to buf[offset+32]. */
export function writeSrcAvail(buf: Uint8Array, offset: number, bufs: number, mseq: number, mseqAck: number, sa: SrcAvail): void {
  writeBsdh(buf, offset, Mid.SrcAvail, 0, bufs, SRC_AVAIL_HEADER_SIZE + sa.inlineLen, mseq, mseqAck);
  writeU32(buf, offset + 16, sa.len);
  writeU32(buf, offset + 20, sa.rkey);
  writeU64(buf, offset + 24, sa.vaddr);
}

/** Reads the SrcAH of a SrcAvail whose BSDH said `len` bytes. */
export function readSrcAvail(buf: Uint8Array, offset: number, len: number, out: SrcAvail): SrcAvail {
  if (len < SRC_AVAIL_HEADER_SIZE) throw new SdpProtocolError(`SrcAvail of ${len} bytes is shorter than its ${SRC_AVAIL_HEADER_SIZE}-byte headers`);
  out.len = readU32(buf, offset + 16);
  out.rkey = readU32(buf, offset + 20);
  out.vaddr = readU64(buf, offset + 24);
  out.inlineLen = len - SRC_AVAIL_HEADER_SIZE;
  if (out.inlineLen > out.len) throw new SdpProtocolError(`SrcAvail carries ${out.inlineLen} bytes in line but advertises only ${out.len}`);
  return out;
}

export function writeRdmaRdCompl(buf: Uint8Array, offset: number, bufs: number, mseq: number, mseqAck: number, len: number): void {
  buf.fill(0, offset, offset + RDMA_RD_COMPL_SIZE);
  writeBsdh(buf, offset, Mid.RdmaRdCompl, 0, bufs, RDMA_RD_COMPL_SIZE, mseq, mseqAck);
  writeU32(buf, offset + 16, len);
}

export function readRdmaRdCompl(buf: Uint8Array, offset: number, len: number): number {
  if (len < BSDH_SIZE + 4) throw new SdpProtocolError(`RdmaRdCompl of ${len} bytes is shorter than ${BSDH_SIZE + 4}`);
  return readU32(buf, offset + 16);
}

export function writeChRcvBuf(buf: Uint8Array, offset: number, bufs: number, mseq: number, mseqAck: number, size: number): void {
  writeBsdh(buf, offset, Mid.ChRcvBuf, 0, bufs, CH_RCV_BUF_SIZE, mseq, mseqAck);
  writeU32(buf, offset + 16, size);
}

export function readChRcvBuf(buf: Uint8Array, offset: number, len: number): number {
  if (len < CH_RCV_BUF_SIZE) throw new SdpProtocolError(`ChRcvBuf of ${len} bytes is shorter than ${CH_RCV_BUF_SIZE}`);
  return readU32(buf, offset + 16);
}

// Virtual addresses are below 2^53 (the verbs layer keeps them safe integers).
function writeU64(buf: Uint8Array, offset: number, v: number): void {
  writeU32(buf, offset, Math.floor(v / 0x1_0000_0000));
  writeU32(buf, offset + 4, v >>> 0);
}

function readU64(buf: Uint8Array, offset: number): number {
  const hi = readU32(buf, offset);
  if (hi > 0x1fffff) throw new SdpProtocolError(`SrcAvail VAddr 0x${hi.toString(16)}........ is beyond 2^53`);
  return hi * 0x1_0000_0000 + readU32(buf, offset + 4);
}
