// MPI datatypes (MPI_Datatype). A predefined type names one element type
// (MPI_DOUBLE is a Float64Array's element); a derived one (vector, indexed,
// subarray, struct, resized) says where a message's elements lie in memory,
// so a matrix column or a halo face travels without the caller packing it.
//
// A type is flattened as it is built, into its type map as byte runs
// (displacement, length) in type-map order, adjacent runs merged: packing is
// then one loop over runs, whatever constructors built the type, and a type
// stays whole when the types it was built from are freed.
import { InvalidArgumentError, ResourceClosedError } from '@ibal/hca';
import type { TypedArray } from '../ops.js';
import { moveBytes, moveInstances } from './pack.js';

type ArrayClass = (new (n: number) => TypedArray) & { readonly BYTES_PER_ELEMENT: number };

/** Row-major (C) and column-major (Fortran) order for createSubarray. */
export const ORDER_C = 0;
export const ORDER_FORTRAN = 1;

/** Instances of `type` starting at byte `disp`, one extent apart. */
interface Placement {
  readonly disp: number;
  readonly count: number;
  readonly type: Datatype;
}

interface Layout {
  readonly name: string;
  readonly disp: readonly number[];
  readonly len: readonly number[];
  readonly elemBytes: readonly number[];
  readonly lb: number;
  readonly extent: number;
  readonly array: ArrayClass | undefined;
  readonly predefined: boolean;
}

export class Datatype {
  /** The type's name: MPI's for predefined types (MPI_DOUBLE), the constructor's for derived ones. */
  readonly name: string;
  /** MPI_Type_size: bytes of data in one instance (holes not counted). */
  readonly size: number;
  /** Lower bound: where an instance starts, in bytes from its address. */
  readonly lb: number;
  /** Extent: the stride between consecutive instances in a buffer, in bytes. */
  readonly extent: number;
  /** Where the data of an instance really starts and how far it spans (MPI_Type_get_true_extent). */
  readonly trueLb: number;
  readonly trueExtent: number;
  /** True for MPI's named types (never committed or freed by the program). */
  readonly predefined: boolean;
  /** @internal Type-map runs: byte displacements, lengths, element size. */
  readonly disp: Float64Array;
  /** @internal */
  readonly len: Float64Array;
  /** @internal */
  readonly elemBytes: Uint8Array;
  /** @internal Largest of 8, 4, 2, 1 dividing every displacement, length and the extent. */
  readonly align: number;
  /** @internal Basic elements in one instance (MPI_Get_elements' unit). */
  readonly elements: number;
  readonly #array: ArrayClass | undefined;
  #committed: boolean;
  #freed = false;

  /** @internal Use the predefined types and their create* methods. */
  constructor(layout: Layout) {
    this.name = layout.name;
    this.predefined = layout.predefined;
    this.#committed = layout.predefined;
    this.#array = layout.array;
    this.disp = Float64Array.from(layout.disp);
    this.len = Float64Array.from(layout.len);
    this.elemBytes = Uint8Array.from(layout.elemBytes);
    this.lb = layout.lb;
    this.extent = layout.extent;
    let size = 0;
    let elements = 0;
    let lo = Infinity;
    let hi = -Infinity;
    let align = 8;
    const fit = (v: number): void => {
      while (align > 1 && v % align !== 0) align >>= 1;
    };
    for (let i = 0; i < this.disp.length; i++) {
      const d = this.disp[i]!;
      const l = this.len[i]!;
      size += l;
      elements += l / this.elemBytes[i]!;
      lo = Math.min(lo, d);
      hi = Math.max(hi, d + l);
      fit(d);
      fit(l);
    }
    fit(this.extent);
    fit(this.lb);
    this.size = size;
    this.elements = elements;
    this.trueLb = this.disp.length > 0 ? lo : 0;
    this.trueExtent = this.disp.length > 0 ? hi - lo : 0;
    this.align = align;
  }

  /** MPI_UB: lb + extent. */
  get ub(): number {
    return this.lb + this.extent;
  }

  /** MPI_Type_get_extent: [lb, extent] in bytes. */
  getExtent(): [number, number] {
    this.#check('getExtent');
    return [this.lb, this.extent];
  }

  /** MPI_Type_get_true_extent: [trueLb, trueExtent] in bytes. */
  getTrueExtent(): [number, number] {
    this.#check('getTrueExtent');
    return [this.trueLb, this.trueExtent];
  }

  /** MPI_Type_size. */
  getSize(): number {
    this.#check('getSize');
    return this.size;
  }

