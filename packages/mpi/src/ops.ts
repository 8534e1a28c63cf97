// Reduction operations (MPI_Op) on typed arrays. As in MPI, an operation
// combines `invec` into `inoutvec` element by element:
// inoutvec[i] = invec[i] op inoutvec[i], where invec holds the lower ranks'
// contribution, so non-commutative user operations see operands in rank
// order. MAXLOC and MINLOC work on (value, index) pairs stored one after
// the other in the array (MPI_DOUBLE_INT and friends as two elements).
import { InvalidArgumentError } from '@ibal/hca';

export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

type Num = number & bigint;
type Vec = { length: number; [i: number]: Num };

export type OpFunction = (invec: TypedArray, inoutvec: TypedArray) => void;

export class Op {
  readonly name: string;
  readonly commutative: boolean;
  readonly #fn: OpFunction;
  /** Bitwise operations are undefined on floating point arrays. */
  readonly integerOnly: boolean;
  /**
   * Array elements that make one operand (2 for MAXLOC/MINLOC's value-index
   * pairs): the datatype's size in elements. Collectives that split a
   * vector split it only at multiples of it.
   */
  readonly unit: number;

  private constructor(name: string, fn: OpFunction, commutative: boolean, integerOnly = false, unit = 1) {
    this.name = name;
    this.#fn = fn;
    this.commutative = commutative;
    this.integerOnly = integerOnly;
    this.unit = unit;
  }

  /**
   * MPI_Op_create: `fn(invec, inoutvec)` must set inoutvec = invec op
   * inoutvec element-wise (or unit-wise: `unit` consecutive elements form one
   * operand, as an MPI derived datatype would).
   */
  static create(fn: OpFunction, commute = true, name = 'user', unit = 1): Op {
    if (typeof fn !== 'function') throw new InvalidArgumentError('Op.create needs a function');
    if (!Number.isInteger(unit) || unit < 1) throw new InvalidArgumentError(`Op.create: unit must be a positive integer, got ${unit}`);
    return new Op(name, fn, commute, false, unit);
  }

  /** @internal */
  static builtin(name: string, fn: OpFunction, integerOnly = false, unit = 1): Op {
    return new Op(name, fn, true, integerOnly, unit);
  }

  /** Checks the operation suits the array type (and length, for pair operations). */
  check(buf: TypedArray): void {
    if (this.integerOnly && (buf instanceof Float32Array || buf instanceof Float64Array)) {
      throw new InvalidArgumentError(`${this.name} is not defined on ${buf.constructor.name}`);
    }
    if (buf.length % this.unit !== 0) {
      throw new InvalidArgumentError(`${this.name} works on groups of ${this.unit} elements: got ${buf.length}`);
    }
  }

  /** inoutvec = invec op inoutvec. */
  apply(invec: TypedArray, inoutvec: TypedArray): void {
    this.#fn(invec, inoutvec);
  }
}

// Each built-in has its own loop (no per-element call), so V8 compiles it
// to a tight loop for the array type it meets.
function elementwise(name: string, loop: (a: Vec, b: Vec, n: number) => void, integerOnly = false): Op {
  return Op.builtin(name, (i, io) => loop(i as unknown as Vec, io as unknown as Vec, io.length), integerOnly);
}

const isBig = (v: TypedArray): boolean => v instanceof BigInt64Array || v instanceof BigUint64Array;

function logical(name: string, f: (a: boolean, b: boolean) => boolean): Op {
  return Op.builtin(name, (i, io) => {
    const a = i as unknown as Vec;
    const b = io as unknown as Vec;
    if (isBig(io)) {
      const B = b as unknown as { [k: number]: bigint; length: number };
      for (let k = 0; k < b.length; k++) B[k] = f(a[k] !== 0n, b[k] !== 0n) ? 1n : 0n;
    } else {
      const B = b as unknown as { [k: number]: number; length: number };
      for (let k = 0; k < b.length; k++) B[k] = f(a[k] !== 0, b[k] !== 0) ? 1 : 0;
    }
  });
}

function loc(name: string, better: (a: Num, b: Num) => boolean): Op {
  return Op.builtin(
    name,
    (i, io) => {
      const a = i as unknown as Vec;
      const b = io as unknown as Vec;
      for (let k = 0; k < b.length; k += 2) {
        const av = a[k]!;
        const bv = b[k]!;
        if (better(av, bv) || (av === bv && a[k + 1]! < b[k + 1]!)) {
          b[k] = av;
          b[k + 1] = a[k + 1]!;
        }
      }
    },
    false,
    2,
  );
}

export const SUM = elementwise('SUM', (a, b, n) => {
  for (let k = 0; k < n; k++) b[k] = (a[k]! + b[k]!) as Num;
});
export const PROD = elementwise('PROD', (a, b, n) => {
  for (let k = 0; k < n; k++) b[k] = (a[k]! * b[k]!) as Num;
});
export const MIN = elementwise('MIN', (a, b, n) => {
  for (let k = 0; k < n; k++) if (a[k]! < b[k]!) b[k] = a[k]!;
});
export const MAX = elementwise('MAX', (a, b, n) => {
  for (let k = 0; k < n; k++) if (a[k]! > b[k]!) b[k] = a[k]!;
});
export const LAND = logical('LAND', (a, b) => a && b);
export const LOR = logical('LOR', (a, b) => a || b);
export const LXOR = logical('LXOR', (a, b) => a !== b);
export const BAND = elementwise(
  'BAND',
  (a, b, n) => {
    for (let k = 0; k < n; k++) b[k] = (a[k]! & b[k]!) as Num;
  },
  true,
);
export const BOR = elementwise(
  'BOR',
  (a, b, n) => {
    for (let k = 0; k < n; k++) b[k] = (a[k]! | b[k]!) as Num;
  },
  true,
);
export const BXOR = elementwise(
  'BXOR',
  (a, b, n) => {
    for (let k = 0; k < n; k++) b[k] = (a[k]! ^ b[k]!) as Num;
  },
  true,
);
export const MAXLOC = loc('MAXLOC', (a, b) => a > b);
export const MINLOC = loc('MINLOC', (a, b) => a < b);
