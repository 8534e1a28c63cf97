import { QpAttrMask, QpState, QpType } from '../enums.js';
import { PostError, ResourceClosedError } from '../errors.js';
import type { Gid, HcaQp, HcaSrq, QpAttr, QpCap, RecvWr, SendWr, SrqAttr } from '../provider.js';
import type { NativeContext } from './context.js';
import { call } from './errno.js';
import type { NativePostError, NativeQpCreated } from './load.js';
import { RecvWrWriter, SendWrWriter } from './wr-buffer.js';

function postError(e: NativePostError, index: number): PostError {
  const code = e.code === 'ENOMEM' ? 'ERR_IBAL_CAPACITY' : 'ERR_IBAL_POST';
  return new PostError(`${e.why || 'refused'} (${e.code})`, index, code);
}

/**
 * Posts `wrs` through a record buffer `batch` WRs at a time: `write` fills
 * record i (or says why it cannot), `post` hands the addon the first n
 * records and returns -1 or the index it refused, `lastError` says why. As
 * with bad_wr, the WRs before the refused one are posted and none after it.
 */
export function postThrough<W>(
  wrs: readonly W[],
  batch: number,
  write: (i: number, wr: W) => string | undefined,
  post: (count: number) => number,
  lastError: () => NativePostError,
): void {
  let i = 0;
  while (i < wrs.length) {
    const n = Math.min(batch, wrs.length - i);
    let k = 0;
    let why: string | undefined;
    for (; k < n; k++) {
      why = write(k, wrs[i + k]!);
      if (why !== undefined) break;
    }
    if (k > 0) {
      const bad = post(k);
      if (bad >= 0) throw postError(lastError(), i + bad);
    }
    if (why !== undefined) throw new PostError(why, i + k);
    i += k;
  }
}

export class NativeQp implements HcaQp {
  closed = false;
  private tracked: number = QpState.RESET;
  readonly cap: QpCap;
  private readonly sendWriter: SendWrWriter;
  private readonly recvWriter: RecvWrWriter | undefined;
  private readonly batch: number;

  constructor(
    private readonly ctx: NativeContext,
    readonly qpType: number,
    created: NativeQpCreated,
    private readonly srq: NativeSrq | undefined,
  ) {
    this.id = created.id;
    this.qpNum = created.qpNum;
    this.cap = created.cap;
    this.batch = created.batch;
    this.sendWriter = new SendWrWriter(created.sendBuf, created.sendMaxSge, qpType === QpType.UD);
    this.recvWriter = created.recvBuf ? new RecvWrWriter(created.recvBuf, created.recvMaxSge!) : undefined;
  }

  readonly id: number;
  readonly qpNum: number;

  /** The HCA's view: it moves a QP to ERR by itself when a WR fails. */
  get state(): number {
    if (this.closed) return this.tracked;
    return Number(call('ibv_query_qp', () => this.ctx.h.queryQp(this.id)).qpState);
  }

  modify(attr: QpAttr, mask: number): void {
    this.check();
    call('ibv_modify_qp', () => this.ctx.h.modifyQp(this.id, attr, mask));
    if (mask & QpAttrMask.STATE) this.tracked = attr.qpState!;
  }

  query(): QpAttr {
    this.check();
    return call('ibv_query_qp', () => this.ctx.h.queryQp(this.id)) as QpAttr;
  }

  postSend(wrs: readonly SendWr[]): void {
    this.check();
    const s = this.tracked;
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.RTR) {
      throw new PostError(`QP ${this.qpNum} is in a state that cannot send`, 0, 'ERR_IBAL_QP_STATE');
    }
    postThrough(wrs, this.batch, this.writeSend, this.postSendCount, this.ctx.lastPostError);
  }

  private readonly writeSend = (i: number, wr: SendWr): string | undefined => this.sendWriter.write(i, wr);
  private readonly postSendCount = (n: number): number => this.ctx.h.postSend(this.id, n);
  private readonly writeRecv = (i: number, wr: RecvWr): string | undefined => this.recvWriter!.write(i, wr);
  private readonly postRecvCount = (n: number): number => this.ctx.h.postRecv(this.id, n);

  postRecv(wrs: readonly RecvWr[]): void {
    this.check();
    if (!this.recvWriter) throw new PostError('the QP receives from an SRQ: post to the SRQ', 0);
    postThrough(wrs, this.batch, this.writeRecv, this.postRecvCount, this.ctx.lastPostError);
  }

  attachMcast(gid: Gid, lid: number): Promise<void> {
    this.check();
    call('ibv_attach_mcast', () => this.ctx.h.attachMcast(this.id, gid, lid));
    return Promise.resolve();
  }

  detachMcast(gid: Gid, lid: number): void {
    this.check();
    call('ibv_detach_mcast', () => this.ctx.h.detachMcast(this.id, gid, lid));
  }

  destroy(): void {
    this.check();
    call('ibv_destroy_qp', () => this.ctx.h.destroyQp(this.id));
    this.closed = true;
    this.ctx.qps.delete(this.id);
    if (this.srq) this.srq.users--;
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError(`QP ${this.qpNum}`);
  }
}

export class NativeSrq implements HcaSrq {
  closed = false;
  users = 0;
  private readonly writer: RecvWrWriter;

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
    recvBuf: ArrayBuffer,
    recvMaxSge: number,
    private readonly batch: number,
  ) {
    this.writer = new RecvWrWriter(recvBuf, recvMaxSge);
  }

  modify(attr: Partial<SrqAttr>, mask: number): void {
    this.check();
    call('ibv_modify_srq', () => this.ctx.h.modifySrq(this.id, attr, mask));
  }

  query(): SrqAttr {
    this.check();
    return call('ibv_query_srq', () => this.ctx.h.querySrq(this.id));
  }

  private readonly write = (i: number, wr: RecvWr): string | undefined => this.writer.write(i, wr);
  private readonly post = (n: number): number => this.ctx.h.postSrqRecv(this.id, n);

  postRecv(wrs: readonly RecvWr[]): void {
    this.check();
    postThrough(wrs, this.batch, this.write, this.post, this.ctx.lastPostError);
  }

  destroy(): void {
    this.check();
    call('ibv_destroy_srq', () => this.ctx.h.destroySrq(this.id));
    this.closed = true;
    this.ctx.srqs.delete(this.id);
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError('SRQ');
  }
}
