import { InvalidArgumentError } from '../errors.js';
import { readAeth, rnrTimerUs, syndromeType, syndromeValue, writeAeth, AethType, type AethFields } from './aeth.js';
import { readAtomicAckEth, writeAtomicAckEth, type AtomicAckEthFields } from './atomic-ack-eth.js';
import { readAtomicEth, writeAtomicEth, type AtomicEthFields } from './atomic-eth.js';
import { readBth, setBthPadCount, writeBth, type BthFields } from './bth.js';
import { readDeth, writeDeth, type DethFields } from './deth.js';
import { writeIcrc, type IcrcCalculator } from './icrc.js';
import { readIeth, writeIeth, type IethFields } from './ieth.js';
import { readImmDt, writeImmDt, type ImmDtFields } from './immdt.js';
import {
  AETH_BYTES,
  ATOMIC_ACK_ETH_BYTES,
  ATOMIC_ETH_BYTES,
  BTH_BYTES,
  CNP_RESERVED_BYTES,
  DETH_BYTES,
  HDR_AETH,
  HDR_ATOMIC_ACK_ETH,
  HDR_ATOMIC_ETH,
  HDR_CNP_RESERVED,
  HDR_DETH,
  HDR_IETH,
  HDR_IMMDT,
  HDR_PAYLOAD,
  HDR_RETH,
  ICRC_BYTES,
  IETH_BYTES,
  IMMDT_BYTES,
  OP_VALID,
  OPCODE_FLAGS,
  OPCODE_HDR_LEN,
  opcodeName,
  RETH_BYTES,
} from './opcode.js';
import { readReth, writeReth, type RethFields } from './reth.js';

/**
 * Every field of a RoCEv2 packet's headers, flat. One object is reused for
 * every packet decoded (and may be reused for every packet encoded), so the
 * data path allocates nothing. Fields of headers the opcode does not carry
 * read as zero after decodePacket.
 */
export interface ParsedPacket
  extends BthFields,
    RethFields,
    AethFields,
    AtomicEthFields,
    AtomicAckEthFields,
    ImmDtFields,
    IethFields,
    DethFields {
  /** BTH plus extension headers, in bytes. */
  hdrLen: number;
  payloadOffset: number;
  /** Payload bytes, pad excluded. */
  payloadLength: number;
  /** Headers, payload, pad and ICRC. */
  totalLength: number;
}

export function newParsedPacket(): ParsedPacket {
  return {
    opcode: 0,
    se: false,
    migReq: false,
    padCount: 0,
    tver: 0,
    pkey: 0,
    fecn: false,
    becn: false,
    destQp: 0,
    ackReq: false,
    psn: 0,
    rethVa: 0,
    rethRkey: 0,
    rethDmaLen: 0,
    aethSyndrome: 0,
    aethMsn: 0,
    atomicVa: 0,
    atomicRkey: 0,
    atomicSwapAdd: 0n,
    atomicCompare: 0n,
    atomicAckOrig: 0n,
    immDt: 0,
    iethRkey: 0,
    dethQkey: 0,
    dethSrcQp: 0,
    hdrLen: 0,
    payloadOffset: 0,
    payloadLength: 0,
    totalLength: 0,
  };
}

export const DecodeResult = {
  OK: 0,
  /** Shorter than its opcode's headers plus the ICRC. */
  TOO_SHORT: 1,
  /** An opcode this HCA does not implement (RD, XRC, reserved, vendor). */
  BAD_OPCODE: 2,
  /** Transport header version other than 0. */
  BAD_TVER: 3,
  /** More pad than payload, or pad on an opcode without payload. */
  BAD_PAD: 4,
  /** Not a multiple of 4 bytes, beyond the buffer, or payload on an opcode without one. */
  BAD_LENGTH: 5,
} as const;
export type DecodeResult = (typeof DecodeResult)[keyof typeof DecodeResult];

const decodeResultNames = ['OK', 'TOO_SHORT', 'BAD_OPCODE', 'BAD_TVER', 'BAD_PAD', 'BAD_LENGTH'];

export function decodeResultName(r: DecodeResult): string {
  return decodeResultNames[r] ?? `DecodeResult(${String(r)})`;
}

