/**
 * Copies len bytes from src[srcOff..] to dst[dstOff..]. Most of what the
 * soft HCA moves per packet is small (headers, ACKs, 8-byte messages), where
 * a plain loop beats TypedArray.prototype.set and the subarray view it
 * needs; from 64 bytes up, set (memcpy) wins.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= 64) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
  } else {
    dst.set(srcOff === 0 && len === src.length ? src : src.subarray(srcOff, srcOff + len), dstOff);
  }
}
