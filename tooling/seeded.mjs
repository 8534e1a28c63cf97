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

/**
 * A generator for one case of a seeded test: the run's seed and the case's
 * keys (a call number, a rank) hashed into its seed, so every rank of a job
 * can draw any rank's numbers for any case, and cases draw unrelated ones.
 */
export function seededCase(seed, ...keys) {
  let h = Math.imul(seed | 0, 0x9e3779b1) ^ 0x1234567;
  for (const k of keys) {
    h = Math.imul(h ^ (k | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return seeded(h);
}
