// A FIFO with promise-based takers: the shape behind a completion channel's
// read() and a context's async-event fd, minus the fd. Takers are served in
// arrival order; an AbortSignal withdraws a taker without losing an item.

export const END: unique symbol = Symbol('end');

interface Taker<T> {
  resolve(value: T | typeof END): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class AsyncQueue<T> {
  readonly #items: T[] = [];
  readonly #takers: Taker<T>[] = [];
  #ended = false;

  get size(): number {
    return this.#items.length;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(item: T): void {
    if (this.#ended) return;
    const taker = this.#takers.shift();
    if (taker) {
      this.#settle(taker);
      taker.resolve(item);
    } else {
      this.#items.push(item);
    }
  }

  /** The next item without waiting, or undefined. */
  tryTake(): T | undefined {
    return this.#items.shift();
  }

  /** Resolves with the next item, or END once the queue has ended and is drained. */
  take(signal?: AbortSignal): Promise<T | typeof END> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    if (this.#ended) return Promise.resolve(END);
    if (signal === undefined) return new Promise<T | typeof END>(this.#enqueue);
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T | typeof END>((resolve, reject) => {
      const taker: Taker<T> = { resolve, reject, signal, onAbort: undefined };
      taker.onAbort = () => {
        const i = this.#takers.indexOf(taker);
        if (i >= 0) this.#takers.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', taker.onAbort, { once: true });
      this.#takers.push(taker);
    });
  }

  // The executor of a take() without a signal, made once: a completion
  // channel takes once per event, and a closure per call was garbage.
  readonly #enqueue = (resolve: (value: T | typeof END) => void, reject: (reason: unknown) => void): void => {
    this.#takers.push({ resolve, reject, signal: undefined, onAbort: undefined });
  };

  /** Removes queued items matching `pred`; returns how many. */
  remove(pred: (item: T) => boolean): number {
    let removed = 0;
    for (let i = this.#items.length - 1; i >= 0; i--) {
      if (pred(this.#items[i]!)) {
        this.#items.splice(i, 1);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Ends the queue: waiting takers get END, or are rejected with `error`
   * when one is given; queued items stay takeable unless `error` is given.
   */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    if (error) this.#items.length = 0;
    for (const taker of this.#takers.splice(0)) {
      this.#settle(taker);
      if (error) taker.reject(error);
      else taker.resolve(END);
    }
  }

  #settle(taker: Taker<T>): void {
    if (taker.signal && taker.onAbort) taker.signal.removeEventListener('abort', taker.onAbort);
  }
}
