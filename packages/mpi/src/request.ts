// MPI_Request: a handle on a nonblocking operation. `wait()` resolves with
// the Status (typed-array operations), the received object (object
// receives) or nothing (nonblocking collectives).
import { Status } from './status.js';

/** What a request needs from the progress engine. */
export interface Progress {
  progress(): number;
  until(done: () => boolean): Promise<void>;
  /** Wakes waiters to re-check their conditions. */
  kick(): void;
}

export class Request<T = Status> {
  done = false;
  error: Error | undefined;
  readonly status: Status = new Status();
  value: T | undefined;
  /** @internal */
  protected readonly engine: Progress;
  /** @internal set by the engine for receives not yet matched */
  cancelHook: (() => boolean) | undefined;
  /**
   * @internal Runs as a receive completes without error, before anyone sees
   * it done: moves a packed derived-datatype message into the caller's
   * layout (given the bytes that arrived).
   */
  finish: ((bytes: number) => void) | undefined;
  /** @internal Runs once the request has completed, with its error if any (a request made of several, see joined). */
  onDone: ((error: Error | undefined) => void) | undefined;

  constructor(engine: Progress) {
    this.engine = engine;
  }

  /** @internal */
  complete(value: T | undefined, error?: Error): void {
    if (this.done) return;
    if (error === undefined && this.finish !== undefined && !this.status.cancelled) {
      try {
        this.finish(this.status.byteCount);
      } catch (err) {
        value = undefined;
        error = err instanceof Error ? err : new Error(String(err));
      }
    }
    this.value = value;
    this.error = error;
    this.done = true;
    this.cancelHook = undefined;
    this.onDone?.(error);
  }

  /** MPI_Wait: resolves when the operation completes; rejects with its error. */
  wait(): Promise<T> {
    // An eager send, or a receive whose message was already here, settles
    // without an async frame: on the 8-byte ping-pong every promise hop
    // shows in the latency.
    if (this.done) return this.error ? Promise.reject(this.error) : Promise.resolve(this.value as T);
    return this.#waitSlow();
  }

  async #waitSlow(): Promise<T> {
    await this.engine.until(() => this.done);
    if (this.error) throw this.error;
    return this.value as T;
  }

  /** MPI_Test: makes progress, then says whether the operation completed (throws its error). */
  test(): boolean {
    if (!this.done) this.engine.progress();
    if (this.done && this.error) throw this.error;
    return this.done;
  }

  /**
   * MPI_Cancel: a receive that has not matched yet completes at once with
   * status.cancelled; anything else (sends, matched receives) is left to
   * complete normally and false is returned.
   */
  cancel(): boolean {
    if (this.done || !this.cancelHook) return false;
    if (!this.cancelHook()) return false;
    this.status.cancelled = true;
    // A typed receive resolves with its Status, as it would had it matched
    // (the hook sets that value); an object receive with undefined.
    this.complete(this.value);
    return true;
  }

  /** MPI_Waitall: every request's result, in order; rejects with the first error. */
  static async waitAll<R extends readonly Request<unknown>[]>(requests: R): Promise<{ [K in keyof R]: R[K] extends Request<infer U> ? U : never }> {
    const first = requests[0];
    if (first && requests.some((r) => !r.done)) await first.engine.until(() => requests.every((r) => r.done));
    const out: unknown[] = [];
    for (const r of requests) {
      if (r.error) throw r.error;
      out.push(r.value);
    }
    return out as { [K in keyof R]: R[K] extends Request<infer U> ? U : never };
  }

  /** MPI_Waitany: the index of a request that completed (the lowest such); -1 for an empty list. */
  static async waitAny(requests: readonly Request<unknown>[]): Promise<number> {
    const first = requests[0];
    if (!first) return -1;
    const pick = (): number => requests.findIndex((r) => r.done);
    if (pick() < 0) first.engine.progress();
    if (pick() < 0) await first.engine.until(() => pick() >= 0);
    const i = pick();
    const err = requests[i]!.error;
    if (err) throw err;
    return i;
  }

  /**
   * MPI_Waitsome: waits until at least one request completed, then the
   * indices of all that have (ascending); [] for an empty list. Rejects
   * with the first completed one's error.
   */
  static async waitSome(requests: readonly Request<unknown>[]): Promise<number[]> {
    const first = requests[0];
    if (!first) return [];
    if (!requests.some((r) => r.done)) await first.engine.until(() => requests.some((r) => r.done));
    return Request.#completed(requests);
  }

  /** MPI_Testsome: makes progress, then the indices of the requests that completed (maybe none). */
  static testSome(requests: readonly Request<unknown>[]): number[] {
    requests[0]?.engine.progress();
    return Request.#completed(requests);
  }

  /** MPI_Testany: makes progress, then the index of a completed request (the lowest), or -1. */
  static testAny(requests: readonly Request<unknown>[]): number {
    requests[0]?.engine.progress();
    const i = requests.findIndex((r) => r.done);
    const err = i >= 0 ? requests[i]!.error : undefined;
    if (err) throw err;
    return i;
  }

  static #completed(requests: readonly Request<unknown>[]): number[] {
    const out: number[] = [];
    requests.forEach((r, i) => {
      if (!r.done) return;
      if (r.error) throw r.error;
      out.push(i);
    });
    return out;
  }

  /** MPI_Testall: true when every request completed. */
  static testAll(requests: readonly Request<unknown>[]): boolean {
    const first = requests[0];
    if (first && requests.some((r) => !r.done)) first.engine.progress();
    return requests.every((r) => r.test());
  }
}

/**
 * A blocking call made of its nonblocking one: the request's own promise,
 * with an argument error thrown while starting it turned into a rejection
 * (a blocking call rejects, it does not throw).
 */
export function waitFor<T>(start: () => Request<T>): Promise<T> {
  try {
    return start().wait();
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** A request already complete (sends to PROC_NULL, eager sends). */
export function completedRequest<T>(engine: Progress, value: T): Request<T> {
  const r = new Request<T>(engine);
  r.complete(value);
  return r;
}

/** A request that completes with a promise: nonblocking collectives. */
export function promiseRequest<T>(engine: Progress, p: Promise<T>): Request<T> {
  const r = new Request<T>(engine);
  settleWith(engine, r, p);
  return r;
}

/** Completes `r` when `p` settles (with its value, or failed with its error) and wakes the waiters. */
export function settleWith<T>(engine: Progress, r: Request<T>, p: Promise<T>): void {
  p.then(
    (v) => {
      r.complete(v);
      engine.kick();
    },
    (e: unknown) => {
      r.complete(undefined, e instanceof Error ? e : new Error(String(e)));
      engine.kick();
    },
  );
}

/**
 * One request for several (an operation split into pieces): complete when
 * every one is, after `last` ran; failed with the first error (and `last`
 * not run). Undefined when all are complete already (`last` has run).
 */
export function joined(engine: Progress, reqs: readonly Request<unknown>[], last: () => void): Request<unknown> | undefined {
  let left = 0;
  for (const r of reqs) if (!r.done || r.error) left++;
  if (left === 0) {
    last();
    return undefined;
  }
  const all = new Request<unknown>(engine);
  const one = (err: Error | undefined): void => {
    if (all.done) return;
    if (err) all.complete(undefined, err);
    else if (--left === 0) {
      last();
      all.complete(undefined);
    }
  };
  for (const r of reqs) {
    if (!r.done) r.onDone = one;
    else if (r.error) one(r.error);
  }
  return all;
}