  /**
   * The typed array class a message of this type is handled as once packed
   * (the element type reductions and type checks see): the one element type
   * the type is built from, or Uint8Array for a struct of mixed types.
   */
  get arrayClass(): ArrayClass {
    return this.#array ?? Uint8Array;
  }

  /** @internal Whether every element is of one type (reductions need that). */
  get homogeneous(): boolean {
    return this.#array !== undefined;
  }

  /** @internal One run as long as the extent: instances follow one another with no hole. */
  get contiguous(): boolean {
    return this.disp.length === 1 && this.len[0] === this.extent;
  }

  get committed(): boolean {
    return this.#committed;
  }

  get freed(): boolean {
    return this.#freed;
  }

  /** MPI_Type_commit: required before the type is used to communicate or pack. Returns this (mpi4py's chaining). */
  commit(): this {
    this.#check('commit');
    this.#committed = true;
    return this;
  }

  /**
   * MPI_Type_free. Types built from this one stay valid; using this one
   * afterwards throws ResourceClosedError. Predefined types cannot be freed.
   */
  free(): void {
    if (this.predefined) throw new InvalidArgumentError(`free: ${this.name} is predefined`);
    this.#freed = true;
  }

  [Symbol.dispose](): void {
    if (!this.predefined && !this.#freed) this.free();
  }

  /** @internal Throws unless the type may be used to communicate or pack. */
  checkUsable(what: string): void {
    this.#check(what);
    if (!this.#committed) throw new InvalidArgumentError(`${what}: datatype ${this.name} is not committed (call commit() first)`);
  }

  #check(what: string): void {
    if (this.#freed) throw new ResourceClosedError(`datatype ${this.name} (${what})`);
  }

  // ---- constructors (MPI_Type_create_*), mpi4py's methods on the old type ----

  /** MPI_Type_dup. */
  dup(): Datatype {
    this.#check('dup');
    return derive(this.name, [{ disp: 0, count: 1, type: this }], { lb: this.lb, extent: this.extent });
  }

  /** MPI_Type_contiguous: `count` instances one after another. */
  createContiguous(count: number): Datatype {
    this.#check('createContiguous');
    checkCount(count, 'createContiguous: count');
    return derive(`Contiguous(${this.name})`, [{ disp: 0, count, type: this }]);
  }

  /** MPI_Type_vector: `count` blocks of `blocklength` instances, block starts `stride` extents apart. */
  createVector(count: number, blocklength: number, stride: number): Datatype {
    this.#check('createVector');
    checkInt(stride, 'createVector: stride');
    return this.#hvector('Vector', count, blocklength, stride * this.extent);
  }

  /** MPI_Type_create_hvector: createVector with the stride in bytes. */
  createHvector(count: number, blocklength: number, stride: number): Datatype {
    this.#check('createHvector');
    checkInt(stride, 'createHvector: stride');
    return this.#hvector('Hvector', count, blocklength, stride);
  }

  #hvector(kind: string, count: number, blocklength: number, stride: number): Datatype {
    checkCount(count, `create${kind}: count`);
    checkCount(blocklength, `create${kind}: blocklength`);
    const blocks: Placement[] = [];
    for (let i = 0; i < count; i++) blocks.push({ disp: i * stride, count: blocklength, type: this });
    return derive(`${kind}(${this.name})`, blocks);
  }

  /** MPI_Type_indexed: block i is blocklengths[i] instances at displacements[i] extents. */
  createIndexed(blocklengths: readonly number[], displacements: readonly number[]): Datatype {
    this.#check('createIndexed');
    checkList(blocklengths, undefined, 'createIndexed: blocklengths', true);
    checkList(displacements, blocklengths.length, 'createIndexed: displacements');
    return this.#indexed('Indexed', blocklengths, displacements.map((d) => d * this.extent));
  }

  /** MPI_Type_create_hindexed: createIndexed with displacements in bytes. */
  createHindexed(blocklengths: readonly number[], displacements: readonly number[]): Datatype {
    this.#check('createHindexed');
    return this.#indexed('Hindexed', blocklengths, displacements);
  }

  /** MPI_Type_create_indexed_block: blocks of one length at displacements in extents. */
  createIndexedBlock(blocklength: number, displacements: readonly number[]): Datatype {
    this.#check('createIndexedBlock');
    checkCount(blocklength, 'createIndexedBlock: blocklength');
    checkList(displacements, undefined, 'createIndexedBlock: displacements');
    return this.#indexed('IndexedBlock', displacements.map(() => blocklength), displacements.map((d) => d * this.extent));
  }

  /** MPI_Type_create_hindexed_block: createIndexedBlock with displacements in bytes. */
  createHindexedBlock(blocklength: number, displacements: readonly number[]): Datatype {
    this.#check('createHindexedBlock');
    checkCount(blocklength, 'createHindexedBlock: blocklength');
    checkList(displacements, undefined, 'createHindexedBlock: displacements');
    return this.#indexed('HindexedBlock', displacements.map(() => blocklength), displacements);
  }

  #indexed(kind: string, blocklengths: readonly number[], byteDispls: readonly number[]): Datatype {
    checkList(blocklengths, undefined, `create${kind}: blocklengths`, true);
    checkList(byteDispls, blocklengths.length, `create${kind}: displacements`);
    return derive(`${kind}(${this.name})`, blocklengths.map((count, i) => ({ disp: byteDispls[i]!, count, type: this })));
  }

