// Derived datatypes on their own: sizes, bounds and extents as MPI defines
// them, and MPI_Pack/MPI_Unpack against a model of the type map built here
// element by element from the standard's definitions (no runs, no merging),
// for random nests of constructors over odd and aligned buffer offsets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';
import {
  BYTE,
  DOUBLE,
  Datatype,
  FLOAT,
  INT,
  INT16_T,
  InvalidArgumentError,
  ORDER_C,
  ORDER_FORTRAN,
  ResourceClosedError,
  Status,
  UNDEFINED,
} from '../src/index.js';

/** A type map: one entry per basic element (byte displacement, size), with MPI's lb and extent. */
interface Model {
  map: { disp: number; bytes: number }[];
  lb: number;
  extent: number;
}

const basic = (bytes: number): Model => ({ map: [{ disp: 0, bytes }], lb: 0, extent: bytes });

/** Copies of `t` at byte shifts, in order; bounds from every copy's own lb and ub. */
function place(shifts: number[], t: Model, struct = false): Model {
  const map = shifts.flatMap((s) => t.map.map((e) => ({ disp: s + e.disp, bytes: e.bytes })));
  if (shifts.length === 0) return { map, lb: 0, extent: 0 };
  const lb = Math.min(...shifts.map((s) => s + t.lb));
  const ub = Math.max(...shifts.map((s) => s + t.lb + t.extent));
  let extent = ub - lb;
  if (struct) {
    const align = Math.max(1, ...t.map.map((e) => e.bytes));
    extent = Math.ceil(extent / align) * align;
  }
  return { map, lb, extent };
}

const range = (n: number): number[] => [...Array(n).keys()];

function vectorModel(t: Model, count: number, bl: number, strideBytes: number): Model {
  return place(range(count).flatMap((i) => range(bl).map((j) => i * strideBytes + j * t.extent)), t);
}

function subarrayModel(t: Model, sizes: number[], subsizes: number[], starts: number[], order: number): Model {
  const n = sizes.length;
  // Element strides: row-major multiplies from the last dimension, column-major from the first.
  const stride = sizes.map((_, d) => {
    const dims = order === ORDER_C ? range(n).slice(d + 1) : range(d);
    return dims.reduce((p, k) => p * sizes[k]!, 1);
  });
  const shifts: number[] = [];
  const idx = subsizes.map(() => 0);
  const fastest = order === ORDER_C ? range(n).reverse() : range(n);
  for (;;) {
    shifts.push(idx.reduce((s, v, d) => s + (starts[d]! + v) * stride[d]!, 0) * t.extent);
    let k = 0;
    while (k < n && ++idx[fastest[k]!]! === subsizes[fastest[k]!]) idx[fastest[k++]!] = 0;
    if (k === n) break;
  }
  const m = place(shifts, t);
  return { map: m.map, lb: 0, extent: sizes.reduce((p, s) => p * s, 1) * t.extent };
}

/** The bytes `count` instances pack to, by the model: element after element. */
function modelPack(m: Model, src: Uint8Array, count: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < count; k++) for (const e of m.map) for (let b = 0; b < e.bytes; b++) out.push(src[k * m.extent + e.disp + b]!);
  return out;
}

/** What unpacking `count` instances of `src`'s packed bytes into zeros leaves: the mapped bytes, zeros between. */
function modelUnpacked(m: Model, src: Uint8Array, count: number, length: number): Uint8Array {
  const want = new Uint8Array(length);
  for (let k = 0; k < count; k++) for (const e of m.map) for (let b = 0; b < e.bytes; b++) want[k * m.extent + e.disp + b] = src[k * m.extent + e.disp + b]!;
  return want;
}

/** A random type built by nesting constructors, with its model. */
type Built = { type: Datatype; model: Model };
const base: fc.Arbitrary<Built> = fc.constantFrom(
  { type: DOUBLE, model: basic(8) },
  { type: INT, model: basic(4) },
  { type: INT16_T, model: basic(2) },
  { type: BYTE, model: basic(1) },
);

