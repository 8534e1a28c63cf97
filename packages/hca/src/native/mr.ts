import { ResourceClosedError } from '../errors.js';
import type { HcaMr } from '../provider.js';
import type { NativeContext } from './context.js';
import { call } from './errno.js';

/**
 * A registered region of binding-owned memory. `buf` views that memory;
 * deregistering while a posted WR still names it is refused (EBUSY), since
 * the HCA may yet read or write those bytes.
 */
export class NativeMr implements HcaMr {
  closed = false;

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
    readonly lkey: number,
    readonly rkey: number,
    readonly addr: number,
    readonly buf: Uint8Array,
    private readonly onDereg: (mr: NativeMr) => void,
  ) {}

  get length(): number {
    return this.buf.length;
  }

  /** Posted WRs naming this MR that have not completed yet. */
  get inflight(): number {
    if (this.closed) throw new ResourceClosedError('MR');
    return call('MR', () => this.ctx.h.mrInflight(this.id));
  }

  dereg(): void {
    if (this.closed) throw new ResourceClosedError('MR');
    call('ibv_dereg_mr', () => this.ctx.h.deregMr(this.id));
    this.closed = true;
    this.onDereg(this);
  }
}