  /**
   * MPI_Type_create_subarray: the block `subsizes` at `starts` of an array
   * of `sizes` (row-major with ORDER_C, column-major with ORDER_FORTRAN);
   * its extent is the whole array's, so consecutive instances are
   * consecutive arrays.
   */
  createSubarray(sizes: readonly number[], subsizes: readonly number[], starts: readonly number[], order: number = ORDER_C): Datatype {
    this.#check('createSubarray');
    const n = sizes.length;
    checkList(sizes, undefined, 'createSubarray: sizes', true);
    checkList(subsizes, n, 'createSubarray: subsizes', true);
    checkList(starts, n, 'createSubarray: starts', true);
    if (n === 0) throw new InvalidArgumentError('createSubarray: needs at least one dimension');
    if (order !== ORDER_C && order !== ORDER_FORTRAN) throw new InvalidArgumentError(`createSubarray: order ${String(order)} is not ORDER_C or ORDER_FORTRAN`);
    for (let i = 0; i < n; i++) {
      if (sizes[i]! < 1 || subsizes[i]! < 1 || starts[i]! + subsizes[i]! > sizes[i]!) {
        throw new InvalidArgumentError(`createSubarray: dimension ${i}: need 1 <= subsize and start + subsize <= size (size ${sizes[i]}, subsize ${subsizes[i]}, start ${starts[i]})`);
      }
    }
    // Dimensions from the fastest-varying one out.
    const dims = [...Array(n).keys()];
    if (order === ORDER_C) dims.reverse();
    const strides: number[] = [];
    let stride = this.extent;
    for (const d of dims) {
      strides[d] = stride;
      stride *= sizes[d]!;
    }
    const inner = dims[0]!;
    const blocks: Placement[] = [];
    // One run of subsizes[inner] elements per point of the outer dimensions.
    const outer = dims.slice(1).reverse();
    const at = outer.map(() => 0);
    for (;;) {
      let disp = starts[inner]! * strides[inner]!;
      outer.forEach((d, i) => (disp += (starts[d]! + at[i]!) * strides[d]!));
      blocks.push({ disp, count: subsizes[inner]!, type: this });
      let i = outer.length - 1;
      while (i >= 0 && ++at[i]! === subsizes[outer[i]!]!) at[i--] = 0;
      if (i < 0) break;
    }
    return derive(`Subarray(${this.name})`, blocks, { lb: 0, extent: stride });
  }

  /** MPI_Type_create_resized: the same data with a new lower bound and extent (the stride of consecutive instances). */
  createResized(lb: number, extent: number): Datatype {
    this.#check('createResized');
    checkInt(lb, 'createResized: lb');
    checkInt(extent, 'createResized: extent');
    return derive(`Resized(${this.name})`, [{ disp: 0, count: 1, type: this }], { lb, extent });
  }

  /**
   * MPI_Type_create_struct: block i is blocklengths[i] instances of
   * datatypes[i] at displacements[i] bytes. As the standard says, the
   * extent is rounded up to the alignment of the widest element (a
   * { double, int } struct has extent 16), so arrays of structs line up.
   */
  static createStruct(blocklengths: readonly number[], displacements: readonly number[], datatypes: readonly Datatype[]): Datatype {
    checkList(blocklengths, undefined, 'createStruct: blocklengths', true);
    checkList(displacements, blocklengths.length, 'createStruct: displacements');
    if (!Array.isArray(datatypes) || datatypes.length !== blocklengths.length || !datatypes.every((t) => t instanceof Datatype)) {
      throw new InvalidArgumentError(`createStruct: datatypes must be ${blocklengths.length} Datatypes`);
    }
    for (const t of datatypes) t.#check('createStruct');
    return derive(`Struct(${datatypes.map((t) => t.name).join(', ')})`, blocklengths.map((count, i) => ({ disp: displacements[i]!, count, type: datatypes[i]! })), { struct: true });
  }

