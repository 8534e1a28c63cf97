// Copies between a datatype's layout in user memory and the packed,
// contiguous form messages travel in. Runs are moved in the widest word
// (8, 4, 2 or 1 bytes) that every displacement, length, extent and both
// buffers' offsets allow, through index tables in words built once per
// type: a strided column of doubles is a gather of 8-byte words, close to
// what a hand-written loop costs. Short runs are copied by a loop, long
// ones by set() (memcpy); a subarray per short run would cost more than the
// copy. 8-byte words go through Float64Array element copies, which carry
// any bit pattern (no arithmetic touches them; the tests send signalling
// NaNs and 64-bit integers through).

import { copyRuns, copyStrided, hasCopyRuns } from '@ibal/hca';

/** What a copy needs of a datatype (Datatype has these). */
export interface Runs {
  readonly disp: Float64Array;
  readonly len: Float64Array;
  readonly extent: number;
  readonly size: number;
  readonly align: number;
}

type Words = Float64Array | Int32Array | Uint16Array | Uint8Array;

/** A type's runs in words of one size. */
interface Table {
  readonly disp: Int32Array;
  readonly len: Int32Array;
  /** Every run is one word: the copy is a plain gather or scatter. */
  readonly unit: boolean;
  readonly extent: number;
}

const LOOP_MAX = 16;
/**
 * Runs from which the native copy (hca's copyRuns) beats these loops: its
 * call costs about what a hundred short runs do here.
 */
const NATIVE_RUNS = 128;
const INT32_MAX = 2 ** 31 - 1;
const tables = new WeakMap<Runs, (Table | null | undefined)[]>();

function words(v: ArrayBufferView, w: number): Words {
  const n = Math.floor(v.byteLength / w);
  if (w === 8) return new Float64Array(v.buffer, v.byteOffset, n);
  if (w === 4) return new Int32Array(v.buffer, v.byteOffset, n);
  return w === 2 ? new Uint16Array(v.buffer, v.byteOffset, n) : new Uint8Array(v.buffer, v.byteOffset, n);
}

function wordSize(t: Runs, a: number, b: number, c: number, d: number): number {
  let w = t.align;
  while (w > 1 && (a % w !== 0 || b % w !== 0 || c % w !== 0 || d % w !== 0)) w >>= 1;
  return w;
}

/** The runs of `t` in `w`-byte words; null when a displacement in words does not fit an int32 (a type spanning gigabytes). */
function tableFor(t: Runs, w: number): Table | null {
  let cache = tables.get(t);
  if (!cache) tables.set(t, (cache = []));
  let tb = cache[w];
  if (tb === undefined) {
    const n = t.disp.length;
    const disp = new Int32Array(n);
    const len = new Int32Array(n);
    let unit = true;
    let fits = Math.abs(t.extent / w) <= INT32_MAX;
    for (let i = 0; i < n; i++) {
      const d = t.disp[i]! / w;
      const l = t.len[i]! / w;
      if (Math.abs(d) > INT32_MAX || l > INT32_MAX) fits = false;
      disp[i] = d;
      len[i] = l;
      if (l !== 1) unit = false;
    }
    tb = cache[w] = fits ? { disp, len, unit, extent: t.extent / w } : null;
  }
  return tb;
}

/**
 * Moves instances [first, first + n) of `t` laid out from byte `userOff` of
 * `user` to or from `packed` at byte `packedOff` (instance `first` goes
 * there). Bounds are the caller's to check (see checkFits).
 */
