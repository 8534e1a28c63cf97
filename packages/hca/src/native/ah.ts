import { ResourceClosedError } from '../errors.js';
import type { AhAttr, HcaAh } from '../provider.js';
import type { NativeContext } from './context.js';
import { call } from './errno.js';

export class NativeAh implements HcaAh {
  readonly attr: Readonly<AhAttr>;
  closed = false;

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
    attr: AhAttr,
  ) {
    this.attr = { ...attr, dgid: Uint8Array.from(attr.dgid) };
  }

  destroy(): void {
    if (this.closed) throw new ResourceClosedError('AH');
    call('ibv_destroy_ah', () => this.ctx.h.destroyAh(this.id));
    this.closed = true;
  }
}