  /** The predefined type of a typed array's elements (a Float64Array's is DOUBLE). */
  static of(array: TypedArray): Datatype {
    const t = BY_CLASS.get(elementClass(array));
    if (!t) throw new InvalidArgumentError('Datatype.of: takes a typed array');
    return t;
  }

  // ---- packing (MPI_Pack, MPI_Unpack, MPI_Pack_size) ----------------------

  /** MPI_Pack_size: bytes `count` instances take packed. */
  packSize(count: number): number {
    this.#check('packSize');
    checkCount(count, 'packSize: count');
    return count * this.size;
  }

  /**
   * MPI_Pack: packs `count` instances laid out from the start of `inbuf`
   * into `outbuf` at byte `position`; returns the position after them.
   */
  pack(inbuf: ArrayBufferView, count: number, outbuf: ArrayBufferView, position = 0): number {
    return this.#packed('pack', inbuf, outbuf, position, count, true);
  }

  /**
   * MPI_Unpack: unpacks `count` instances from `inbuf` at byte `position`
   * into `outbuf`'s layout; returns the position after them.
   */
  unpack(inbuf: ArrayBufferView, position: number, outbuf: ArrayBufferView, count: number): number {
    return this.#packed('unpack', outbuf, inbuf, position, count, false);
  }

  /** Checks, then moves `count` instances between `user`'s layout and `packed` at `position`. */
  #packed(what: string, user: ArrayBufferView, packed: ArrayBufferView, position: number, count: number, toPacked: boolean): number {
    const [userName, packedName] = toPacked ? ['inbuf', 'outbuf'] : ['outbuf', 'inbuf'];
    this.checkUsable(what);
    checkCount(count, `${what}: count`);
    checkView(user, `${what}: ${userName}`);
    checkView(packed, `${what}: ${packedName}`);
    checkCount(position, `${what}: position`);
    checkFits(this, user, 0, count, `${what}: ${userName}`);
    const end = position + count * this.size;
    if (end > packed.byteLength) throw new InvalidArgumentError(`${what}: ${count * this.size} bytes at position ${position} run past ${packedName}'s ${packed.byteLength}`);
    moveInstances(this, user, 0, 0, count, packed, position, toPacked);
    return end;
  }

  /** @internal Unpacks the first `bytes` of a packed message (a short receive fills only what arrived). */
  unpackPrefix(user: ArrayBufferView, userOff: number, packed: ArrayBufferView, bytes: number): void {
    moveBytes(this, user, userOff, packed, bytes);
  }

  toString(): string {
    return this.name;
  }
}

function derive(name: string, placements: readonly Placement[], opts: { lb?: number; extent?: number; struct?: boolean } = {}): Datatype {
  const disp: number[] = [];
  const len: number[] = [];
  const elemBytes: number[] = [];
  const push = (d: number, l: number, e: number): void => {
    const last = disp.length - 1;
    if (last >= 0 && elemBytes[last] === e && disp[last]! + len[last]! === d) len[last]! += l;
    else {
      disp.push(d);
      len.push(l);
      elemBytes.push(e);
    }
  };
  let lo = Infinity;
  let hi = -Infinity;
  let array: ArrayClass | undefined;
  let mixed = false;
  let widest = 1;
  for (const { disp: at, count, type } of placements) {
    if (count === 0) continue;
    const cls = type.homogeneous ? type.arrayClass : undefined;
    if (cls === undefined || (array !== undefined && array !== cls)) mixed = true;
    array ??= cls;
    for (const e of type.elemBytes) widest = Math.max(widest, e);
    const last = at + (count - 1) * type.extent;
    lo = Math.min(lo, at + type.lb, last + type.lb);
    hi = Math.max(hi, at + type.ub, last + type.ub);
    if (type.contiguous) {
      // Consecutive instances of a one-run type are one longer run.
      push(at + type.disp[0]!, count * type.len[0]!, type.elemBytes[0]!);
      continue;
    }
    for (let k = 0; k < count; k++) {
      const base = at + k * type.extent;
      for (let i = 0; i < type.disp.length; i++) push(base + type.disp[i]!, type.len[i]!, type.elemBytes[i]!);
    }
  }
  // An empty type map keeps the element type of what it was built from (so
  // an empty block still passes type checks against its partner's).
  if (array === undefined && !mixed) array = placements.find((p) => p.type.homogeneous)?.type.arrayClass;
  if (lo === Infinity) lo = hi = 0;
  let extent = hi - lo;
  if (opts.struct && extent % widest !== 0) extent += widest - (extent % widest);
  return new Datatype({
    name,
    disp,
    len,
    elemBytes,
    lb: opts.lb ?? lo,
    extent: opts.extent ?? extent,
    array: mixed ? undefined : array,
    predefined: false,
  });
}

