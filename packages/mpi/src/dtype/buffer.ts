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
import { bytesOf, checkCounts, isTypedArray, prefix } from '../args.js';
import { checkOp, type Op, type TypedArray } from '../ops.js';
import { checkFits, Datatype } from './datatype.js';
import { moveInstances } from './pack.js';

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
  /** After a receive: moves the first `bytes` of `array` into the caller's layout; undefined when `array` is the caller's memory. */
  readonly unpack: ((bytes: number) => void) | undefined;
}

const USAGE = 'a typed array, or [buffer, datatype], [buffer, count, datatype] or [buffer, [count, displacement], datatype]';

export function side(b: unknown, what: string, use: Use): Side {
  if (isTypedArray(b)) return { array: b, per: 1, count: b.length, datatype: undefined, pack: undefined, unpack: undefined };
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
    return { array, per, count: n, datatype: type, pack: undefined, unpack: undefined };
  }
  const array = new cls(n * per);
  const pack = (): void => moveInstances(type, view, off, 0, n, array, 0, true);
  if (use !== 'recv') pack();
  const unpack = use === 'send' ? undefined : (bytes: number): void => type.unpackPrefix(view, off, array, bytes);
  return { array, per, count: n, datatype: type, pack, unpack };
}

/** The instances of `type` that fit in `view` from its start ([buffer, datatype] gives no count). */
function fitting(type: Datatype, view: ArrayBufferView): number {
  if (type.size === 0) return 0;
  if (type.extent <= 0) throw new InvalidArgumentError(`${type.name} has extent ${type.extent}: give a count ([buffer, count, datatype])`);
  const span = type.trueLb + type.trueExtent;
  return span > view.byteLength ? 0 : Math.floor((view.byteLength - span) / type.extent) + 1;
}

/** The bytes a send moves: a plain typed array's own, or its datatype's packed copy. */
export function sendBytes(b: unknown, what: string): Uint8Array {
  return bytesOf(isTypedArray(b) ? b : side(b, what, 'send').array);
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
