// Message buffers as mpi4py takes them: a typed array (all its elements, of
// the array's own type), or a list naming a datatype:
//   [buffer, datatype]                      as many instances as fit
//   [buffer, count, datatype]               count instances from the start
//   [buffer, [count, displ], datatype]      from displ extents in
// The transports and collectives move contiguous typed arrays; a side is
// that array for one buffer: the caller's own memory when the layout is
// contiguous, else a packed copy (filled before a send, emptied into the
// caller's layout after a receive), as MPI libraries pack non-contiguous
// types.
import { InvalidArgumentError } from '@ibal/hca';
import { checkCounts, isTypedArray, prefix } from '../args.js';
import { checkOp, type Op, type TypedArray } from '../ops.js';
import { checkFits, Datatype } from './datatype.js';
import { moveInstances } from './pack.js';
import type { Request } from '../request.js';
import { borrowOf } from '../scratch.js';

export type BufSpec = readonly [ArrayBufferView, Datatype] | readonly [ArrayBufferView, number | readonly [number, number], Datatype];

/** A message buffer: a typed array, or a typed array, Buffer or DataView with a datatype (see BufSpec). */
export type Buf = TypedArray | BufSpec;

/**
 * How a call uses a buffer: 'send' reads it, 'recv' writes it, 'inout'
 * does both or may leave parts untouched (in-place reductions, blocks a
 * v-collective or a PROC_NULL neighbor does not fill), so a packed copy
 * starts from the caller's data.
 */
export type Use = 'send' | 'recv' | 'inout';

export interface Side {
  /** The contiguous elements the operation moves. */
  readonly array: TypedArray;
  /** Elements of `array` per count (one datatype instance; 1 for a plain typed array). */
  readonly per: number;
  /** Counts (instances) in the buffer. */
  readonly count: number;
  readonly datatype: Datatype | undefined;
  /** Refills `array` from the caller's layout (a persistent send's start); undefined when `array` is the caller's memory. */
  readonly pack: (() => void) | undefined;
  /**
   * After a receive: moves the first `bytes` of `array` into the caller's
   * layout, then releases it; undefined when `array` is the caller's memory.
   */
  readonly unpack: ((bytes: number) => void) | undefined;
  /** Gives a pooled packed copy back once the transfer is over (no-op otherwise; once only). */
  readonly release: () => void;
}

const none = (): void => {};

const USAGE = 'a typed array, or [buffer, datatype], [buffer, count, datatype] or [buffer, [count, displacement], datatype]';

/**
 * The contiguous side of buffer `b`. A packed copy comes from the scratch
 * pool unless `pooled` is false (persistent requests keep theirs for their
 * lifetime); release() or unpack() gives it back.
 */
export function side(b: unknown, what: string, use: Use, pooled = true): Side {
  if (isTypedArray(b)) return { array: b, per: 1, count: b.length, datatype: undefined, pack: undefined, unpack: undefined, release: none };
  if (!Array.isArray(b) || (b.length !== 2 && b.length !== 3) || !(b[b.length - 1] instanceof Datatype)) {
    throw new InvalidArgumentError(`${what} must be ${USAGE}`);
  }
  const view: unknown = b[0];
  if (!ArrayBuffer.isView(view)) throw new InvalidArgumentError(`${what}: the buffer of [buffer, ..., datatype] must be a typed array, Buffer or DataView`);
  const type = b[b.length - 1] as Datatype;
  type.checkUsable(what);
  let count: unknown;
  let displ: unknown = 0;
  if (b.length === 2) count = fitting(type, view);
  else if (Array.isArray(b[1])) [count, displ] = b[1] as unknown[];
  else count = b[1];
  if (!Number.isSafeInteger(count) || (count as number) < 0) throw new InvalidArgumentError(`${what}: count must be a non-negative integer, got ${String(count)}`);
  if (!Number.isSafeInteger(displ)) throw new InvalidArgumentError(`${what}: displacement must be an integer, got ${String(displ)}`);
  const n = count as number;
  const off = (displ as number) * type.extent;
  checkFits(type, view, off, n, what);
  const cls = type.arrayClass;
  const unit = cls.BYTES_PER_ELEMENT;
  const per = type.size / unit;
  const start = view.byteOffset + off + (type.size > 0 ? type.disp[0]! : 0);
  if (type.size === 0 || ((type.contiguous || (n <= 1 && type.disp.length === 1)) && start % unit === 0)) {
    // Already contiguous (and aligned for its element type): no copy.
    const array = type.size === 0 ? new cls(0) : new (cls as unknown as new (b: ArrayBufferLike, o: number, n: number) => TypedArray)(view.buffer, start, n * per);
    return { array, per, count: n, datatype: type, pack: undefined, unpack: undefined, release: none };
  }
  const scratch = pooled ? borrowOf(cls, n * per) : undefined;
  const array = scratch ? scratch.buf : new cls(n * per);
  const release = scratch ? scratch.done : none;
  const pack = (): void => moveInstances(type, view, off, 0, n, array, 0, true);
  if (use !== 'recv') pack();
  const unpack =
    use === 'send'
      ? undefined
      : (bytes: number): void => {
          type.unpackPrefix(view, off, array, bytes);
          release();
        };
  return { array, per, count: n, datatype: type, pack, unpack, release };
}