/** Throws unless `count` instances of `t` from byte `off` of `view` lie inside it. */
export function checkFits(t: Datatype, view: ArrayBufferView, off: number, count: number, what: string): void {
  if (count === 0 || t.size === 0) return;
  const last = (count - 1) * t.extent;
  const lo = off + Math.min(0, last) + t.trueLb;
  const hi = off + Math.max(0, last) + t.trueLb + t.trueExtent;
  if (lo < 0 || hi > view.byteLength) {
    throw new InvalidArgumentError(`${what}: ${count} x ${t.name} spans bytes [${lo}, ${hi}) of a ${view.byteLength}-byte buffer`);
  }
}

function checkInt(v: unknown, what: string): void {
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`${what} must be an integer, got ${String(v)}`);
}

function checkCount(v: unknown, what: string): void {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${String(v)}`);
}

function checkList(v: unknown, length: number | undefined, what: string, nonNegative = false): void {
  if (!Array.isArray(v) || (length !== undefined && v.length !== length) || !v.every((x) => Number.isSafeInteger(x) && (!nonNegative || x >= 0))) {
    throw new InvalidArgumentError(`${what} must be ${length ?? 'a list of'} ${nonNegative ? 'non-negative ' : ''}integers`);
  }
}

function checkView(v: unknown, what: string): void {
  if (!ArrayBuffer.isView(v)) throw new InvalidArgumentError(`${what} must be a typed array, Buffer or DataView`);
}

function predefined(name: string, array: ArrayClass): Datatype {
  const n = array.BYTES_PER_ELEMENT;
  return new Datatype({ name, disp: [0], len: [n], elemBytes: [n], lb: 0, extent: n, array, predefined: true });
}

function elementClass(a: TypedArray): unknown {
  let c: unknown = a.constructor;
  while (c && !BY_CLASS.has(c)) c = Object.getPrototypeOf(c);
  return c;
}

// MPI's names for the C types, sized as on LP64 Linux (what Open MPI and
// MPICH use there), and the fixed-width ones.
export const CHAR = predefined('MPI_CHAR', Int8Array);
export const SIGNED_CHAR = predefined('MPI_SIGNED_CHAR', Int8Array);
export const UNSIGNED_CHAR = predefined('MPI_UNSIGNED_CHAR', Uint8Array);
export const BYTE = predefined('MPI_BYTE', Uint8Array);
export const PACKED = predefined('MPI_PACKED', Uint8Array);
export const SHORT = predefined('MPI_SHORT', Int16Array);
export const UNSIGNED_SHORT = predefined('MPI_UNSIGNED_SHORT', Uint16Array);
export const INT = predefined('MPI_INT', Int32Array);
export const UNSIGNED = predefined('MPI_UNSIGNED', Uint32Array);
export const LONG = predefined('MPI_LONG', BigInt64Array);
export const UNSIGNED_LONG = predefined('MPI_UNSIGNED_LONG', BigUint64Array);
export const LONG_LONG = predefined('MPI_LONG_LONG', BigInt64Array);
export const UNSIGNED_LONG_LONG = predefined('MPI_UNSIGNED_LONG_LONG', BigUint64Array);
export const FLOAT = predefined('MPI_FLOAT', Float32Array);
export const DOUBLE = predefined('MPI_DOUBLE', Float64Array);
export const INT8_T = predefined('MPI_INT8_T', Int8Array);
export const UINT8_T = predefined('MPI_UINT8_T', Uint8Array);
export const INT16_T = predefined('MPI_INT16_T', Int16Array);
export const UINT16_T = predefined('MPI_UINT16_T', Uint16Array);
export const INT32_T = predefined('MPI_INT32_T', Int32Array);
export const UINT32_T = predefined('MPI_UINT32_T', Uint32Array);
export const INT64_T = predefined('MPI_INT64_T', BigInt64Array);
export const UINT64_T = predefined('MPI_UINT64_T', BigUint64Array);

const BY_CLASS: ReadonlyMap<unknown, Datatype> = new Map<unknown, Datatype>([
  [Int8Array, INT8_T],
  [Uint8Array, UINT8_T],
  [Uint8ClampedArray, predefined('MPI_UINT8_T', Uint8ClampedArray)],
  [Int16Array, INT16_T],
  [Uint16Array, UINT16_T],
  [Int32Array, INT32_T],
  [Uint32Array, UINT32_T],
  [Float32Array, FLOAT],
  [Float64Array, DOUBLE],
  [BigInt64Array, INT64_T],
  [BigUint64Array, UINT64_T],
]);
