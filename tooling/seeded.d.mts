/** xorshift32 from a nonzero seed: numbers in [0, 1), the same for a seed run after run. */
export function seeded(seed: number): () => number;
