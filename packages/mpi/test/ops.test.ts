// Reduction operations on their own: each built-in against its definition,
// MAXLOC/MINLOC ties, bitwise ops refused on floats, user ops,
// Op.reduceLocal; and the environment queries.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import os from 'node:os';
import { BAND, BOR, BXOR, LAND, LOR, LXOR, MAX, MAXLOC, MIN, MINLOC, Op, PROD, SUM, InvalidArgumentError, getLibraryVersion, getProcessorName, getVersion, wtick } from '../src/index.js';

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

  it('reduceLocal combines into its second array after a reduction\'s checks', () => {
    const inout = Float64Array.of(1, 5, -2);
    MAX.reduceLocal(Float64Array.of(3, 4, -1), inout);
    expect(Array.from(inout)).toEqual([3, 5, -1]);
    const pairs = Float64Array.of(7, 1, 2, 0);
    MAXLOC.reduceLocal(Float64Array.of(7, 0, 9, 3), pairs);
    expect(Array.from(pairs)).toEqual([7, 0, 9, 3]);
    expect(() => SUM.reduceLocal(Float64Array.of(1), Int32Array.of(1))).toThrow(InvalidArgumentError);
    expect(() => SUM.reduceLocal(Float64Array.of(1, 2), Float64Array.of(1))).toThrow(InvalidArgumentError);
    expect(() => BAND.reduceLocal(Float64Array.of(1), Float64Array.of(1))).toThrow(InvalidArgumentError);
    expect(() => SUM.reduceLocal([1] as unknown as Int32Array, Int32Array.of(1))).toThrow(InvalidArgumentError);
  });

  it('environment queries: MPI version, library version from the manifest, host name, wtime resolution', () => {
    expect(getVersion()).toEqual([3, 1]);
    expect(getLibraryVersion()).toMatch(/^ibal @ibal\/mpi \d+\.\d+\.\d+ \(MPI 3\.1 subset\) on Node v\d+/);
    expect(getProcessorName()).toBe(os.hostname());
    expect(wtick()).toBeGreaterThan(0);
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

  it('fold over several inputs equals pairwise application from the right, bit for bit, for every built-in and array type', () => {
    const ops = [SUM, PROD, MIN, MAX, LAND, LOR, LXOR, BAND, BOR, BXOR];
    const types = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
    const special = [0, -0, 1, -1, 255, 256, 32767, -32769, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 + 5, 1e300, -1e300, Infinity, -Infinity, NaN, 0.5, -2.5];
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 0, max: 40 }), fc.integer(), (m, n, salt) => {
        let s = salt | 0;
        const next = (): number => {
          s = (Math.imul(s, 1103515245) + 12345) | 0;
          return s >>> 0;
        };
        for (const T of types) {
          const big = T === BigInt64Array || T === BigUint64Array;
          const ins = Array.from({ length: m }, () => {
            const a = new T(n);
            for (let k = 0; k < n; k++) {
              const v = next() % 3 === 0 ? special[next() % special.length]! : (next() % 2001) - 1000;
              (a as unknown as { [k: number]: number | bigint })[k] = big ? BigInt(Number.isFinite(v) ? Math.trunc(v) : 7) : v;
            }
            return a;
          });
          for (const op of ops) {
            if (op.integerOnly && (T === Float32Array || T === Float64Array)) continue;
            const want = ins[m - 1]!.slice();
            for (let j = m - 2; j >= 0; j--) op.apply(ins[j]!, want);
            const got = new T(n);
            op.fold(ins, got);
            const w = Array.from(want as ArrayLike<unknown>);
            const g = Array.from(got as ArrayLike<unknown>);
            if (!w.every((x, k) => Object.is(x, g[k]))) throw new Error(`${op.name} on ${T.name}, ${m} inputs: ${g.join()} != ${w.join()}`);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('fold works with user operations and pair operations (pairwise, rank order)', () => {
    const P = 101;
    const affine = Op.create(
      (i, o) => {
        const [inv, io] = [i as Int32Array, o as Int32Array];
        for (let k = 0; k < io.length; k += 2) {
          const m = (inv[k]! * io[k]!) % P;
          const c = (inv[k]! * io[k + 1]! + inv[k + 1]!) % P;
          io[k] = m;
          io[k + 1] = c;
        }
      },
      false,
      'AFFINE',
      2,
    );
    const ins = [Int32Array.of(2, 3), Int32Array.of(5, 7), Int32Array.of(11, 13)];
    const out = new Int32Array(2);
    affine.fold(ins, out);
    // x -> 2x+3 after (x -> 5x+7 after x -> 11x+13): m = 2*5*11, c = 2*(5*13+7)+3, mod P.
    expect(Array.from(out)).toEqual([110 % P, (2 * (5 * 13 + 7) + 3) % P]);
    const loc = new Float64Array(4);
    MAXLOC.fold([Float64Array.of(3, 0, 1, 0), Float64Array.of(3, 1, 2, 1), Float64Array.of(1, 2, 2, 2)], loc);
    expect(Array.from(loc)).toEqual([3, 0, 2, 1]);
  });
});
