// Reduction operations on their own: each built-in against its definition,
// MAXLOC/MINLOC ties, bitwise ops refused on floats, user ops.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BAND, BOR, BXOR, LAND, LOR, LXOR, MAX, MAXLOC, MIN, MINLOC, Op, PROD, SUM } from '../src/index.js';

describe('ops', () => {
  it('arithmetic and logical ops combine element-wise into inoutvec', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: -50, max: 50 }))), (pairs) => {
        const a = Int32Array.from(pairs.map((p) => p[0]));
        const b = Int32Array.from(pairs.map((p) => p[1]));
        const cases: [Op, (x: number, y: number) => number][] = [
          [SUM, (x, y) => x + y],
          [PROD, (x, y) => x * y],
          [MIN, Math.min],
          [MAX, Math.max],
          [LAND, (x, y) => (x && y ? 1 : 0)],
          [LOR, (x, y) => (x || y ? 1 : 0)],
          [LXOR, (x, y) => (!x !== !y ? 1 : 0)],
          [BAND, (x, y) => x & y],
          [BOR, (x, y) => x | y],
          [BXOR, (x, y) => x ^ y],
        ];
        for (const [op, f] of cases) {
          const io = b.slice();
          op.apply(a, io);
          expect(Array.from(io)).toEqual(Array.from(Int32Array.from(pairs.map(([x, y]) => f(x, y)))));
        }
      }),
    );
  });

  it('BigInt64Array works with SUM and LAND', () => {
    const io = BigInt64Array.of(1n, 0n);
    SUM.apply(BigInt64Array.of(2n, 5n), io);
    expect(Array.from(io)).toEqual([3n, 5n]);
    LAND.apply(BigInt64Array.of(1n, 0n), io);
    expect(Array.from(io)).toEqual([1n, 0n]);
  });

  it('MAXLOC and MINLOC keep the lower index on ties', () => {
    const io = Float64Array.of(5, 3, 1, 0, 2, 9);
    MAXLOC.apply(Float64Array.of(5, 1, 4, 2, 2, 1), io);
    expect(Array.from(io)).toEqual([5, 1, 4, 2, 2, 1]);
    const lo = Int32Array.of(1, 4);
    MINLOC.apply(Int32Array.of(1, 7), lo);
    expect(Array.from(lo)).toEqual([1, 4]);
    expect(() => MAXLOC.check(new Float64Array(3))).toThrow(/groups of 2/);
  });

  it('bitwise ops are refused on floating point arrays', () => {
    expect(() => BAND.check(new Float64Array(2))).toThrow(/not defined on Float64Array/);
    expect(() => BOR.check(new Int32Array(2))).not.toThrow();
  });

  it('user ops say whether they commute', () => {
    const first = Op.create((inv, io) => (io as Float64Array).set(inv as Float64Array), false, 'FIRST');
    expect(first.commutative).toBe(false);
    const io = Float64Array.of(1, 2);
    first.apply(Float64Array.of(7, 8), io);
    expect(Array.from(io)).toEqual([7, 8]);
    expect(() => Op.create(undefined as never)).toThrow(/needs a function/);
  });
});
