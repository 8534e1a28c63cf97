/** xorshift32 from a nonzero seed: numbers in [0, 1), the same for a seed run after run. */
export function seeded(seed: number): () => number;
/** A generator for one case of a seeded test: `seed` and the case's keys hashed into its seed. */
export declare function seededCase(seed: number, ...keys: number[]): () => number;
