// ibv_pd: the protection domain MRs, QPs, SRQs and AHs belong to.

import type { HcaPd } from '@ibal/hca';
import type { Context } from './context.js';
import { kHandle } from './internal.js';
import { Resource } from './resource.js';

export class PD extends Resource {
  readonly context: Context;
  readonly [kHandle]: HcaPd;

  /** @internal Use context.allocPd(). */
  constructor(context: Context, hca: HcaPd) {
    super([context]);
    this.context = context;
    this[kHandle] = hca;
  }

  describe(): string {
    return 'PD';
  }

  /** ibv_dealloc_pd; refused (EBUSY) while MRs, QPs, SRQs or AHs use it. */
  dealloc(): void {
    this.closeWith('deallocate', () => this[kHandle].dealloc());
  }

  [Symbol.dispose](): void {
    this.dealloc();
  }
}
