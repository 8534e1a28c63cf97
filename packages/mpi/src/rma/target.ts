// The target half of a window: takes the control messages other ranks (and
// this one) send to it, lands and applies their data, answers Gets, and
// keeps the window's lock. It runs inside progress(), as the messages
// arrive: no call of the target's program has to be waiting for them.
//
// Operations from one origin complete in the order they were issued: each
// origin has a queue, and an operation whose data is still on its way (a
// rendezvous pull) holds up the ones behind it. That is what gives
// accumulates MPI's default ordering, replies the order the origin posted
// their receives in, and a FLUSH or UNLOCK the meaning "all before me is
// done". A Put's data lands straight in the window; MPI leaves the order of
// conflicting Puts within an epoch undefined anyway.
import { TransportError } from '../errors.js';
import type { Engine } from '../p2p/engine.js';
import { RMA_OPS, type TypedArray } from '../ops.js';
import { HDR_WORDS } from '../protocol/header.js';
import { Request } from '../request.js';
import { accumulate, arrayClassAt, compareAndSwap, withAccLock } from './apply.js';
import { DATA_TAG, LockType, REPLY_TAG, RmaKind, writeControl, type RmaControl } from './protocol.js';

interface Op {
  kind: RmaKind;
  offset: number;
  len: number;
  dtype: number;
  op: number;
  lock: number;
  /** The operation's data (accumulates), once it has arrived. */
  data: TypedArray | undefined;
  ready: boolean;
}

export class WinTarget {
  readonly #engine: Engine;
  readonly #ctx: number;
  readonly #rank: number;
  /** World ranks of the window's members, by rank. */
  readonly #group: readonly number[];
  readonly #memory: Uint8Array;
  readonly #queues: Op[][];
  readonly #h = new Int32Array(HDR_WORDS);
  /** The origin holding the exclusive lock, or -1. */
  #exclusive = -1;
  readonly #shared = new Set<number>();
  /** Lock requests that had to wait, in arrival order. */
  readonly #lockWaiters: { origin: number; type: number }[] = [];
  /** The accumulate lock word, when same-host peers write this window in place (apply.ts). */
  readonly #accLock: Int32Array | undefined;

  /** Told when an origin's COMPLETE has come through its queue (Win.Wait counts them). */
  readonly #onComplete: (origin: number) => void;

  constructor(engine: Engine, ctx: number, rank: number, group: readonly number[], memory: Uint8Array, accLock: Int32Array | undefined, onComplete: (origin: number) => void) {
    this.#accLock = accLock;
    this.#onComplete = onComplete;
    this.#engine = engine;
    this.#ctx = ctx;
    this.#rank = rank;
    this.#group = group;
    this.#memory = memory;
    this.#queues = group.map(() => []);
  }

