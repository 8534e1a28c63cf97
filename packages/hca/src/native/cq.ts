import { ResourceClosedError } from '../errors.js';
import type { HcaCq, WorkCompletion } from '../provider.js';
import type { NativeContext } from './context.js';
import { call } from './errno.js';
import { LAYOUT, WcReader } from './wr-buffer.js';

/**
 * ibv_cq on the context's completion channel. The addon polls into a
 * reusable record buffer (already translated to the soft HCA's completion
 * shape); reading it fills the caller's WorkCompletion objects in place.
 */
export class NativeCq implements HcaCq {
  closed = false;
  private readonly reader: WcReader;

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
    public cqe: number,
    out: ArrayBuffer,
    private readonly onNotify: () => void,
  ) {
    this.reader = new WcReader(out);
  }

  poll(n: number, out: WorkCompletion[]): number {
    if (this.closed) throw new ResourceClosedError('CQ');
    const h = this.ctx.h;
    let got = 0;
    while (got < n) {
      const want = Math.min(n - got, LAYOUT.pollBatch);
      const k = h.pollCq(this.id, want);
      for (let i = 0; i < k; i++) this.reader.read(i, out[got + i]!);
      got += k;
      if (k < want) break;
    }
    return got;
  }

  resize(cqe: number): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    this.cqe = call('ibv_resize_cq', () => this.ctx.h.resizeCq(this.id, cqe));
  }

  reqNotify(solicitedOnly: boolean): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    call('ibv_req_notify_cq', () => this.ctx.h.reqNotifyCq(this.id, solicitedOnly));
  }

  /** The channel said this CQ has a new completion. */
  fire(): void {
    if (!this.closed) this.onNotify();
  }

  destroy(): void {
    if (this.closed) throw new ResourceClosedError('CQ');
    call('ibv_destroy_cq', () => this.ctx.h.destroyCq(this.id));
    this.closed = true;
    this.ctx.cqs.delete(this.id);
  }
}
