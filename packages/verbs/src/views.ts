// Arrays handed out by hot paths (CQ.poll's result, a UD batch for the
// provider) must have `length` equal to a count that changes call to call,
// without allocating. Setting `array.length` does not do that in V8: a
// shrink can trim the backing store (length 0 always drops it) and the next
// grow reallocates. So each small count gets its own array, built once and
// reused; counts above SMALL share one array whose length is adjusted, which
// allocates only when large batch sizes swing.

const SMALL = 64;

export class PooledViews<T> {
  /** Stable objects; views hold these, so filling pool[i] updates every view. */
  readonly pool: T[] = [];
  readonly #views: T[][] = [];
  readonly #large: T[] = [];
  readonly #make: () => T;

  constructor(make: () => T) {
    this.#make = make;
  }

  ensure(n: number): void {
    while (this.pool.length < n) this.pool.push(this.#make());
  }

  /** An array holding pool[0..k); k must be between 1 and pool.length. */
  view(k: number): T[] {
    if (k <= SMALL) {
      let v = this.#views[k];
      if (v === undefined) {
        v = this.pool.slice(0, k);
        this.#views[k] = v;
      }
      return v;
    }
    const large = this.#large;
    if (large.length !== k) {
      const from = large.length < k ? large.length : k;
      large.length = k;
      for (let i = from; i < k; i++) large[i] = this.pool[i]!;
    }
    return large;
  }
}
