import { EventType, SrqAttrMask } from '../enums.js';
import { CapacityError, InvalidArgumentError, PostError, ResourceBusyError, ResourceClosedError } from '../errors.js';
import type { AsyncEvent, HcaSrq, RecvWr, SrqAttr } from '../provider.js';
import { RecvWqe, Ring } from './wqe.js';

export function postToRing(ring: Ring<RecvWqe>, maxSge: number, wrs: readonly RecvWr[]): void {
  for (let i = 0; i < wrs.length; i++) {
    const wr = wrs[i]!;
    if (ring.full) throw new PostError(`receive queue is full (${ring.capacity} WRs)`, i, 'ERR_IBAL_CAPACITY');
    if (wr.sgList.length > maxSge) throw new PostError(`${wr.sgList.length} SGEs exceed max_sge ${maxSge}`, i);
    ring.reserve().load(wr);
    ring.commit();
  }
}

/**
 * A shared receive queue. The limit is a one-shot alarm, as in the IBTA:
 * when the number of posted WRs falls below srqLimit, SRQ_LIMIT_REACHED fires
 * and the limit disarms until modifySrq sets it again.
 */
export class SoftSrq implements HcaSrq {
  readonly ring: Ring<RecvWqe>;
  private limit: number;
  closed = false;
  users = 0;

  constructor(
    private readonly attr: SrqAttr,
    private readonly raise: (e: AsyncEvent) => void,
  ) {
    if (!(attr.maxWr >= 1 && attr.maxWr <= 16384)) throw new CapacityError(`SRQ max_wr ${attr.maxWr} outside 1..16384`);
    if (!(attr.maxSge >= 1 && attr.maxSge <= 32)) throw new CapacityError(`SRQ max_sge ${attr.maxSge} outside 1..32`);
    this.ring = new Ring(attr.maxWr, () => new RecvWqe(attr.maxSge));
    this.limit = attr.srqLimit ?? 0;
  }

  /** Take the next receive WQE for an arriving message. */
  take(): RecvWqe | undefined {
    if (this.ring.size === 0) return undefined;
    const w = this.ring.shift();
    if (this.limit > 0 && this.ring.size < this.limit) {
      this.limit = 0;
      this.raise({ eventType: EventType.SRQ_LIMIT_REACHED, srq: this });
    }
    return w;
  }

  modify(attr: Partial<SrqAttr>, mask: number): void {
    this.check();
    if (mask & SrqAttrMask.MAX_WR) throw new InvalidArgumentError('the soft HCA cannot resize an SRQ');
    if (mask & SrqAttrMask.LIMIT) {
      const l = attr.srqLimit ?? 0;
      if (!(l >= 0 && l <= this.attr.maxWr)) throw new InvalidArgumentError(`srq_limit ${l} outside 0..${this.attr.maxWr}`);
      this.limit = l;
    }
  }

  query(): SrqAttr {
    this.check();
    return { maxWr: this.attr.maxWr, maxSge: this.attr.maxSge, srqLimit: this.limit };
  }

  postRecv(wrs: readonly RecvWr[]): void {
    this.check();
    postToRing(this.ring, this.attr.maxSge, wrs);
  }

  destroy(): void {
    this.check();
    if (this.users > 0) throw new ResourceBusyError(`SRQ is used by ${this.users} QP(s)`);
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError('SRQ');
  }
}