function clearExtensions(out: ParsedPacket): void {
  out.rethVa = 0;
  out.rethRkey = 0;
  out.rethDmaLen = 0;
  out.aethSyndrome = 0;
  out.aethMsn = 0;
  out.atomicVa = 0;
  out.atomicRkey = 0;
  out.atomicSwapAdd = 0n;
  out.atomicCompare = 0n;
  out.atomicAckOrig = 0n;
  out.immDt = 0;
  out.iethRkey = 0;
  out.dethQkey = 0;
  out.dethSrcQp = 0;
}

/**
 * Parse the RoCE packet buf[0..len) (BTH first, ICRC last) into `out`.
 * Checks structure only; the ICRC is the caller's (see checkIcrc), as is
 * every check that needs QP state. Never throws: it faces the network.
 * On failure `out` is partly written and must not be used.
 */
export function decodePacket(buf: Uint8Array, len: number, out: ParsedPacket): DecodeResult {
  if (len !== (len | 0) || len > buf.length) return DecodeResult.BAD_LENGTH;
  if (len < BTH_BYTES + ICRC_BYTES) return DecodeResult.TOO_SHORT;
  const op = buf[0]!;
  const flags = OPCODE_FLAGS[op]!;
  if ((flags & OP_VALID) === 0) return DecodeResult.BAD_OPCODE;
  readBth(buf, 0, out);
  if (out.tver !== 0) return DecodeResult.BAD_TVER;
  const hdrLen = OPCODE_HDR_LEN[op]!;
  if (len < hdrLen + ICRC_BYTES) return DecodeResult.TOO_SHORT;
  if ((len & 3) !== 0) return DecodeResult.BAD_LENGTH;
  const room = len - hdrLen - ICRC_BYTES;
  const pad = out.padCount;
  if ((flags & HDR_PAYLOAD) !== 0) {
    if (pad > room) return DecodeResult.BAD_PAD;
  } else {
    if (pad !== 0) return DecodeResult.BAD_PAD;
    if (room !== 0) return DecodeResult.BAD_LENGTH;
  }
  clearExtensions(out);
  let o = BTH_BYTES;
  if (flags & HDR_DETH) {
    readDeth(buf, o, out);
    o += DETH_BYTES;
  }
  if (flags & HDR_RETH) {
    readReth(buf, o, out);
    o += RETH_BYTES;
  }
  if (flags & HDR_ATOMIC_ETH) {
    readAtomicEth(buf, o, out);
    o += ATOMIC_ETH_BYTES;
  }
  if (flags & HDR_AETH) {
    readAeth(buf, o, out);
    o += AETH_BYTES;
  }
  if (flags & HDR_ATOMIC_ACK_ETH) {
    readAtomicAckEth(buf, o, out);
    o += ATOMIC_ACK_ETH_BYTES;
  }
  if (flags & HDR_IMMDT) {
    readImmDt(buf, o, out);
    o += IMMDT_BYTES;
  }
  if (flags & HDR_IETH) readIeth(buf, o, out);
  out.hdrLen = hdrLen;
  out.payloadOffset = hdrLen;
  out.payloadLength = room - pad;
  out.totalLength = len;
  return DecodeResult.OK;
}

/**
 * Write the BTH and the extension headers `h.opcode` calls for at buf[off..]
 * and return their length; the payload goes right after. PadCnt is written
 * as given and normally fixed up by finishPacket.
 */
export function encodeHeaders(buf: Uint8Array, off: number, h: ParsedPacket): number {
  const op = h.opcode;
  const flags = op === (op & 0xff) ? OPCODE_FLAGS[op]! : 0;
  if ((flags & OP_VALID) === 0) throw new InvalidArgumentError(`cannot encode opcode ${String(op)}`);
  writeBth(buf, off, h);
  let o = off + BTH_BYTES;
  if (flags & HDR_DETH) {
    writeDeth(buf, o, h);
    o += DETH_BYTES;
  }
  if (flags & HDR_RETH) {
    writeReth(buf, o, h);
    o += RETH_BYTES;
  }
  if (flags & HDR_ATOMIC_ETH) {
    writeAtomicEth(buf, o, h);
    o += ATOMIC_ETH_BYTES;
  }
  if (flags & HDR_AETH) {
    writeAeth(buf, o, h);
    o += AETH_BYTES;
  }
  if (flags & HDR_ATOMIC_ACK_ETH) {
    writeAtomicAckEth(buf, o, h);
    o += ATOMIC_ACK_ETH_BYTES;
  }
  if (flags & HDR_IMMDT) {
    writeImmDt(buf, o, h);
    o += IMMDT_BYTES;
  }
  if (flags & HDR_IETH) {
    writeIeth(buf, o, h);
    o += IETH_BYTES;
  }
  if (flags & HDR_CNP_RESERVED) {
    buf.fill(0, o, o + CNP_RESERVED_BYTES);
    o += CNP_RESERVED_BYTES;
  }
  return o - off;
}

