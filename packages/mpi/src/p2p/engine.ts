// The matching and progress engine (a "PML" in Open MPI's terms): turns
// sends and receives into transport messages, matches arrivals against
// posted receives, runs the eager and rendezvous protocols, and waits.
//
// Waiting: a wait first polls; when only shared-memory peers are involved
// and it is the only waiter, it blocks this thread on the rank's doorbell
// (spinning briefly, then a futex sleep) for up to MPILITE_SYNC_WAIT_US, which
// is what gets latency near C's. Otherwise, and after that budget, it
// yields to the event loop until a transport, the bootstrap or a timer kicks
// it, so sockets, the soft HCA and timers keep running and nothing spins.
import { deliverEager } from '../protocol/eager.js';
import { HDR_WORDS, MsgFlag, MsgType, W_ADDR_HI, W_ADDR_LO, W_CTX, W_ID, W_KEY, W_LEN, W_SRC, W_TAG, W_TYPE } from '../protocol/header.js';
import { pullRendezvous, sendFin } from '../protocol/rendezvous.js';
import type { Progress, Request } from '../request.js';
import type { Endpoint, Transport } from '../transport/transport.js';
import { MatchQueues, type PostedRecv, type Unexpected } from './match.js';

interface PendingSend {
  req: Request<unknown>;
  release: () => void;
  /** Keeps the exposed bytes alive until FIN. */
  data: Uint8Array;
}

const IDLE_TICK_MS = 50;
/**
 * What a peer's pull of one byte of this rank's sends takes, at 4 GB/s (a
 * process_vm_readv runs at 10-15 GB/s here): the spin a wait for their FIN
 * is worth.
 */
const PULL_NS_PER_BYTE = 0.25;
const noRelease = (): void => {};

/** Takes the RMA control messages of one context (a window's): the header is words [w, w + HDR_WORDS). */
export type RmaHandler = (peer: number, words: Int32Array, w: number) => void;

export class Engine implements Progress {
  readonly worldRank: number;
  readonly endpoints: Endpoint[] = [];
  readonly transports: Transport[] = [];
  failure: Error | undefined;
  /** True when a wait may block the thread (every peer is local shared memory). */
  syncOk = false;
  syncWaitUs = 20_000;
  readonly #queues = new Map<number, MatchQueues>();
  readonly #sends = new Map<number, PendingSend>();
  /** Bytes of the sends awaiting FIN: what peers are still copying out of this rank. */
  #awaitedBytes = 0;
  readonly #hdr = new Int32Array(HDR_WORDS);
  #nextId = 1;
  #pulling = 0;
  #waiting = 0;
  #idle: Promise<void> | undefined;
  #idleResolve: (() => void) | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #syncTransport: Transport | undefined;
  readonly #rmaHandlers = new Map<number, RmaHandler>();
  /** Windows open: while any is, arrivals are taken as they come, not only while a call waits (see retainService). */
  #services = 0;
  #serviceTick: NodeJS.Immediate | undefined;

  constructor(worldRank: number) {
    this.worldRank = worldRank;
  }

  /** Where transports deliver arrivals. */
  readonly sink = (peer: number, words: Int32Array, w: number, bytes: Uint8Array, p: number): void => {
    const type = words[w + W_TYPE]! & 0xff;
    if (type === MsgType.FIN) {
      const id = words[w + W_ID]!;
      const s = this.#sends.get(id);
      if (!s) return;
      this.#sends.delete(id);
      this.#awaitedBytes -= s.data.length;
      s.release();
      s.req.complete(s.req.status);
      return;
    }
    if (type === MsgType.RMA) {
      this.#rmaHandlers.get(words[w + W_CTX]!)?.(peer, words, w);
      return;
    }
    if (type !== MsgType.EAGER && type !== MsgType.RTS) return;
    const flags = (words[w + W_TYPE]! >>> 8) & 0xff;
    const ctx = words[w + W_CTX]!;
    const source = words[w + W_SRC]!;
    const tag = words[w + W_TAG]!;
    const length = words[w + W_LEN]! >>> 0;
    const q = this.#queue(ctx);
    const posted = q.takePosted(source, tag);
    const id = words[w + W_ID]!;
    if (type === MsgType.EAGER) {
      if (!posted) q.unexpected.push(unexpected(source, tag, peer, type, flags, length, bytes.slice(p, p + length), id, 0, 0, 0));
      else {
        deliverEager(posted, source, tag, flags, bytes, p, length);
        if (flags & MsgFlag.SYNC) sendFin(this.endpoints[peer]!, this.#hdr, id);
      }
      return;
    }
    const lo = words[w + W_ADDR_LO]!;
    const hi = words[w + W_ADDR_HI]!;
    const key = words[w + W_KEY]!;
    if (posted) this.#pull(posted, peer, source, tag, flags, length, id, lo, hi, key);
    else q.unexpected.push(unexpected(source, tag, peer, type, flags, length, undefined, id, lo, hi, key));
  };

  setSyncTransport(t: Transport | undefined): void {
    this.#syncTransport = t;
  }

  #queue(ctx: number): MatchQueues {
    let q = this.#queues.get(ctx);
    if (!q) this.#queues.set(ctx, (q = new MatchQueues()));
    return q;
  }