const built: fc.Arbitrary<Built> = fc.letrec<{ t: Built }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    base,
    fc.tuple(tie('t'), fc.integer({ min: 0, max: 4 })).map(([o, c]) => ({ type: o.type.createContiguous(c), model: place(range(c).map((i) => i * o.model.extent), o.model) })),
    fc
      .tuple(tie('t'), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 6 }))
      .map(([o, c, bl, st]) => ({ type: o.type.createVector(c, bl, st), model: vectorModel(o.model, c, bl, st * o.model.extent) })),
    fc
      .tuple(tie('t'), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 40 }))
      .map(([o, c, bl, st]) => ({ type: o.type.createHvector(c, bl, st), model: vectorModel(o.model, c, bl, st) })),
    fc
      .tuple(tie('t'), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 8 })), { maxLength: 4 }))
      .map(([o, blocks]) => ({
        type: o.type.createIndexed(
          blocks.map((b) => b[0]),
          blocks.map((b) => b[1]),
        ),
        model: place(
          blocks.flatMap(([bl, d]) => range(bl).map((j) => (d + j) * o.model.extent)),
          o.model,
        ),
      })),
    fc
      .tuple(tie('t'), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: 48 }))
      .map(([o, lb, extent]) => ({ type: o.type.createResized(lb, extent), model: { map: o.model.map, lb, extent } })),
  ),
})).t;

