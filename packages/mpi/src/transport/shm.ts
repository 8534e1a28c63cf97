// Shared memory between the ranks of one host, in the manner of Open MPI's
// vader BTL: every rank owns one segment holding its inbox doorbell and one
// single-producer ring per local peer that writes to it. Eager messages are
// written straight into the receiver's ring (one copy in, one copy out);
// rendezvous payloads are pulled with process_vm_readv, one copy from the
// sender's buffer into the receiver's.
//
// Segment layout: line 0 is the inbox doorbell; then for each local rank j
// (in world-rank order, the owner's own slot unused) a 64-byte line whose
// first word a producer sets when it found the ring full (the consumer then
// rings that producer's doorbell after draining), followed by the ring.
import { Doorbell, ShmRing, ShmSegment, addressOf, vmRead } from '@ibal/hca';
import { HDR_BYTES, HDR_WORDS } from '../protocol/header.js';
import type { Endpoint, Sink, Transport } from './transport.js';

const LINE = 64;
const BATCH = 64;
const MIN_SPIN_NS = 2000;
/** The longest spin an expected copy buys (see waitSync). */
const LONG_SPIN_MAX_NS = 2_000_000;

interface Queued {
  header: Int32Array;
  payload: Uint8Array | undefined;
}

export interface ShmCard {
  segment: string;
  pid: number;
}

function slotOffset(j: number, ringBytes: number): number {
  return LINE + j * (LINE + ShmRing.bytesFor(ringBytes));
}

export class ShmEndpoint implements Endpoint {
  readonly kind = 'shm';
  readonly peer: number;
  readonly eagerLimit: number;
  readonly #pid: number;
  readonly #seg: ShmSegment;
  readonly #out: ShmRing;
  readonly #words: Int32Array;
  readonly #bell: Doorbell;
  readonly #fullFlag: Int32Array;
  #queue: Queued[] = [];
  /**
   * Set while the transport delivers arrivals: messages the sink sends then
   * (FIN after each rendezvous pull) ring the peer once at the end of the
   * pass instead of once each. A ring that wakes a sleeping peer costs a
   * FUTEX_WAKE and often a context switch on a busy host (~75 µs a ring
   * measured on 2 shared cores, as much as the 1 MiB pull it answered).
   */
  deferRing = false;
  #owesRing = false;

  constructor(peer: number, pid: number, seg: ShmSegment, myIndex: number, ringBytes: number, eagerLimit: number) {
    this.peer = peer;
    this.#pid = pid;
    this.#seg = seg;
    const at = slotOffset(myIndex, ringBytes);
    this.#fullFlag = new Int32Array(seg.buffer, at, 1);
    this.#out = ShmRing.attach(seg.buffer, at + LINE);
    this.#bell = new Doorbell(seg.buffer, 0);
    this.#words = new Int32Array(this.#out.data.buffer, this.#out.data.byteOffset, this.#out.data.length >> 2);
    this.eagerLimit = Math.min(eagerLimit, this.#out.maxMessage - HDR_BYTES);
  }

  get queued(): number {
    return this.#queue.length;
  }

  send(header: Int32Array, payload: Uint8Array | undefined): void {
    if (this.#queue.length > 0 || !this.#write(header, payload)) {
      this.#queue.push({ header: header.slice(0, HDR_WORDS), payload: payload?.slice() });
      this.flush();
    }
  }

  #write(header: Int32Array, payload: Uint8Array | undefined): boolean {
    const len = payload ? payload.length : 0;
    const at = this.#out.reserve(HDR_BYTES + len);
    if (at < 0) return false;
    this.#words.set(header.length === HDR_WORDS ? header : header.subarray(0, HDR_WORDS), at >> 2);
    if (payload && len > 0) this.#out.data.set(payload, at + HDR_BYTES);
    this.#out.commit(0, false);
    if (this.deferRing) this.#owesRing = true;
    else this.#bell.ring();
    return true;
  }