  /** Starts a send of `data` (bytes of a typed array, or a serialized object with OBJECT). */
  isend(req: Request<unknown>, ctx: number, dest: number, source: number, tag: number, data: Uint8Array, flags: number): void {
    this.#check();
    const ep = this.endpoints[dest]!;
    const h = this.#hdr;
    h[W_CTX] = ctx;
    h[W_SRC] = source;
    h[W_TAG] = tag;
    h[W_LEN] = data.length;
    req.status.source = source;
    req.status.tag = tag;
    req.status.byteCount = data.length;
    if (data.length <= ep.eagerLimit) {
      h[W_TYPE] = MsgType.EAGER | (flags << 8);
      if (!(flags & MsgFlag.SYNC)) {
        h[W_ID] = 0;
        ep.send(h, data);
        req.complete(req.status);
        return;
      }
      // Registered before the send: a receive already posted (over the self
      // transport, in this very call) answers at once.
      const id = this.#newId();
      h[W_ID] = id;
      this.#sends.set(id, { req, release: noRelease, data });
      this.#awaitedBytes += data.length;
      ep.send(h, data);
      return;
    }
    const id = this.#newId();
    h[W_TYPE] = MsgType.RTS | (flags << 8);
    h[W_ID] = id;
    const release = ep.expose(data, h);
    this.#sends.set(id, { req, release, data });
    this.#awaitedBytes += data.length;
    ep.send(h, undefined);
  }

