// Scratch arrays kept between calls (collective algorithms, packed copies of
// derived-datatype buffers): allocating a large typed array costs a fresh
// zeroed mapping and its page faults every time (milliseconds for a
// megabyte), far more than the reduction or the copy it is for.
import { arrayClass, type TypedArray } from './ops.js';

type ArrayClass = new (n: number) => TypedArray;

const pool = new Map<unknown, TypedArray[]>();
const POOL_PER_TYPE = 6;

export interface Scratch<T extends TypedArray> {
  buf: T;
  /** Returns the array to the pool; later calls do nothing (the array may already be someone else's). */
  done(): void;
}

/** An array of `n` elements of `like`'s type (contents undefined) until done(). */
export function borrow<T extends TypedArray>(like: T, n: number): Scratch<T> {
  return borrowOf(arrayClass(like), n) as Scratch<T>;
}

/** An array of `n` elements of class `ctor` (contents undefined) until done(). */
export function borrowOf(ctor: ArrayClass, n: number): Scratch<TypedArray> {
  let list = pool.get(ctor);
  if (!list) pool.set(ctor, (list = []));
  const i = list.findIndex((a) => a.length >= n);
  const whole = i >= 0 ? list.splice(i, 1)[0]! : new ctor(n);
  let out = false;
  return {
    buf: whole.subarray(0, n),
    done: () => {
      if (out) return;
      out = true;
      if (list.length < POOL_PER_TYPE) list.push(whole);
    },
  };
}
