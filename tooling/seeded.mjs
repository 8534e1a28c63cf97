// One reproducible generator for every package's randomized tests: the same
// numbers for a seed, run after run and on every machine, so a failure's
// seed replays it.

/** xorshift32 from a nonzero seed: numbers in [0, 1). */
export function seeded(seed) {
  let st = seed | 0 || 1;
  return () => {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    return (st >>> 0) / 4294967296;
  };
}
