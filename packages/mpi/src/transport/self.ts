// Messages a rank sends to itself: queued and delivered on the next
// progress call, never re-entering the caller.
import { HDR_WORDS } from '../protocol/header.js';
import type { Endpoint, Sink, Transport } from './transport.js';

interface Queued {
  header: Int32Array;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export class SelfTransport implements Transport, Endpoint {
  readonly name = 'self';
  readonly kind = 'self';
  readonly peer: number;
  readonly eagerLimit = Number.POSITIVE_INFINITY;
  readonly #sink: Sink;
  #queue: Queued[] = [];

  constructor(rank: number, sink: Sink) {
    this.peer = rank;
    this.#sink = sink;
  }

  send(header: Int32Array, payload: Uint8Array | undefined): void {
    this.#queue.push({ header: header.slice(0, HDR_WORDS), payload: payload ? payload.slice() : EMPTY });
  }

  // Every self message is eager, so the rendezvous half is never used.
  expose(): () => void {
    return () => {};
  }

  fetch(_dst: Uint8Array, _lo: number, _hi: number, _key: number, done: (err?: Error) => void): void {
    done(new Error('self transport has no rendezvous'));
  }

  get queued(): number {
    return this.#queue.length;
  }

  progress(): number {
    if (this.#queue.length === 0) return 0;
    const q = this.#queue;
    this.#queue = [];
    for (const m of q) this.#sink(this.peer, m.header, 0, m.payload, 0);
    return q.length;
  }

  armWake(kick: () => void): void {
    if (this.#queue.length > 0) queueMicrotask(kick);
  }

  disarm(): void {}

  close(): void {
    this.#queue = [];
  }
}
