import { EventType } from '../enums.js';
import { CapacityError, ResourceClosedError } from '../errors.js';
import type { AsyncEvent, HcaCq, WorkCompletion } from '../provider.js';
import { newWorkCompletion } from '../provider.js';

/**
 * Settled once; `.then` on it queues the notification as a microtask. Node's
 * queueMicrotask also builds an AsyncResource and a bound function per call,
 * and a CQ event fires per message in a ping-pong (a sampling profile of an
 * SDP ping-pong put that at ~4% of what each process allocated).
 */
const settled = Promise.resolve();

/** The most entries a soft CQ has (queryDevice's maxCqe). */
export const MAX_CQE = 65536;

/**
 * A completion queue: a ring of preallocated entries. Overflow is what a real
 * HCA reports as a CQ error: the async event CQ_ERR fires and later
 * completions are lost, since a full CQ has nowhere to put them.
 */
export class SoftCq implements HcaCq {
  private ring: WorkCompletion[];
  private head = 0;
  private count = 0;
  private armed = 0; // 0 none, 1 any, 2 solicited only
  private notifyQueued = false;
  private overflowed = false;
  /** Empty polls in a row (see poll). */
  private emptyPolls = 0;
  closed = false;
  /** QPs and SRQs attached; a CQ in use cannot be destroyed. */
  users = 0;

  constructor(
    public cqe: number,
    private readonly onNotify: () => void,
    private readonly raise: (e: AsyncEvent) => void,
    /** The device's manual progress, run when a poll finds the queue empty (see SoftDevice.progress). */
    private readonly progress?: () => number,
    /** Stamp each completion with the time it was generated (ibv_create_cq_ex's completion timestamp). */
    private readonly timestamps = false,
  ) {
    this.ring = Array.from({ length: cqe }, newWorkCompletion);
  }

  /** Claim the next entry to fill in, or undefined on overflow. */
  push(solicited: boolean): WorkCompletion | undefined {
    if (this.closed) return undefined;
    if (this.count === this.cqe) {
      if (!this.overflowed) {
        this.overflowed = true;
        this.raise({ eventType: EventType.CQ_ERR, cq: this });
      }
      return undefined;
    }
    const wc = this.ring[(this.head + this.count) % this.cqe]!;
    this.count++;
    // ns of the soft HCA's clock: performance.now() has sub-µs resolution and stays below 2^53 ns for 104 days.
    wc.completionTs = this.timestamps ? Math.round(performance.now() * 1e6) : 0;
    if (this.armed === 1 || (this.armed === 2 && solicited)) {
      this.armed = 0;
      if (!this.notifyQueued) {
        this.notifyQueued = true;
        void settled.then(this.fire);
      }
    }
    return wc;
  }

  private readonly fire = (): void => {
    this.notifyQueued = false;
    if (!this.closed) this.onNotify();
  };

  poll(n: number, out: WorkCompletion[]): number {
    if (this.closed) throw new ResourceClosedError('CQ');
    // Only a caller that polls again after an empty poll is spinning; one
    // that polls until empty and then waits for a notification (cq.next,
    // a completion channel) would pay for a drain, and for ACKs sent one
    // drain at a time instead of coalesced per turn, for nothing.
    if (this.count === 0 && this.progress && this.emptyPolls++ > 0) this.progress();
    let i = 0;
    while (i < n && this.count > 0) {
      const src = this.ring[this.head]!;
      const dst = out[i]!;
      dst.wrId = src.wrId;
      dst.status = src.status;
      dst.opcode = src.opcode;
      dst.vendorErr = src.vendorErr;
      dst.byteLen = src.byteLen;
      dst.immData = src.immData;
      dst.invalidatedRkey = src.invalidatedRkey;
      dst.completionTs = src.completionTs;
      dst.qpNum = src.qpNum;
      dst.srcQp = src.srcQp;
      dst.wcFlags = src.wcFlags;
      dst.pkeyIndex = src.pkeyIndex;
      dst.slid = src.slid;
      dst.sl = src.sl;
      dst.dlidPathBits = src.dlidPathBits;
      this.head = (this.head + 1) % this.cqe;
      this.count--;
      i++;
    }
    if (i > 0) this.emptyPolls = 0;
    return i;
  }

  resize(cqe: number): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    if (!(Number.isInteger(cqe) && cqe >= 1 && cqe <= MAX_CQE)) throw new CapacityError(`CQ size ${cqe} outside 1..${MAX_CQE}`);
    if (cqe < this.count) throw new CapacityError(`cannot resize the CQ to ${cqe} entries: ${this.count} completions are queued (EINVAL)`);
    // The queued entries keep their order at the start of the new ring; their objects move with them.
    const ring: WorkCompletion[] = [];
    for (let i = 0; i < this.count; i++) ring.push(this.ring[(this.head + i) % this.cqe]!);
    for (let i = this.count; i < cqe; i++) ring.push(newWorkCompletion());
    this.ring = ring;
    this.head = 0;
    this.cqe = cqe;
  }

  reqNotify(solicitedOnly: boolean): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    // Arming with entries already queued still fires: ibv_req_notify_cq users
    // poll after arming, but a promise-based waiter would otherwise sleep forever.
    this.armed = solicitedOnly ? 2 : 1;
    if (this.count > 0 && !solicitedOnly) {
      this.armed = 0;
      if (!this.notifyQueued) {
        this.notifyQueued = true;
        void settled.then(this.fire);
      }
    }
  }

  get depth(): number {
    return this.count;
  }

  destroy(): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    this.closed = true;
  }
}
