import { ResourceClosedError } from '../errors.js';
import type { HcaMw, HcaQp, MwBindInfo } from '../provider.js';
import type { NativeContext } from './context.js';
import { call } from './errno.js';

/** What a bind needs of the QP and MR it names: the binding's ids. */
interface Named {
  readonly id: number;
  readonly closed: boolean;
}

/** An ibv_mw. libibverbs picks a type 1 window's new rkey at ibv_bind_mw; bind() reports it. */
export class NativeMw implements HcaMw {
  closed = false;

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
    readonly type: number,
    public rkey: number,
    private readonly onDealloc: (mw: NativeMw) => void,
  ) {}

  bind(qp: HcaQp, wrId: number, sendFlags: number, _rkey: number, info: MwBindInfo): number {
    if (this.closed) throw new ResourceClosedError('MW');
    const q = qp as unknown as Named;
    const mr = info.mr as unknown as Named | undefined;
    if (q.closed) throw new ResourceClosedError('QP');
    if (mr?.closed) throw new ResourceClosedError('MR');
    this.rkey = call('ibv_bind_mw', () => this.ctx.h.bindMw(q.id, this.id, wrId, sendFlags, mr ? mr.id : 0, info.addr, info.length, info.mwAccessFlags));
    return this.rkey;
  }

  dealloc(): void {
    if (this.closed) throw new ResourceClosedError('MW');
    call('ibv_dealloc_mw', () => this.ctx.h.deallocMw(this.id));
    this.closed = true;
    this.onDealloc(this);
  }
}
