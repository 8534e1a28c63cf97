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

export type OpFunction = (invec: TypedArray, inoutvec: TypedArray) => void;

/** The typed array classes, in a fixed order (ranks name a class by its index in it). */
export const ARRAY_CLASSES: readonly unknown[] = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
const CLASSES: ReadonlySet<unknown> = new Set(ARRAY_CLASSES);

/**
 * The typed array class `a` is an instance of, past subclasses such as
 * Node's Buffer (a Uint8Array whose own constructor is deprecated): what
 * new arrays like `a` are made as, and what loops and pools are keyed by.
 */
export function arrayClass(a: TypedArray): new (n: number) => TypedArray {
  let c: unknown = a.constructor;
  while (c && !CLASSES.has(c)) c = Object.getPrototypeOf(c);
  return (c ?? a.constructor) as new (n: number) => TypedArray;
}

/** out = ins[0] op (ins[1] op (... op ins[m - 1])) over the first n elements, in one pass. */
type FoldLoop = (ins: readonly TypedArray[], out: TypedArray, n: number) => void;

/** `op` as an Op (a built-in one or Op.create's); anything else is an InvalidArgumentError naming `what`. */
export function checkOp(op: unknown, what: string): Op {
  if (op === REPLACE || op === NO_OP) throw new InvalidArgumentError(`${what}: ${(op as Op).name} is for one-sided accumulates only`);
  if (op instanceof Op) return op;
  const got = op === null ? 'null' : typeof op === 'object' ? `an instance of ${(op as object).constructor?.name ?? 'Object'}` : typeof op;
  throw new InvalidArgumentError(`${what}: op must be an Op (SUM, MAX, ..., or one from Op.create), got ${got}`);
}

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
  readonly #foldLoop: ((like: TypedArray, m: number) => FoldLoop | undefined) | undefined;

  private constructor(name: string, fn: OpFunction, commutative: boolean, integerOnly = false, unit = 1, foldLoop?: (like: TypedArray, m: number) => FoldLoop | undefined) {
    this.name = name;
    this.#fn = fn;
    this.#foldLoop = foldLoop;
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
  static builtin(name: string, fn: OpFunction, integerOnly = false, unit = 1, foldLoop?: (like: TypedArray, m: number) => FoldLoop | undefined): Op {
    return new Op(name, fn, true, integerOnly, unit, foldLoop);
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

  /**
   * MPI_Reduce_local: inoutbuf = inbuf op inoutbuf, element-wise, after the
   * checks a reduction makes (both typed arrays of one element type and
   * length, an operation defined on it).
   */
  reduceLocal(inbuf: TypedArray, inoutbuf: TypedArray): void {
    if (!ArrayBuffer.isView(inbuf) || inbuf instanceof DataView || !ArrayBuffer.isView(inoutbuf) || inoutbuf instanceof DataView) {
      throw new InvalidArgumentError(`${this.name}.reduceLocal takes two typed arrays`);
    }
    if (arrayClass(inbuf) !== arrayClass(inoutbuf) || inbuf.length !== inoutbuf.length) {
      throw new InvalidArgumentError(`${this.name}.reduceLocal: the arrays differ (${inbuf.constructor.name}(${inbuf.length}), ${inoutbuf.constructor.name}(${inoutbuf.length}))`);
    }
    this.check(inbuf);
    this.#fn(inbuf, inoutbuf);
  }

  /**
   * @internal out = ins[0] op (ins[1] op (... op ins[m - 1])): the same
   * result, bit for bit, as applying the operation pairwise from the right,
   * which is rank order for non-commutative operations. Built-ins do it in
   * one pass over all the inputs (a third of the loop work of pairwise
   * passes for four inputs). `out` must not overlap any input; every input
   * has out.length elements.
   */
  fold(ins: readonly TypedArray[], out: TypedArray): void {
    const m = ins.length;
    if (m === 0 || out.length === 0) return;
    const loop = m > 1 ? this.#foldLoop?.(out, m) : undefined;
    if (loop) {
      loop(ins, out, out.length);
      return;
    }
    (out as Float64Array).set(ins[m - 1] as Float64Array);
    for (let j = m - 2; j >= 0; j--) this.#fn(ins[j]!, out);
  }
}

// Each built-in compiles its loops once per array type it meets. V8 keeps
// type feedback per function, and one loop shared by every typed-array kind
// goes megamorphic after the fifth: measured ~40x slower on a Float64Array
// once the same closure had also reduced Int32, Float32, Uint8 and Int16
// arrays. Closures from one factory share their feedback, so each type
// gets its own function built from the same source (fixed text below, never
// user input).
type Loop = (a: TypedArray, b: TypedArray, n: number) => void;
/** The expression for `a op b` (a the lower ranks' operand), given the zero and one literals of the array's number type. */
type Combine = (a: string, b: string, zero: string, one: string) => string;

const isBig = (v: TypedArray): boolean => v instanceof BigInt64Array || v instanceof BigUint64Array;

// What storing into each array type does to a number, so a fused fold that
// keeps its running value in a local rounds exactly as the pairwise passes
// (which store after every step) do. Types left out fold pairwise.
const STORE: ReadonlyMap<unknown, (e: string) => string> = new Map<unknown, (e: string) => string>([
  [Float64Array, (e) => e],
  [Float32Array, (e) => `Math.fround(${e})`],
  [Int32Array, (e) => `((${e}) | 0)`],
  [Uint32Array, (e) => `((${e}) >>> 0)`],
  [Int16Array, (e) => `(((${e}) << 16) >> 16)`],
  [Uint16Array, (e) => `((${e}) & 65535)`],
  [Int8Array, (e) => `(((${e}) << 24) >> 24)`],
  [Uint8Array, (e) => `((${e}) & 255)`],
]);

function compiled<F>(make: (like: TypedArray) => string | undefined, params: string[]): (like: TypedArray) => F | undefined {
  const loops = new Map<unknown, F | undefined>();
  return (like) => {
    const key = arrayClass(like);
    if (loops.has(key)) return loops.get(key);
    const body = make(like);
    const f = body === undefined ? undefined : (new Function(...params, body) as F);
    loops.set(key, f);
    return f;
  };
}

function builtin(name: string, combine: Combine, integerOnly = false): Op {
  const lit = (like: TypedArray): [string, string] => (isBig(like) ? ['0n', '1n'] : ['0', '1']);
  const pairwise = compiled<Loop>((like) => `for (let k = 0; k < n; k++) { const x = a[k]; b[k] = ${combine('x', 'b[k]', ...lit(like))}; }`, ['a', 'b', 'n']);
  const folds = new Map<number, (like: TypedArray) => FoldLoop | undefined>();
  const foldLoop = (like: TypedArray, m: number): FoldLoop | undefined => {
    // Past a few inputs the loop body grows for little gain: pairwise then.
    if (m > 8) return undefined;
    let f = folds.get(m);
    if (!f) {
      f = compiled<FoldLoop>((l) => {
        const store = STORE.get(arrayClass(l));
        if (!store) return undefined;
        const [z, o] = lit(l);
        const names = Array.from({ length: m }, (_, j) => `x${j}`);
        let body = `const [${names.join(', ')}] = ins;\nfor (let k = 0; k < n; k++) {\n  let v = x${m - 1}[k];\n`;
        for (let j = m - 2; j >= 0; j--) body += `  { const x = x${j}[k]; v = ${store(combine('x', 'v', z, o))}; }\n`;
        return `${body}  out[k] = v;\n}`;
      }, ['ins', 'out', 'n']);
      folds.set(m, f);
    }
    return f(like);
  };
  return Op.builtin(name, (i, io) => pairwise(io)!(i, io, io.length), integerOnly, 1, foldLoop);
}

// (value, index) pairs: the better value wins, the lower index on a tie.
function loc(name: string, better: string): Op {
  const pairwise = compiled<Loop>(
    () => `for (let k = 0; k < n; k += 2) { const av = a[k], bv = b[k]; if (av ${better} bv || (av === bv && a[k + 1] < b[k + 1])) { b[k] = av; b[k + 1] = a[k + 1]; } }`,
    ['a', 'b', 'n'],
  );
  return Op.builtin(name, (i, io) => pairwise(io)!(i, io, io.length), false, 2);
}

export const SUM = builtin('SUM', (a, b) => `${a} + ${b}`);
export const PROD = builtin('PROD', (a, b) => `${a} * ${b}`);
export const MIN = builtin('MIN', (a, b) => `(${a} < ${b} ? ${a} : ${b})`);
export const MAX = builtin('MAX', (a, b) => `(${a} > ${b} ? ${a} : ${b})`);
export const LAND = builtin('LAND', (a, b, z, o) => `(${a} !== ${z} && ${b} !== ${z} ? ${o} : ${z})`);
export const LOR = builtin('LOR', (a, b, z, o) => `(${a} !== ${z} || ${b} !== ${z} ? ${o} : ${z})`);
export const LXOR = builtin('LXOR', (a, b, z, o) => `((${a} !== ${z}) !== (${b} !== ${z}) ? ${o} : ${z})`);
export const BAND = builtin('BAND', (a, b) => `${a} & ${b}`, true);
export const BOR = builtin('BOR', (a, b) => `${a} | ${b}`, true);
export const BXOR = builtin('BXOR', (a, b) => `${a} ^ ${b}`, true);
export const MAXLOC = loc('MAXLOC', '>');
export const MINLOC = loc('MINLOC', '<');

/** MPI_REPLACE: an Accumulate that stores the origin's values (one-sided operations only). */
export const REPLACE = Op.builtin('REPLACE', (i, io) => (io as Float64Array).set(i as Float64Array));
/** MPI_NO_OP: a Get_accumulate that only reads (one-sided operations only). */
export const NO_OP = Op.builtin('NO_OP', () => {});

/**
 * The operations a one-sided accumulate may name, by their number on the
 * wire: the target applies them, so they must be ones it has too (MPI
 * allows predefined operations only there as well).
 */
export const RMA_OPS: readonly Op[] = [SUM, PROD, MIN, MAX, LAND, LOR, LXOR, BAND, BOR, BXOR, MAXLOC, MINLOC, REPLACE, NO_OP];