/** The instances of `type` that fit in `view` from its start ([buffer, datatype] gives no count). */
function fitting(type: Datatype, view: ArrayBufferView): number {
  if (type.size === 0) return 0;
  if (type.extent <= 0) throw new InvalidArgumentError(`${type.name} has extent ${type.extent}: give a count ([buffer, count, datatype])`);
  const span = type.trueLb + type.trueExtent;
  return span > view.byteLength ? 0 : Math.floor((view.byteLength - span) / type.extent) + 1;
}

/**
 * Gives a send's packed copy back once the request is done with it: at
 * once if it already completed (an eager send copied it out), else when it
 * completes. A failed send leaves it to the garbage collector.
 */
export function releaseAfter(req: Request<unknown>, s: Side): void {
  if (s.release === none) return;
  if (req.done) s.release();
  else req.finish = s.release;
}

/**
 * The op, checked for the elements of `s` (bitwise ops on floats fail), and
 * for the datatype: a struct of mixed element types has no element-wise
 * meaning for a reduction (MPI leaves it undefined; here it is refused).
 */
export function reductionOp(op: unknown, s: Side, what: string): Op {
  const o = checkOp(op, what);
  if (s.datatype && !s.datatype.homogeneous) throw new InvalidArgumentError(`${what}: ${s.datatype.name} mixes element types; a reduction needs one element type`);
  o.check(s.array);
  return o;
}

/**
 * Counts and displacements of a v-collective, given in elements of `side`
 * (instances of its datatype), as elements of its contiguous array.
 * Missing displacements pack the blocks one after another.
 */
export function scaled(counts: number[] | undefined, displs: number[] | undefined, side: Side, size: number, what: string): [number[], number[]] {
  const d = displs ?? prefix(counts ?? []);
  checkCounts(counts, d, size, what, side.count);
  return [counts!.map((n) => n * side.per), d.map((n) => n * side.per)];
}

/**
 * The blocks of an Alltoallw-style call: block j is counts[j] instances of
 * types[j] at byte displacement displs[j] of `buf` (MPI's *w calls count
 * displacements in bytes, the types being unrelated).
 */
export function typedBlocks(buf: unknown, counts: unknown, displs: unknown, types: unknown, n: number, what: string, use: Use): Side[] {
  if (!ArrayBuffer.isView(buf)) throw new InvalidArgumentError(`${what}: the buffer must be a typed array, Buffer or DataView`);
  // The *w calls have no default displacements: blocks of unrelated types have no natural packing.
  if (!Array.isArray(displs)) throw new InvalidArgumentError(`${what}: displacements must be ${n} byte offsets`);
  checkCounts(counts as number[], displs as number[], n, what);
  if (!Array.isArray(types) || types.length !== n || !types.every((t) => t instanceof Datatype)) throw new InvalidArgumentError(`${what}: types must be ${n} Datatypes`);
  return (counts as number[]).map((count, j) => {
    const at = (displs as number[])[j]!;
    if (at > buf.byteLength) throw new InvalidArgumentError(`${what}: block ${j} starts at byte ${at}, past the buffer's ${buf.byteLength}`);
    const view = new Uint8Array(buf.buffer, buf.byteOffset + at, buf.byteLength - at);
    return side([view, count, types[j] as Datatype], `${what} block ${j}`, use);
  });
}

/** `n` elements of `s`'s array from `start`, as a side of their own (an in-place collective's own block). */
export function blockOf(s: Side, start: number, n: number): Side {
  return { array: s.array.subarray(start, start + n), per: s.per, count: n / s.per, datatype: s.datatype, pack: undefined, unpack: undefined, release: none };
}

/** A copy of `s`'s elements to send from, when the receive overwrites them (in-place all-to-all and reduce-scatter). */
export function copyOfSide(s: Side): Side {
  return { ...blockOf(s, 0, s.array.length), array: s.array.slice() };
}