describe('datatypes', () => {
  it('sizes, bounds and extents follow MPI for each constructor', () => {
    const col = DOUBLE.createVector(4, 1, 5);
    expect([col.size, col.lb, col.extent, col.trueLb, col.trueExtent]).toEqual([32, 0, 8 * 16, 0, 8 * 16]);
    const resized = col.createResized(0, 8);
    expect([resized.size, resized.extent, resized.trueExtent]).toEqual([32, 8, 128]);
    expect(INT.createIndexed([2, 1], [3, 0]).getExtent()).toEqual([0, 20]);
    expect(INT.createHindexedBlock(2, [12, 40]).getTrueExtent()).toEqual([12, 36]);
    // C struct { double d; int i; } has extent 16 (the standard's alignment rounding).
    const pair = Datatype.createStruct([1, 1], [0, 8], [DOUBLE, INT]);
    expect([pair.size, pair.extent, pair.arrayClass]).toEqual([12, 16, Uint8Array]);
    expect(DOUBLE.createContiguous(3).arrayClass).toBe(Float64Array);
    const sub = FLOAT.createSubarray([4, 6], [2, 3], [1, 2]);
    expect([sub.size, sub.lb, sub.extent, sub.trueLb, sub.trueExtent]).toEqual([24, 0, 96, 32, 36]);
    expect(DOUBLE.createContiguous(0).size).toBe(0);
    expect(Datatype.of(new Float32Array(1))).toBe(FLOAT);
    expect(Datatype.of(Buffer.alloc(1)).arrayClass).toBe(Uint8Array);
  });

  it('pack and unpack match the type map element by element, at any buffer offset', () => {
    fc.assert(
      fc.property(built, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 7 }), ({ type, model }, count, srcPad, outPad) => {
        expect(type.size).toBe(model.map.reduce((s, e) => s + e.bytes, 0));
        if (model.map.length > 0) {
          expect(type.lb).toBe(model.lb);
          expect(type.extent).toBe(model.extent);
        }
        type.commit();
        // Room for every instance (lb may be past data, extent below the data's span).
        const lo = Math.min(0, ...model.map.map((e) => e.disp), (count - 1) * model.extent);
        if (count > 0 && lo < 0) return;
        const hi = count === 0 ? 0 : Math.max(0, ...model.map.map((e) => Math.max(0, count - 1) * model.extent + e.disp + e.bytes));
        const mem = new Uint8Array(hi + srcPad);
        for (let i = 0; i < mem.length; i++) mem[i] = (i * 7 + 3) & 255;
        const src = mem.subarray(srcPad);
        const out = new Uint8Array(type.packSize(count) + outPad + 5);
        const end = type.pack(src, count, out, outPad);
        expect(end).toBe(outPad + count * type.size);
        expect(Array.from(out.subarray(outPad, end))).toEqual(modelPack(model, src, count));
        // Unpack into zeros: exactly the mapped bytes come back, the holes stay 0.
        const back = new Uint8Array(mem.length).subarray(srcPad);
        expect(type.unpack(out, outPad, back, count)).toBe(end);
        const want = modelUnpacked(model, src, count, back.length);
        expect(Array.from(back)).toEqual(Array.from(want));
      }),
      { numRuns: 300 },
    );
  });

  it('many instances (the native copy, where built) match the type map too', () => {
    fc.assert(
      fc.property(built, fc.integer({ min: 40, max: 300 }), fc.boolean(), ({ type, model }, count, odd) => {
        type.commit();
        if (model.map.length === 0) return;
        const hi = Math.max(...model.map.map((e) => (count - 1) * model.extent + e.disp + e.bytes));
        const pad = odd ? 3 : 0;
        const mem = new Uint8Array(hi + pad);
        for (let i = 0; i < mem.length; i++) mem[i] = (i * 13 + 5) & 255;
        const src = mem.subarray(pad);
        const out = new Uint8Array(type.packSize(count) + pad).subarray(pad);
        type.pack(src, count, out);
        expect(Array.from(out)).toEqual(modelPack(model, src, count));
        const back = new Uint8Array(src.length);
        type.unpack(out, 0, back, count);
        const want = modelUnpacked(model, src, count, src.length);
        expect(Array.from(back)).toEqual(Array.from(want));
      }),
      { numRuns: 150 },
    );
  });

  it('subarrays in C and Fortran order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }).chain((sizes) =>
          fc.tuple(
            fc.constant(sizes),
            fc.tuple(...sizes.map((s) => fc.integer({ min: 1, max: s }).chain((sub) => fc.tuple(fc.constant(sub), fc.integer({ min: 0, max: s - sub }))))),
            fc.constantFrom(ORDER_C, ORDER_FORTRAN),
          ),
        ),
        ([sizes, ss, order]) => {
          const subsizes = ss.map((x) => x[0]);
          const starts = ss.map((x) => x[1]);
          const t = INT.createSubarray(sizes, subsizes, starts, order).commit();
          const m = subarrayModel(basic(4), sizes, subsizes, starts, order);
          expect(t.extent).toBe(m.extent);
          const src = Int32Array.from({ length: 2 * m.extent / 4 }, (_, i) => i * 10 + 1);
          const out = new Uint8Array(t.packSize(2));
          t.pack(src, 2, out);
          expect(Array.from(out)).toEqual(modelPack(m, new Uint8Array(src.buffer), 2));
        },
      ),
    );
  });

  it('a column of a row-major matrix packs as that column, aligned or not', () => {
    const n = 5;
    const a = Float64Array.from({ length: n * n }, (_, i) => i + 0.5);
    const col = DOUBLE.createVector(n, 1, n).commit();
    const out = new Float64Array(n);
    col.pack(a.subarray(2), 1, out);
    expect(Array.from(out)).toEqual([2.5, 7.5, 12.5, 17.5, 22.5]);
    // The same column at an odd byte offset (bytes only): the copy falls back to bytes.
    const raw = new Uint8Array(a.byteLength + 1);
    raw.set(new Uint8Array(a.buffer), 1);
    const odd = new Uint8Array(8 * n + 3);
    col.pack(raw.subarray(1 + 16), 1, odd, 3);
    expect(Array.from(new Float64Array(odd.slice(3).buffer))).toEqual([2.5, 7.5, 12.5, 17.5, 22.5]);
    // Bit patterns survive (a signalling NaN in a double slot).
    const bits = new BigUint64Array([0x7ff0000000000001n, 5n, 0xfff4000000000000n]);
    const every = DOUBLE.createVector(2, 1, 2).commit();
    const got = new BigUint64Array(2);
    every.pack(bits, 1, got);
    expect(Array.from(got)).toEqual([0x7ff0000000000001n, 0xfff4000000000000n]);
  });

  it('a type whose extent overflows 32-bit word indices packs byte-wise', () => {
    // One instance of a 32 GiB extent: the offsets no longer fit the word tables.
    const huge = DOUBLE.createVector(3, 1, 2).createResized(0, 2 ** 35).commit();
    const src = Float64Array.from({ length: 5 }, (_, i) => i + 0.5);
    const out = new Float64Array(3);
    huge.pack(src, 1, out);
    expect(Array.from(out)).toEqual([0.5, 2.5, 4.5]);
    const back = new Float64Array(5);
    huge.unpack(out, 0, back, 1);
    expect(Array.from(back)).toEqual([0.5, 0, 2.5, 0, 4.5]);
  });

  it('bad arguments and misuse get typed errors', () => {
    expect(() => DOUBLE.createVector(-1, 1, 1)).toThrow(InvalidArgumentError);
    expect(() => DOUBLE.createVector(2, 1.5, 1)).toThrow(InvalidArgumentError);
    expect(() => INT.createIndexed([1, 2], [0])).toThrow(InvalidArgumentError);
    expect(() => INT.createIndexed('x' as unknown as number[], [0])).toThrow(InvalidArgumentError);
    expect(() => INT.createSubarray([4], [3], [2])).toThrow(InvalidArgumentError);
    expect(() => INT.createSubarray([4], [2], [0], 7)).toThrow(InvalidArgumentError);
    expect(() => Datatype.createStruct([1], [0], [INT, DOUBLE])).toThrow(InvalidArgumentError);
    expect(() => DOUBLE.free()).toThrow(InvalidArgumentError);
    const t = DOUBLE.createVector(2, 1, 3);
    // Not committed: MPI forbids communicating or packing with it.
    expect(() => t.pack(new Float64Array(4), 1, new Uint8Array(16))).toThrow(/not committed/);
    t.commit();
    // Out of bounds: the second element is at 24..32 of a 16-byte buffer.
    expect(() => t.pack(new Float64Array(2), 1, new Uint8Array(16))).toThrow(InvalidArgumentError);
    expect(() => t.pack(new Float64Array(4), 1, new Uint8Array(8))).toThrow(InvalidArgumentError);
    const built = t.createContiguous(2);
    t.free();
    expect(() => t.pack(new Float64Array(4), 1, new Uint8Array(16))).toThrow(ResourceClosedError);
    expect(() => t.createContiguous(1)).toThrow(ResourceClosedError);
    // Types built before the free stay usable.
    built.commit();
    expect(built.size).toBe(32);
    {
      using d = INT.createContiguous(2);
      expect(d.freed).toBe(false);
    }
  });

  it('Status counts instances and elements of a datatype', () => {
    const pair = Datatype.createStruct([1, 1], [0, 8], [DOUBLE, INT]);
    const st = new Status(0, 0, 12 * 2 + 8);
    expect(st.getCount(pair)).toBe(UNDEFINED);
    expect(st.getElements(pair)).toBe(5);
    expect(new Status(0, 0, 24).getCount(pair)).toBe(2);
    expect(new Status(0, 0, 24 + 4).getElements(pair)).toBe(UNDEFINED);
    expect(new Status(0, 0, 40).getCount(8)).toBe(5);
  });
});

const seed = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

describe(`datatypes in communication and one-sided operations (fixtures/dtype-check.mjs, seed ${seed})`, () => {
  for (const n of [2, 4]) {
    it(`${n} ranks over shared memory`, async () => {
      const r = await runJob(n, 'dtype-check.mjs', [String(seed)], { timeoutMs: 60_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain(`dtype ok ${n}`);
    }, 90_000);
  }

  it('3 ranks over shared memory, one-sided operations by message (MPILITE_OSC=pt2pt)', async () => {
    const r = await runJob(3, 'dtype-check.mjs', [String(seed)], { env: { MPILITE_OSC: 'pt2pt' }, timeoutMs: 60_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('dtype ok 3');
  }, 90_000);

  it('3 ranks over verbs RC (soft HCA)', async () => {
    const r = await runJob(3, 'dtype-check.mjs', [String(seed)], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 60_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('dtype ok 3');
  }, 90_000);
});
