// What every collective algorithm works with: the communicator's rank and
// size, point-to-point on the communicator's collective context under this
// call's own tag (calls are numbered in the order every rank makes them, so
// concurrent nonblocking collectives never mix their messages), and typed
// array helpers.
import { arrayClass, type TypedArray } from '../ops.js';
import type { Request } from '../request.js';
import type { LocalGroup } from './local-group.js';
import type { Status } from '../status.js';

export { borrow, type Scratch } from '../scratch.js';

export interface Coll {
  readonly rank: number;
  readonly size: number;
  /** Bytes above which the bandwidth-optimal algorithms are used. */
  readonly large: number;
  /** Present when every member shares this host's memory: staging for the shared-memory algorithms. */
  readonly local?: LocalGroup;
  isend(buf: TypedArray, dest: number): Request<Status>;
  irecv(buf: TypedArray, source: number): Request<Status>;
}

export async function sendrecv(c: Coll, sbuf: TypedArray, dest: number, rbuf: TypedArray, source: number): Promise<void> {
  const r = c.irecv(rbuf, source);
  const s = c.isend(sbuf, dest);
  await r.wait();
  await s.wait();
}

export async function waitAll(reqs: Request<Status>[]): Promise<void> {
  for (const r of reqs) await r.wait();
}

/** A new zeroed array of `n` elements of `like`'s type (a Uint8Array for a Buffer). */
export function alloc<T extends TypedArray>(like: T, n: number): T {
  return new (arrayClass(like))(n) as T;
}

export function copyOf<T extends TypedArray>(a: T): T {
  return a.slice() as T;
}

export function part<T extends TypedArray>(a: T, start: number, count: number): T {
  return a.subarray(start, start + count) as T;
}

/** Element counts of `n` split into `p` near-equal blocks of whole `unit`s, and their offsets. */
export function blocks(n: number, p: number, unit = 1): { counts: number[]; displs: number[] } {
  const counts: number[] = [];
  const displs: number[] = [];
  const units = n / unit;
  const base = Math.floor(units / p);
  const extra = units % p;
  let at = 0;
  for (let i = 0; i < p; i++) {
    const c = (base + (i < extra ? 1 : 0)) * unit;
    counts.push(c);
    displs.push(at);
    at += c;
  }
  return { counts, displs };
}

export const mod = (a: number, p: number): number => ((a % p) + p) % p;

/** dst.set(src, offset) for two arrays of the same element type. */
export function copyInto(dst: TypedArray, src: TypedArray, offset = 0): void {
  (dst as Float64Array).set(src as Float64Array, offset);
}