export function moveInstances(t: Runs, user: ArrayBufferView, userOff: number, first: number, n: number, packed: ArrayBufferView, packedOff: number, toPacked: boolean): void {
  if (n === 0 || t.size === 0) return;
  if (n * t.disp.length >= NATIVE_RUNS && hasCopyRuns()) {
    moveNative(t, user, userOff, first, n, packed, packedOff, toPacked);
    return;
  }
  let w = wordSize(t, user.byteOffset, userOff, packed.byteOffset, packedOff);
  let tb = tableFor(t, w);
  // Offsets past 2^31 words only with bytes as words for huge types: use the slow path.
  while (tb === null && w > 1) tb = tableFor(t, (w >>= 1));
  if (tb === null) {
    moveSlow(t, user, userOff, first, n, packed, packedOff, toPacked);
    return;
  }
  const U = words(user, w);
  const P = words(packed, w);
  const { disp, len, unit, extent } = tb;
  const runs = disp.length;
  let p = packedOff / w;
  const base = userOff / w;
  for (let k = first; k < first + n; k++) {
    const at = base + k * extent;
    if (unit) {
      if (toPacked) for (let i = 0; i < runs; i++) P[p + i] = U[at + disp[i]!]!;
      else for (let i = 0; i < runs; i++) U[at + disp[i]!] = P[p + i]!;
      p += runs;
      continue;
    }
    for (let i = 0; i < runs; i++) {
      const u = at + disp[i]!;
      const l = len[i]!;
      if (l > LOOP_MAX) {
        if (toPacked) P.set(U.subarray(u, u + l), p);
        else U.set(P.subarray(p, p + l), u);
      } else if (toPacked) {
        for (let j = 0; j < l; j++) P[p + j] = U[u + j]!;
      } else {
        for (let j = 0; j < l; j++) U[u + j] = P[p + j]!;
      }
      p += l;
    }
  }
}

/** Runs of one length evenly spaced (a vector's): the native copy needs no table then. */
interface Regular {
  readonly start: number;
  readonly stride: number;
  readonly len: number;
}

const regulars = new WeakMap<Runs, Regular | null>();

function regularOf(t: Runs): Regular | null {
  let g = regulars.get(t);
  if (g === undefined) {
    const { disp, len } = t;
    const stride = disp.length > 1 ? disp[1]! - disp[0]! : t.extent;
    let even = true;
    for (let i = 1; i < disp.length && even; i++) even = len[i] === len[0] && disp[i]! - disp[i - 1]! === stride;
    g = even ? { start: disp[0]!, stride, len: len[0]! } : null;
    regulars.set(t, g);
  }
  return g;
}

function moveNative(t: Runs, user: ArrayBufferView, userOff: number, first: number, n: number, packed: ArrayBufferView, packedOff: number, toPacked: boolean): void {
  const g = regularOf(t);
  const runs = t.disp.length;
  if (!g) {
    copyRuns(toPacked, user, userOff, packed, packedOff, t.disp, t.len, t.extent, first, n);
    return;
  }
  // Instances that carry the stride on (one run each, or a vector whose
  // extent is its stride times its runs) are a single strided copy.
  if (runs === 1 || t.extent === runs * g.stride) {
    copyStrided(toPacked, user, userOff + first * t.extent + g.start, packed, packedOff, runs === 1 ? t.extent : g.stride, g.len, n * runs);
    return;
  }
  for (let k = 0; k < n; k++) copyStrided(toPacked, user, userOff + (first + k) * t.extent + g.start, packed, packedOff + k * t.size, g.stride, g.len, runs);
}

/** Byte by byte with offsets as doubles: for types whose offsets overflow int32 word indices. */
function moveSlow(t: Runs, user: ArrayBufferView, userOff: number, first: number, n: number, packed: ArrayBufferView, packedOff: number, toPacked: boolean): void {
  const U = words(user, 1);
  const P = words(packed, 1);
  let p = packedOff;
  for (let k = first; k < first + n; k++) {
    const at = userOff + k * t.extent;
    for (let i = 0; i < t.disp.length; i++) {
      const u = at + t.disp[i]!;
      const l = t.len[i]!;
      if (toPacked) P.set(U.subarray(u, u + l), p);
      else U.set(P.subarray(p, p + l), u);
      p += l;
    }
  }
}

/**
 * Unpacks the first `bytes` of `packed` (from its start) into instances
 * laid out from byte `userOff` of `user`: whole instances, then as much of
 * the next as arrived, run by run (a receive shorter than its buffer).
 */
export function moveBytes(t: Runs, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, bytes: number): void {
  if (t.size === 0) return;
  const whole = Math.floor(bytes / t.size);
  moveInstances(t, user, userOff, 0, whole, packed, 0, false);
  let left = bytes - whole * t.size;
  if (left === 0) return;
  const U = words(user, 1);
  const P = words(packed, 1);
  const base = userOff + whole * t.extent;
  let p = whole * t.size;
  for (let i = 0; left > 0; i++) {
    const l = Math.min(t.len[i]!, left);
    const u = base + t.disp[i]!;
    U.set(P.subarray(p, p + l), u);
    p += l;
    left -= l;
  }
}
