import { describe, expect, it } from 'vitest';
import { seeded } from '../seeded.mjs';

describe('seeded()', () => {
  it('gives the same numbers in [0, 1) for a seed, and other numbers for another', () => {
    const a = seeded(42);
    const b = seeded(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(xs).size).toBe(1000);
    expect(seeded(43)()).not.toBe(xs[0]);
    // Seed 0 would stick at 0 in xorshift: it is taken as 1.
    expect(seeded(0)()).toBe(seeded(1)());
  });
});
