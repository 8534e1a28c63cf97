/** xorshift32 from a nonzero seed: the same sizes and pauses for a seed, run after run. */
export function seeded(seed: number): () => number {
  let st = seed | 0 || 1;
  return () => {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    return (st >>> 0) / 4294967296;
  };
}