  /** A control message addressed to this window (from readControl). */
  take(c: RmaControl): void {
    const q = this.#queues[c.origin];
    if (!q) return this.#malformed(c, `origin ${c.origin} is not a rank of the window`);
    const op: Op = { kind: c.kind, offset: c.offset, len: c.len, dtype: c.dtype, op: c.op, lock: c.lock, data: undefined, ready: true };
    switch (c.kind) {
      case RmaKind.PUT:
        if (!this.#inWindow(c)) return;
        op.ready = false;
        this.#receive(c.origin, op, this.#memory.subarray(c.offset, c.offset + c.len));
        break;
      case RmaKind.ACC:
      case RmaKind.GET_ACC:
      case RmaKind.CAS: {
        if (!this.#inWindow(c) || !this.#typed(c)) return;
        const cls = arrayClassAt(c.dtype)!;
        // Compare_and_swap's data is the compare value and the new one.
        const n = (c.len / cls.BYTES_PER_ELEMENT) * (c.kind === RmaKind.CAS ? 2 : 1);
        op.data = new cls(n);
        op.ready = false;
        this.#receive(c.origin, op, new Uint8Array(op.data.buffer, 0, op.data.byteLength));
        break;
      }
      case RmaKind.GET:
        if (!this.#inWindow(c)) return;
        break;
      case RmaKind.LOCK:
        if (c.lock !== LockType.EXCLUSIVE && c.lock !== LockType.SHARED) return this.#malformed(c, `unknown lock type ${c.lock}`);
        break;
      case RmaKind.UNLOCK:
      case RmaKind.FLUSH:
      case RmaKind.COMPLETE:
        break;
      default:
        return this.#malformed(c, `unknown request kind ${c.kind}`);
    }
    q.push(op);
    this.#drain(c.origin);
  }

  #inWindow(c: RmaControl): boolean {
    if (c.offset + c.len <= this.#memory.length) return true;
    this.#malformed(c, `[${c.offset}, ${c.offset + c.len}) runs past the ${this.#memory.length}-byte window`);
    return false;
  }

  #typed(c: RmaControl): boolean {
    const cls = arrayClassAt(c.dtype);
    if (!cls) this.#malformed(c, `unknown element type ${c.dtype}`);
    else if (!RMA_OPS[c.op]) this.#malformed(c, `unknown operation ${c.op}`);
    else if (c.len % cls.BYTES_PER_ELEMENT !== 0) this.#malformed(c, `${c.len} bytes is not a whole number of ${cls.name} elements`);
    else return true;
    return false;
  }

  // The origin checks all of this against the sizes every rank published at
  // creation, so only a broken or foreign peer gets here: the channel can no
  // longer be trusted to line up, and the rank's calls fail rather than hang.
  #malformed(c: RmaControl, why: string): void {
    this.#engine.fail(new TransportError(`window ${this.#ctx}: rank ${c.origin} sent a malformed one-sided request: ${why}`));
  }

  #receive(origin: number, op: Op, into: Uint8Array): void {
    const req = new Request<unknown>(this.#engine);
    req.onDone = (err) => {
      if (err) this.#engine.fail(err);
      op.ready = true;
      this.#drain(origin);
    };
    this.#engine.irecv(req, this.#ctx, origin, DATA_TAG, into);
  }

  /** Completes the origin's operations from the front of its queue while their data is here. */
  #drain(origin: number): void {
    const q = this.#queues[origin]!;
    while (q.length > 0 && q[0]!.ready) this.#complete(origin, q.shift()!);
  }

  #complete(origin: number, op: Op): void {
    switch (op.kind) {
      case RmaKind.PUT:
        return;
      case RmaKind.GET:
        this.#reply(origin, this.#memory.subarray(op.offset, op.offset + op.len));
        return;
      case RmaKind.ACC:
        withAccLock(this.#accLock, () => accumulate(this.#memory, op.offset, op.len, op.dtype, op.op, op.data!));
        return;
      case RmaKind.GET_ACC: {
        const old = withAccLock(this.#accLock, () => {
          const o = this.#memory.slice(op.offset, op.offset + op.len);
          accumulate(this.#memory, op.offset, op.len, op.dtype, op.op, op.data!);
          return o;
        });
        this.#reply(origin, old);
        return;
      }
      case RmaKind.CAS:
        this.#reply(origin, withAccLock(this.#accLock, () => compareAndSwap(this.#memory, op.offset, op.len, op.data!)));
        return;
      case RmaKind.LOCK:
        if (this.#lockWaiters.length === 0 && this.#compatible(op.lock)) this.#grant(origin, op.lock);
        else this.#lockWaiters.push({ origin, type: op.lock });
        return;
      case RmaKind.UNLOCK:
        if (this.#exclusive === origin) this.#exclusive = -1;
        else this.#shared.delete(origin);
        this.#control(origin, RmaKind.UNLOCK_DONE);
        while (this.#lockWaiters.length > 0 && this.#compatible(this.#lockWaiters[0]!.type)) {
          const w = this.#lockWaiters.shift()!;
          this.#grant(w.origin, w.type);
        }
        return;
      case RmaKind.FLUSH:
        this.#control(origin, RmaKind.FLUSH_DONE);
        return;
      case RmaKind.COMPLETE:
        this.#onComplete(origin);
        return;
    }
  }

  #compatible(type: number): boolean {
    return this.#exclusive < 0 && (type === LockType.SHARED || this.#shared.size === 0);
  }

  #grant(origin: number, type: number): void {
    if (type === LockType.EXCLUSIVE) this.#exclusive = origin;
    else this.#shared.add(origin);
    this.#control(origin, RmaKind.LOCK_GRANTED);
  }

  #reply(origin: number, data: Uint8Array): void {
    const req = new Request<unknown>(this.#engine);
    req.onDone = (err) => {
      if (err) this.#engine.fail(err);
    };
    this.#engine.isend(req, this.#ctx, this.#group[origin]!, this.#rank, REPLY_TAG, data, 0);
  }

  #control(origin: number, kind: RmaKind): void {
    this.#engine.sendHeader(this.#group[origin]!, writeControl(this.#h, this.#ctx, this.#rank, kind));
  }
}
