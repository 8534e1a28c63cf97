// Network-order field access on plain byte arrays. Every RoCE header field is
// big-endian and most sit at unaligned offsets, so direct byte shifts beat a
// DataView (which would have to be created per buffer) and never allocate.

export function readU16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function readU24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function writeU24(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 16;
  b[o + 1] = v >>> 8;
  b[o + 2] = v;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

const TWO_32 = 4294967296;

/**
 * A 64-bit address as a JS number. Exact below 2^53, which covers every
 * user-space virtual address on today's 48/57-bit MMUs; above that the low
 * bits round, which only a forged packet can cause.
 */
export function readU64Number(b: Uint8Array, o: number): number {
  return readU32(b, o) * TWO_32 + readU32(b, o + 4);
}

export function writeU64Number(b: Uint8Array, o: number, v: number): void {
  // `>>> 0` takes the value modulo 2^32, exact for any integer below 2^53.
  const lo = v >>> 0;
  writeU32(b, o, (v - lo) / TWO_32);
  writeU32(b, o + 4, lo);
}

// Atomic operands use the full 64 bits (a compare value of 2^63 is legal),
// so they are bigints; atomics are rare enough that the bigint arithmetic
// does not matter for the data path.
export function readU64Big(b: Uint8Array, o: number): bigint {
  return (BigInt(readU32(b, o)) << 32n) | BigInt(readU32(b, o + 4));
}

export function writeU64Big(b: Uint8Array, o: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  writeU32(b, o, Number(u >> 32n));
  writeU32(b, o + 4, Number(u & 0xffffffffn));
}
