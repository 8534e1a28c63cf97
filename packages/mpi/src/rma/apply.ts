// What an accumulate does to window memory, shared by the target's message
// path (target.ts) and an origin writing a same-host peer's window in place
// (win.ts): both run under the window's accumulate lock when it has one.
import { TransportError } from '../errors.js';
import { ARRAY_CLASSES, RMA_OPS, type TypedArray } from '../ops.js';

type ArrayClass = (new (n: number) => TypedArray) & (new (buf: ArrayBufferLike, offset: number, length: number) => TypedArray) & { BYTES_PER_ELEMENT: number };

export function arrayClassAt(dtype: number): ArrayClass | undefined {
  return ARRAY_CLASSES[dtype] as ArrayClass | undefined;
}

/** memory[offset, offset + len) = data op memory[...], element-wise (a view when aligned, else a copy written back). */
export function accumulate(memory: Uint8Array, offset: number, len: number, dtype: number, op: number, data: TypedArray): void {
  const cls = arrayClassAt(dtype)!;
  const n = len / cls.BYTES_PER_ELEMENT;
  const at = memory.byteOffset + offset;
  if (at % cls.BYTES_PER_ELEMENT === 0) {
    RMA_OPS[op]!.apply(data, new cls(memory.buffer, at, n));
    return;
  }
  const tmp = new cls(n);
  const bytes = new Uint8Array(tmp.buffer);
  bytes.set(memory.subarray(offset, offset + len));
  RMA_OPS[op]!.apply(data, tmp);
  memory.set(bytes, offset);
}

/**
 * accumulate() for an origin writing a mapped window in place, where one
 * call is one MPI_Accumulate (or GetAccumulate, when `result` is given the
 * old values) and its cost is the latency: `views` caches a whole-window
 * view per element type, and a single element (a counter, a FetchAndOp) is
 * combined through a one-element scratch array, so the call allocates
 * nothing. The caller holds the accumulate lock.
 */
export function accumulateInPlace(memory: Uint8Array, views: (TypedArray | undefined)[], offset: number, len: number, dtype: number, op: number, data: TypedArray, result?: TypedArray): void {
  const cls = arrayClassAt(dtype)!;
  const bpe = cls.BYTES_PER_ELEMENT;
  // The old values reach `result` only after `data` has been read: the two
  // may be one array.
  if (len !== bpe || memory.byteOffset % bpe !== 0 || offset % bpe !== 0) {
    const old = result ? memory.slice(offset, offset + len) : undefined;
    accumulate(memory, offset, len, dtype, op, data);
    if (old) new Uint8Array(result!.buffer, result!.byteOffset, len).set(old);
    return;
  }
  const view = (views[dtype] ??= new cls(memory.buffer, memory.byteOffset, Math.floor(memory.length / bpe))) as Float64Array;
  const i = offset / bpe;
  const one = (SCRATCH[dtype] ??= new cls(1)) as Float64Array;
  const old = view[i]!;
  one[0] = old;
  RMA_OPS[op]!.apply(data, one);
  view[i] = one[0]!;
  if (result) (result as Float64Array)[0] = old;
}

const SCRATCH: (TypedArray | undefined)[] = [];

/**
 * Compare-and-swap of one element: `data` holds the compare value then the
 * new one. Bytes are compared, as a hardware compare-and-swap does (-0 is
 * not 0, a NaN may equal itself). Returns the old bytes.
 */
export function compareAndSwap(memory: Uint8Array, offset: number, len: number, data: TypedArray): Uint8Array {
  const old = memory.slice(offset, offset + len);
  const compare = new Uint8Array(data.buffer, data.byteOffset, len);
  if (compare.every((b, i) => b === old[i])) memory.set(new Uint8Array(data.buffer, data.byteOffset + len, len), offset);
  return old;
}

/** How long an accumulate waits for the lock before it decides its holder died holding it. */
const LOCK_TIMEOUT_MS = 10_000;

/**
 * The window's accumulate lock: one word in the shared header of a window
 * that same-host peers write in place, so their accumulates and the ones the
 * target applies for remote origins exclude each other. Held only for the
 * length of one operation, so it spins (Atomics.wait needs a
 * SharedArrayBuffer, and mapped memory is not one).
 */
export function withAccLock<T>(word: Int32Array | undefined, fn: () => T): T {
  if (!word) return fn();
  lockAcc(word);
  try {
    return fn();
  } finally {
    unlockAcc(word);
  }
}

/** Takes the accumulate lock (withAccLock without the closure, for the in-place hot path). */
export function lockAcc(word: Int32Array): void {
  if (Atomics.compareExchange(word, 0, 0, 1) === 0) return;
  const t0 = performance.now();
  for (let i = 1; Atomics.compareExchange(word, 0, 0, 1) !== 0; i++) {
    if ((i & 1023) === 0 && performance.now() - t0 > LOCK_TIMEOUT_MS) {
      throw new TransportError(`a window's accumulate lock was held for ${LOCK_TIMEOUT_MS} ms: its holder died holding it`);
    }
  }
}

export function unlockAcc(word: Int32Array): void {
  Atomics.store(word, 0, 0);
}
