// PSNs are 24-bit and wrap: compare them by signed distance, never with < or >.

export const PSN_MASK = 0xffffff;

/** Signed 24-bit distance a - b, in [-2^23, 2^23). */
export function psnDiff(a: number, b: number): number {
  return ((a - b) << 8) >> 8;
}

export function psnAdd(a: number, n: number): number {
  return (a + n) & PSN_MASK;
}
