// ibv_srq: a receive queue several QPs share, with the low-watermark
// ("limit") event that tells the consumer to replenish it.

import { CapacityError, InvalidArgumentError, SrqAttrMask } from '@ibal/hca';
import type { HcaSrq, RecvWr, SrqAttr } from '@ibal/hca';
import { bindWrapper } from './events.js';
import { kHandle, kLimits } from './internal.js';
import { checkPd, type PD } from './pd.js';
import { Resource } from './resource.js';
import { NO_RECV_WR, checkRecvWr, postChecked } from './wr.js';

export interface SrqInitAttr {
  maxWr: number;
  /** Defaults to 1. */
  maxSge?: number;
}

export class SRQ extends Resource {
  readonly pd: PD;
  readonly [kHandle]: HcaSrq;
  #maxWr: number;
  #maxSge: number;
  readonly #one: RecvWr[] = [NO_RECV_WR];
  readonly #check = (wr: RecvWr): string | undefined => checkRecvWr(wr, this.#maxSge, 'the SRQ maxSge');
  readonly #post = (wrs: readonly RecvWr[]): void => this[kHandle].postRecv(wrs);

  /** @internal Use createSrq(). */
  constructor(pd: PD, hca: HcaSrq, maxWr: number, maxSge: number) {
    super([pd]);
    this.pd = pd;
    this[kHandle] = hca;
    this.#maxWr = maxWr;
    this.#maxSge = maxSge;
    bindWrapper(hca, this);
  }

  describe(): string {
    return 'SRQ';
  }

  /**
   * ibv_modify_srq. With SrqAttrMask.LIMIT, arms the limit: when fewer than
   * `srqLimit` receives remain posted, SRQ_LIMIT_REACHED fires once on the
   * context and the limit disarms (0 disarms it now). MAX_WR resizes, where
   * the provider supports it.
   */
  modifySrq(attr: Partial<SrqAttr>, mask: number): void {
    this.assertOpen();
    const known = SrqAttrMask.MAX_WR | SrqAttrMask.LIMIT;
    if (!Number.isInteger(mask) || mask <= 0 || mask & ~known) {
      throw new InvalidArgumentError(`modifySrq: mask must combine SrqAttrMask.MAX_WR and/or LIMIT, got ${String(mask)}`);
    }
    let maxWr = this.#maxWr;
    if (mask & SrqAttrMask.MAX_WR) {
      maxWr = attr.maxWr as number;
      if (!Number.isInteger(maxWr) || maxWr < 1) throw new InvalidArgumentError(`modifySrq: maxWr must be a positive integer, got ${String(attr.maxWr)}`);
      const max = this.pd.context[kLimits].maxSrqWr;
      if (maxWr > max) throw new CapacityError(`modifySrq: maxWr ${maxWr} exceeds the device's maxSrqWr ${max}`);
    }
    if (mask & SrqAttrMask.LIMIT) {
      const limit = attr.srqLimit;
      if (!Number.isInteger(limit) || (limit as number) < 0 || (limit as number) > maxWr) {
        throw new InvalidArgumentError(`modifySrq: srqLimit must be an integer in 0..${maxWr} (maxWr), got ${String(limit)}`);
      }
    }
    this[kHandle].modify(attr, mask);
    if (mask & SrqAttrMask.MAX_WR) this.#maxWr = this[kHandle].query().maxWr;
  }

  querySrq(): SrqAttr {
    this.assertOpen();
    return this[kHandle].query();
  }

  /** ibv_post_srq_recv; synchronous and allocation-free for a single WR. */
  postSrqRecv(wr: RecvWr | readonly RecvWr[]): void {
    if (this.closed) this.assertOpen();
    if (Array.isArray(wr)) {
      postChecked(wr as readonly RecvWr[], this.#check, this.#post);
      return;
    }
    const one = this.#one;
    one[0] = wr as RecvWr;
    try {
      postChecked(one, this.#check, this.#post);
    } finally {
      one[0] = NO_RECV_WR;
    }
  }

  /** ibv_destroy_srq; refused (EBUSY) while QPs use it. */
  destroy(): void {
    this.closeWith('destroy', () => this[kHandle].destroy());
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

/** ibv_create_srq. Arm the limit afterwards with modifySrq. */
export function createSrq(pd: PD, attr: SrqInitAttr): SRQ {
  checkPd(pd, 'createSrq');
  if (typeof attr !== 'object' || attr === null) throw new InvalidArgumentError('createSrq: attr must be an object');
  const { maxWr, maxSge = 1 } = attr;
  const lim = pd.context[kLimits];
  if (!Number.isInteger(maxWr) || maxWr < 1) throw new InvalidArgumentError(`createSrq: maxWr must be a positive integer, got ${String(maxWr)}`);
  if (!Number.isInteger(maxSge) || maxSge < 1) throw new InvalidArgumentError(`createSrq: maxSge must be a positive integer, got ${String(maxSge)}`);
  if (maxWr > lim.maxSrqWr) throw new CapacityError(`createSrq: maxWr ${maxWr} exceeds the device's maxSrqWr ${lim.maxSrqWr}`);
  if (maxSge > lim.maxSrqSge) throw new CapacityError(`createSrq: maxSge ${maxSge} exceeds the device's maxSrqSge ${lim.maxSrqSge}`);
  const hca = pd[kHandle].createSrq({ maxWr, maxSge, srqLimit: 0 });
  // Providers may round up; post checks use what was actually granted.
  const granted = hca.query();
  return new SRQ(pd, hca, granted.maxWr, granted.maxSge);
}