  /** Writes what the ring had no room for; returns how many went. */
  flush(): number {
    let n = 0;
    while (this.#queue.length > 0) {
      const m = this.#queue[0]!;
      if (!this.#write(m.header, m.payload)) {
        // Raise the flag, then look once more: a consumer that drained
        // between the failed write and the flag saw no flag and rang no one,
        // and both sides could then sleep for good.
        Atomics.store(this.#fullFlag, 0, 1);
        if (!this.#write(m.header, m.payload)) break;
      }
      this.#queue.shift();
      n++;
    }
    return n;
  }

  /** Rings the peer's doorbell (after draining a ring it found full). */
  ringPeer(): void {
    this.#bell.ring();
  }

  /** Ends a deferred pass: rings the peer once if anything was written during it. */
  settle(): void {
    this.deferRing = false;
    if (this.#owesRing) {
      this.#owesRing = false;
      this.#bell.ring();
    }
  }

  expose(buf: Uint8Array, header: Int32Array): () => void {
    const addr = addressOf(buf);
    header[6] = Number(addr & 0xffffffffn) | 0;
    header[7] = Number(addr >> 32n) | 0;
    header[8] = 0;
    return noop;
  }

  fetch(dst: Uint8Array, lo: number, hi: number, _key: number, done: (err?: Error) => void): void {
    const addr = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    try {
      if (dst.length > 0) vmRead(this.#pid, addr, dst);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  }

  close(): void {
    this.#out.close('producer');
    this.#bell.close();
    this.#seg.close();
  }
}

const noop = (): void => {};

export class ShmTransport implements Transport {
  readonly name = 'shm';
  readonly segment: ShmSegment;
  readonly endpoints: ShmEndpoint[] = [];
  readonly #ringBytes: number;
  readonly #eagerLimit: number;
  readonly #sink: Sink;
  readonly #bell: Doorbell;
  readonly #in: { peer: number; ring: ShmRing; words: Int32Array; full: Int32Array; ep?: ShmEndpoint }[] = [];
  #start = 0;
  readonly #maxSpinNs: number;
  #spinNs: number;
  /** Waits for a copy in progress may spin past the budget (a core per rank, spin not set by hand). */
  longSpin = false;
  #armed: Promise<unknown> | undefined;
  #closed = false;
  readonly #owned = new Set<{ close(): void }>();

  /** Lays out this rank's segment with a ring for each other local rank. */
  constructor(localRanks: readonly number[], myRank: number, ringBytes: number, eagerLimit: number, sink: Sink, spinNs = 50_000, yieldNs = 0) {
    this.#ringBytes = ringBytes;
    this.#eagerLimit = eagerLimit;
    this.#sink = sink;
    this.segment = ShmSegment.create(slotOffset(localRanks.length, ringBytes));
    // This transport spins itself (waitSync below); the doorbell only sleeps.
    this.#bell = new Doorbell(this.segment.buffer, 0, { maxSpinNs: 0, yieldNs });
    this.#maxSpinNs = spinNs;
    this.#spinNs = spinNs;
    localRanks.forEach((peer, j) => {
      if (peer === myRank) return;
      const at = slotOffset(j, ringBytes);
      const ring = ShmRing.create(this.segment.buffer, at + LINE, ringBytes);
      const words = new Int32Array(ring.data.buffer, ring.data.byteOffset, ring.data.length >> 2);
      this.#in.push({ peer, ring, words, full: new Int32Array(this.segment.buffer, at, 1) });
    });
  }

  /**
   * Ties `res` (more shared memory between these ranks, such as a
   * communicator's collective staging) to this transport: it is closed
   * with it, at finalize, unless it was closed and released before.
   * Returns the release.
   */
  own(res: { close(): void }): () => void {
    this.#owned.add(res);
    return () => this.#owned.delete(res);
  }

  card(): ShmCard {
    return { segment: this.segment.name, pid: process.pid };
  }

  /**
   * Maps each local peer's segment and takes this rank's ring in it. A local
   * rank without a card has no shared memory and is reached another way; the
   * slots stay laid out by `localRanks`, as every segment's are.
   */
  connect(localRanks: readonly number[], myRank: number, cards: Map<number, ShmCard>): void {
    const myIndex = localRanks.indexOf(myRank);
    for (const peer of localRanks) {
      const card = cards.get(peer);
      if (peer === myRank || !card) continue;
      const seg = ShmSegment.open(card.segment);
      const ep = new ShmEndpoint(peer, card.pid, seg, myIndex, this.#ringBytes, this.#eagerLimit);
      this.endpoints.push(ep);
      const inbound = this.#in.find((x) => x.peer === peer);
      if (inbound) inbound.ep = ep;
    }
  }

  /** Once every peer has mapped it, the name can go: a crash then leaves nothing behind. */
  unlink(): void {
    this.segment.unlink();
  }

  progress(): number {
    const eps = this.endpoints;
    for (let i = 0; i < eps.length; i++) eps[i]!.deferRing = true;
    try {
      return this.#deliver();
    } finally {
      for (let i = 0; i < eps.length; i++) eps[i]!.settle();
    }
  }

  #deliver(): number {
    let n = 0;
    for (const ep of this.endpoints) if (ep.queued > 0) n += ep.flush();
    const rings = this.#in;
    const count = rings.length;
    if (count === 0) return n;
    // Start from a different ring each time so no sender is favoured (ANY_SOURCE fairness).
    const first = this.#start;
    this.#start = first + 1 >= count ? 0 : first + 1;
    for (let k = 0; k < count; k++) {
      const x = rings[(first + k) % count]!;
      const ring = x.ring;
      let got = 0;
      while (got < BATCH) {
        const len = ring.peek();
        if (len < 0) break;
        const off = ring.offset;
        this.#sink(x.peer, x.words, off >> 2, ring.data, off + HDR_BYTES);
        ring.release();
        got++;
      }
      if (got > 0) {
        n += got;
        if (Atomics.load(x.full, 0) !== 0) {
          Atomics.store(x.full, 0, 0);
          x.ep?.ringPeer();
        }
      }
    }
    return n;
  }

  #pendingWork(): boolean {
    for (const x of this.#in) if (!x.ring.isEmpty()) return true;
    return false;
  }

  /**
   * Spins on the doorbell word for up to the current budget, then sleeps on
   * the futex. The budget adapts (as Open MPI's progress loop does not, but
   * two cores shared by several ranks need): it doubles, up to the
   * ceiling, when a sleep ends soon enough that a longer spin would have
   * caught the ring, and halves when a sleep is long; it never reaches 0,
   * so a burst of traffic after a quiet spell is caught again.
   */
  waitSync(timeoutMs: number, expectNs = 0): void {
    const seen = this.#bell.seq();
    if (this.#pendingWork()) return;
    // A wait expected to end after a copy (a peer pulling a large send)
    // spins through it when this rank has a core to itself: sleeping cost a
    // futex wake-up per message, 100-150 us of a 1 MiB ping-pong's 250.
    const budgetMs = Math.max(this.#spinNs, this.longSpin ? Math.min(expectNs, LONG_SPIN_MAX_NS) : 0) / 1e6;
    if (budgetMs > 0) {
      const t0 = performance.now();
      for (let i = 1; ; i++) {
        if (this.#bell.seq() !== seen) {
          return;
        }
        if ((i & 63) === 0 && performance.now() - t0 >= budgetMs) break;
      }
    }
    const t1 = performance.now();
    if (this.#bell.waitSync(seen, timeoutMs) === 'timed-out') {
      this.#spinNs = Math.max(MIN_SPIN_NS, this.#spinNs >>> 1);
      return;
    }
    const sleptNs = (performance.now() - t1) * 1e6;
    if (sleptNs < 4 * this.#maxSpinNs) this.#spinNs = Math.min(this.#maxSpinNs, Math.max(MIN_SPIN_NS, this.#spinNs * 2));
    else this.#spinNs = Math.max(MIN_SPIN_NS, this.#spinNs >>> 1);
  }

  armWake(kick: () => void): void {
    if (this.#armed || this.#closed) return;
    const seen = this.#bell.seq();
    if (this.#pendingWork()) {
      queueMicrotask(kick);
      return;
    }
    this.#armed = this.#bell.wait(seen, -1).then(
      () => {
        this.#armed = undefined;
        kick();
      },
      () => {
        this.#armed = undefined;
      },
    );
  }

  // A pending wait is left armed: the next ring ends it anyway, and
  // cancelling would race with the next arm (one waiter per doorbell).
  disarm(): void {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Let a pending asynchronous wait report back before its doorbell goes:
    // a waiter thread's result must not arrive while the process exits.
    const armed = this.#armed;
    if (armed) {
      this.#bell.cancel();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([armed, new Promise((r) => (timer = setTimeout(r, 200)))]);
      clearTimeout(timer);
    }
    for (const res of this.#owned) res.close();
    this.#owned.clear();
    for (const ep of this.endpoints) ep.close();
    for (const x of this.#in) x.ring.close('consumer');
    this.#bell.close();
    this.segment.close();
  }
}