/**
 * Complete a packet whose headers (hdrLen bytes, from encodeHeaders at
 * offset 0) and payload are in place: zero the pad that brings the payload
 * to a multiple of 4, record it in PadCnt, append the ICRC computed with
 * `calc` (with none, zero ICRC bytes: a packet that never leaves the host's
 * memory, see UdpWire.icrcFor). Returns the packet's total length.
 */
export function finishPacket(buf: Uint8Array, hdrLen: number, payloadLen: number, calc: IcrcCalculator | undefined): number {
  const pad = -payloadLen & 3;
  let end = hdrLen + payloadLen;
  for (let i = 0; i < pad; i++) buf[end++] = 0;
  setBthPadCount(buf, 0, pad);
  const total = end + ICRC_BYTES;
  if (calc) writeIcrc(buf, total, calc);
  else buf[total - 4] = buf[total - 3] = buf[total - 2] = buf[total - 1] = 0;
  return total;
}

function hex(v: number, digits: number): string {
  return '0x' + v.toString(16).padStart(digits, '0');
}

const nakNames = ['PSN sequence error', 'invalid request', 'remote access error', 'remote operational error', 'invalid RD request'];

function describeSyndrome(s: number): string {
  const v = syndromeValue(s);
  switch (syndromeType(s)) {
    case AethType.ACK:
      return v === 31 ? 'ACK' : `ACK credits=${v}`;
    case AethType.RNR_NAK:
      return `RNR NAK ${rnrTimerUs(v) / 1000}ms`;
    case AethType.NAK:
      return `NAK ${nakNames[v] ?? `code ${v}`}`;
    default:
      return `reserved syndrome ${hex(s, 2)}`;
  }
}

/** One line for logs and test failures, e.g. "RC Send Only qp=0x000011 psn=0xabcdef ... payload=100". */
export function describePacket(p: ParsedPacket): string {
  const flags = OPCODE_FLAGS[p.opcode & 0xff]!;
  const parts = [opcodeName(p.opcode), `qp=${hex(p.destQp, 6)}`, `psn=${hex(p.psn, 6)}`, `pkey=${hex(p.pkey, 4)}`];
  if (p.se) parts.push('SE');
  if (p.migReq) parts.push('M');
  if (p.ackReq) parts.push('A');
  if (p.fecn) parts.push('FECN');
  if (p.becn) parts.push('BECN');
  if (p.tver) parts.push(`tver=${p.tver}`);
  if (flags & HDR_DETH) parts.push(`qkey=${hex(p.dethQkey, 8)} srcqp=${hex(p.dethSrcQp, 6)}`);
  if (flags & HDR_RETH) parts.push(`va=${hex(p.rethVa, 1)} rkey=${hex(p.rethRkey, 8)} dmalen=${p.rethDmaLen}`);
  if (flags & HDR_ATOMIC_ETH) {
    parts.push(`va=${hex(p.atomicVa, 1)} rkey=${hex(p.atomicRkey, 8)} swapadd=0x${p.atomicSwapAdd.toString(16)} cmp=0x${p.atomicCompare.toString(16)}`);
  }
  if (flags & HDR_AETH) parts.push(`${describeSyndrome(p.aethSyndrome)} msn=${p.aethMsn}`);
  if (flags & HDR_ATOMIC_ACK_ETH) parts.push(`orig=0x${p.atomicAckOrig.toString(16)}`);
  if (flags & HDR_IMMDT) parts.push(`imm=${hex(p.immDt, 8)}`);
  if (flags & HDR_IETH) parts.push(`inv_rkey=${hex(p.iethRkey, 8)}`);
  if (flags & HDR_PAYLOAD) parts.push(`payload=${p.payloadLength}`);
  if (p.padCount) parts.push(`pad=${p.padCount}`);
  return parts.join(' ');
}
