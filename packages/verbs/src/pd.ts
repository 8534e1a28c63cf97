// ibv_pd: the protection domain MRs, QPs, SRQs and AHs belong to.

import { InvalidArgumentError, type HcaPd } from '@ibal/hca';
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

/**
 * The PD a verb was given: a closed one fails as any closed resource does
 * (ResourceClosedError); anything that is not a PD at all is an
 * InvalidArgumentError, not a TypeError from deep inside.
 */
export function checkPd(pd: unknown, verb: string): PD {
  if (!(pd instanceof PD)) throw new InvalidArgumentError(`${verb}: pd must be a PD (from context.allocPd()), got ${pd === null ? 'null' : typeof pd}`);
  pd.assertOpen();
  return pd;
}
