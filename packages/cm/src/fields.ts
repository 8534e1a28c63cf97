// Field access in the layout of IBTA vol. 1 chapter 12's tables: a byte
// offset from the start of the message (just after the MAD header) and, for
// fields narrower than a byte or not byte-aligned, the bit offset counted
// from the byte's most significant bit, as the tables write "Byte[Bit]".

import { MAD_HEADER_SIZE, view } from './mad.js';

const H = MAD_HEADER_SIZE;

export function getU8(m: Uint8Array, off: number): number {
  return m[H + off]!;
}
export function setU8(m: Uint8Array, off: number, v: number): void {
  m[H + off] = v & 0xff;
}
export function getU16(m: Uint8Array, off: number): number {
  return view(m).getUint16(H + off);
}
export function setU16(m: Uint8Array, off: number, v: number): void {
  view(m).setUint16(H + off, v & 0xffff);
}
export function getU32(m: Uint8Array, off: number): number {
  return view(m).getUint32(H + off);
}
export function setU32(m: Uint8Array, off: number, v: number): void {
  view(m).setUint32(H + off, v >>> 0);
}
/** A 24-bit field in the top three bytes of a 32-bit word. */
export function getU24(m: Uint8Array, off: number): number {
  return view(m).getUint32(H + off) >>> 8;
}
export function setU24(m: Uint8Array, off: number, v: number): void {
  const d = view(m);
  d.setUint32(H + off, (((v & 0xffffff) << 8) | (d.getUint32(H + off) & 0xff)) >>> 0);
}
export function getU64(m: Uint8Array, off: number): bigint {
  return view(m).getBigUint64(H + off);
}
export function setU64(m: Uint8Array, off: number, v: bigint): void {
  view(m).setBigUint64(H + off, BigInt.asUintN(64, v));
}
/** `width` bits of byte `off`, starting `bit` bits below its most significant bit. */
export function getBits(m: Uint8Array, off: number, bit: number, width: number): number {
  return (m[H + off]! >>> (8 - bit - width)) & ((1 << width) - 1);
}
export function setBits(m: Uint8Array, off: number, bit: number, width: number, v: number): void {
  const shift = 8 - bit - width;
  const mask = ((1 << width) - 1) << shift;
  m[H + off] = (m[H + off]! & ~mask) | ((v << shift) & mask);
}
export function getBytes(m: Uint8Array, off: number, len: number): Uint8Array {
  return m.slice(H + off, H + off + len);
}
export function setBytes(m: Uint8Array, off: number, len: number, src: Uint8Array | undefined): void {
  m.fill(0, H + off, H + off + len);
  if (src) m.set(src.subarray(0, len), H + off);
}