  #newId(): number {
    const id = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    return id;
  }

  /** Sends a header-only message (RMA control) to world rank `dest`; the endpoint copies it. */
  sendHeader(dest: number, header: Int32Array): void {
    this.#check();
    this.endpoints[dest]!.send(header, undefined);
  }

  /** Routes context `ctx`'s RMA control messages to `handler` (undefined: drops them). */
  setRmaHandler(ctx: number, handler: RmaHandler | undefined): void {
    if (handler) this.#rmaHandlers.set(ctx, handler);
    else this.#rmaHandlers.delete(ctx);
  }

  /**
   * A window opened: passive-target operations (Lock, Put, Unlock) need the
   * target to take requests while its program is busy elsewhere (awaiting
   * a timer, a socket), not only inside an MPI call, as MPI asks of passive
   * target progress. So while any window is open the transports' wake-ups
   * stay armed and run progress() from the event loop. A program computing
   * synchronously still defers them, as a single-threaded MPI library does.
   */
  retainService(): void {
    if (this.#services++ === 0) this.#armService();
  }

  releaseService(): void {
    if (this.#services > 0) this.#services--;
  }

  #armService(): void {
    if (this.#services === 0 || this.failure) return;
    for (const t of this.transports) t.armWake(this.#onWake);
  }

  // One wake-up for waiters and the service alike: a transport keeps one
  // armed wait, and whichever armed it first would otherwise get it.
  readonly #onWake = (): void => {
    if (this.#idleResolve) this.kick();
    // setImmediate, not a microtask: a wake with work pending is handed back at once, and a
    // chain of microtasks would starve the event loop.
    if (this.#services > 0 && !this.#serviceTick) {
      this.#serviceTick = setImmediate(() => {
        this.#serviceTick = undefined;
        if (this.#services === 0) return;
        this.progress();
        this.#armService();
      });
    }
  };

  /** Posts a receive into `buf` (or an object receive when undefined). */
  irecv(req: Request<unknown>, ctx: number, source: number, tag: number, buf: Uint8Array | undefined): void {
    this.#check();
    const q = this.#queue(ctx);
    const i = q.findUnexpected(source, tag);
    const posted: PostedRecv = { source, tag, buf, req };
    if (i >= 0) {
      this.receiveMatched(posted, q.takeUnexpected(i));
      return;
    }
    q.posted.push(posted);
    req.cancelHook = () => {
      const k = q.posted.indexOf(posted);
      if (k < 0) return false;
      q.posted.splice(k, 1);
      if (buf) req.value = req.status;
      return true;
    };
  }

  /** Receives a message already taken from the unexpected queue (by a receive, or by a matched probe earlier). */
  receiveMatched(posted: PostedRecv, u: Unexpected): void {
    this.#check();
    if (u.type === MsgType.EAGER) {
      deliverEager(posted, u.source, u.tag, u.flags, u.data!, 0, u.length);
      if (u.flags & MsgFlag.SYNC) sendFin(this.endpoints[u.peer]!, this.#hdr, u.id);
    } else this.#pull(posted, u.peer, u.source, u.tag, u.flags, u.length, u.id, u.addrLo, u.addrHi, u.key);
  }

  /** MPI_Iprobe against what has arrived: the matching message's envelope, without receiving it. */
  peek(ctx: number, source: number, tag: number): Unexpected | undefined {
    const q = this.#queues.get(ctx);
    if (!q) return undefined;
    const i = q.findUnexpected(source, tag);
    return i >= 0 ? q.unexpected[i] : undefined;
  }

  /**
   * MPI_Improbe: takes the matching message out of matching altogether, so
   * no other receive can have it; receiveMatched receives it later.
   */
  take(ctx: number, source: number, tag: number): Unexpected | undefined {
    const q = this.#queues.get(ctx);
    if (!q) return undefined;
    const i = q.findUnexpected(source, tag);
    return i >= 0 ? q.takeUnexpected(i) : undefined;
  }

  #pull(posted: PostedRecv, peer: number, source: number, tag: number, flags: number, length: number, id: number, lo: number, hi: number, key: number): void {
    this.#pulling++;
    pullRendezvous(posted, this.endpoints[peer]!, { source, tag, flags, length, id, lo, hi, key }, this.#hdr, (err) => this.fail(err), this.#pullEnded);
  }

  progress(): number {
    let n = 0;
    for (const t of this.transports) n += t.progress();
    if (n > 0 && this.#waiting > 1) this.kick();
    return n;
  }

  /** Ends every wait with `err` (the job aborted). */
  fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.kick();
  }

  #check(): void {
    if (this.failure) throw this.failure;
  }

  kick(): void {
    const r = this.#idleResolve;
    if (!r) return;
    this.#idleResolve = undefined;
    this.#idle = undefined;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    for (const t of this.transports) t.disarm();
    r();
  }

  #sleep(): Promise<void> {
    if (this.#idle) return this.#idle;
    this.#idle = new Promise<void>((resolve) => (this.#idleResolve = resolve));
    this.#idleTimer = setTimeout(() => this.kick(), IDLE_TICK_MS);
    for (const t of this.transports) t.armWake(this.#onWake);
    return this.#idle;
  }

  async until(done: () => boolean): Promise<void> {
    this.#check();
    this.progress();
    if (done()) return;
    this.#waiting++;
    try {
      // Let a caller that starts several operations at once (Promise.all)
      // post them all before this one may block the thread.
      await undefined;
      let syncSince = -1;
      for (;;) {
        this.#check();
        this.progress();
        if (done()) return;
        const sync = this.#syncTransport;
        if (sync && this.syncOk && this.#waiting === 1 && this.syncWaitUs > 0) {
          const now = performance.now();
          if (syncSince < 0) syncSince = now;
          if ((now - syncSince) * 1000 < this.syncWaitUs) {
            // A peer pulling a large send of this rank answers only after its
            // copy: that long may be worth spinning rather than sleeping.
            sync.waitSync!(1, this.#awaitedBytes * PULL_NS_PER_BYTE);
            continue;
          }
          syncSince = -1;
        }
        await this.#sleep();
      }
    } finally {
      this.#waiting--;
    }
  }

  readonly #pullEnded = (): void => {
    this.#pulling--;
  };

  /** Rendezvous messages matched here and still being pulled. */
  get pulling(): number {
    return this.#pulling;
  }

  /** Fails every send still awaiting FIN (finalize, once no receive can match them any more). */
  abandonSends(err: Error): void {
    const open = [...this.#sends.values()];
    this.#sends.clear();
    this.#awaitedBytes = 0;
    for (const s of open) {
      s.release();
      s.req.complete(undefined, err);
    }
  }

  /** Requests still open (rendezvous and synchronous sends awaiting FIN). */
  get pendingSends(): number {
    return this.#sends.size;
  }

  /** Messages transports still hold for their peers (eager sends complete when queued). */
  get unsent(): number {
    let n = 0;
    for (const ep of this.endpoints) if (ep) n += ep.queued;
    return n;
  }

  close(): void {
    this.#services = 0;
    if (this.#serviceTick) clearImmediate(this.#serviceTick);
    this.#serviceTick = undefined;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const r = this.#idleResolve;
    this.#idleResolve = undefined;
    this.#idle = undefined;
    r?.();
  }
}

function unexpected(
  source: number,
  tag: number,
  peer: number,
  type: number,
  flags: number,
  length: number,
  data: Uint8Array | undefined,
  id: number,
  addrLo: number,
  addrHi: number,
  key: number,
): Unexpected {
  return { source, tag, peer, type, flags, length, data, id, addrLo, addrHi, key };
}
