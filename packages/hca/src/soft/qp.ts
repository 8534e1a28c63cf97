import { EventType, QpAttrMask, QpState, QpType, SendFlags, WcFlags, WcOpcode, WcStatus, WrOpcode, isAtomic, mtuBytes } from '../enums.js';
import { CapacityError, InvalidArgumentError, NotFoundError, PostError, ResourceClosedError } from '../errors.js';
import type { AhAttr, AsyncEvent, Gid, HcaQp, QpAttr, QpCap, QpInitAttr, RecvWr, SendWr } from '../provider.js';
import type { SoftCq } from './cq.js';
import type { MrTable, PdRef } from './mr.js';
import { Requester } from './requester.js';
import { Responder } from './responder.js';
import type { SoftSrq } from './srq.js';
import { postToRing } from './srq.js';
import { gather } from './sgl.js';
import { RecvWqe, Ring, SendWqe } from './wqe.js';
import type { Peer, UdpWire } from './wire.js';
import { resolvePeer } from './ah.js';
import { ipFromGid } from './gid.js';
import type { DeviceCounters } from './counters.js';
import type { Directory } from './directory.js';

/** What a QP needs from the device it lives on. */
export interface QpHost {
  readonly wire: UdpWire;
  readonly mrs: MrTable;
  readonly counters: DeviceCounters;
  readonly activeMtu: number;
  /** Where QPs are published for same-host peers' direct READs (directory.ts), if anywhere. */
  readonly directory: Directory | undefined;
  raise(e: AsyncEvent): void;
  unregisterQp(qp: SoftQp): void;
  /**
   * During manual progress (SoftDevice.progress), responders hand their
   * coalesced ACK here to have it sent at the end of the drain rather than
   * on the next turn of the event loop, which a spinning caller never reaches.
   * Returns false when no drain is running.
   */
  deferAck(flush: AckFlusher): boolean;
  /** ibv_attach_mcast: the QP gets a copy of what the group (an IP multicast address) receives. */
  attachMcast(qp: SoftQp, group: string): Promise<void>;
  /** ibv_detach_mcast; false when the QP was not attached. */
  detachMcast(qp: SoftQp, group: string): boolean;
}

export interface AckFlusher {
  flushPendingAck(): void;
}

export const MAX_QP_WR = 16384;
export const MAX_SGE = 32;
export const MAX_INLINE = 1024;

const wcOpcodeOf: number[] = [];
wcOpcodeOf[WrOpcode.RDMA_WRITE] = WcOpcode.RDMA_WRITE;
wcOpcodeOf[WrOpcode.RDMA_WRITE_WITH_IMM] = WcOpcode.RDMA_WRITE;
wcOpcodeOf[WrOpcode.SEND] = WcOpcode.SEND;
wcOpcodeOf[WrOpcode.SEND_WITH_IMM] = WcOpcode.SEND;
wcOpcodeOf[WrOpcode.RDMA_READ] = WcOpcode.RDMA_READ;
wcOpcodeOf[WrOpcode.ATOMIC_CMP_AND_SWP] = WcOpcode.COMP_SWAP;
wcOpcodeOf[WrOpcode.ATOMIC_FETCH_AND_ADD] = WcOpcode.FETCH_ADD;
wcOpcodeOf[WrOpcode.LOCAL_INV] = WcOpcode.LOCAL_INV;
wcOpcodeOf[WrOpcode.BIND_MW] = WcOpcode.BIND_MW;
wcOpcodeOf[WrOpcode.SEND_WITH_INV] = WcOpcode.SEND;

/**
 * A soft QP, structured as rxe is: a requester that segments WQEs into
 * packets and retires them on ACKs (rxe_req.c + rxe_comp.c), and a responder
 * that checks and executes incoming requests (rxe_resp.c).
 */
export class SoftQp implements HcaQp {
  state: number = QpState.RESET;
  readonly sq: Ring<SendWqe>;
  readonly rq: Ring<RecvWqe> | undefined;
  readonly cap: QpCap;
  readonly sqSigAll: boolean;
  readonly req: Requester;
  readonly resp: Responder;

  // Attributes, as last set by modify().
  pathMtu = 0;
  mtu = 256;
  qkey = 0;
  destQpNum = 0;
  accessFlags = 0;
  pkeyIndex = 0;
  portNum = 1;
  timeout = 0;
  retryCnt = 0;
  rnrRetry = 0;
  minRnrTimer = 0;
  maxRdAtomic = 0;
  maxDestRdAtomic = 0;
  sqPsn = 0;
  rqPsn = 0;
  enSqdAsyncNotify = 0;
  ahAttr: AhAttr | undefined;
  peer: Peer | undefined;
  closed = false;
  /** The context that created it, which receives its async events. */
  ctx: { raise(e: AsyncEvent): void } | undefined;

  constructor(
    readonly host: QpHost,
    readonly pd: PdRef,
    readonly qpNum: number,
    init: QpInitAttr,
  ) {
    const cap = init.cap;
    if (!(cap.maxSendWr >= 1 && cap.maxSendWr <= MAX_QP_WR)) throw new CapacityError(`max_send_wr ${cap.maxSendWr} outside 1..${MAX_QP_WR}`);
    if (!init.srq && !(cap.maxRecvWr >= 1 && cap.maxRecvWr <= MAX_QP_WR)) throw new CapacityError(`max_recv_wr ${cap.maxRecvWr} outside 1..${MAX_QP_WR}`);
    if (!(cap.maxSendSge >= 0 && cap.maxSendSge <= MAX_SGE)) throw new CapacityError(`max_send_sge ${cap.maxSendSge} outside 0..${MAX_SGE}`);
    if (!(cap.maxRecvSge >= 0 && cap.maxRecvSge <= MAX_SGE)) throw new CapacityError(`max_recv_sge ${cap.maxRecvSge} outside 0..${MAX_SGE}`);
    if (!(cap.maxInlineData >= 0 && cap.maxInlineData <= MAX_INLINE)) throw new CapacityError(`max_inline_data ${cap.maxInlineData} outside 0..${MAX_INLINE}`);
    this.cap = { ...cap };
    this.qpType = init.qpType;
    this.sendCq = init.sendCq as SoftCq;
    this.recvCq = init.recvCq as SoftCq;
    this.srq = init.srq as SoftSrq | undefined;
    this.sqSigAll = init.sqSigAll ?? false;
    this.sq = new Ring(cap.maxSendWr, () => new SendWqe(Math.max(cap.maxSendSge, 1), cap.maxInlineData));
    this.rq = this.srq ? undefined : new Ring(cap.maxRecvWr, () => new RecvWqe(Math.max(cap.maxRecvSge, 1)));
    this.sendCq.users++;
    this.recvCq.users++;
    if (this.srq) this.srq.users++;
    this.req = new Requester(this);
    this.resp = new Responder(this);
  }

  readonly qpType: number;
  readonly sendCq: SoftCq;
  readonly recvCq: SoftCq;
  readonly srq: SoftSrq | undefined;

  modify(attr: QpAttr, mask: number): void {
    this.check();
    if (mask & QpAttrMask.PKEY_INDEX) this.pkeyIndex = attr.pkeyIndex ?? 0;
    if (mask & QpAttrMask.PORT) this.portNum = attr.portNum ?? 1;
    if (mask & QpAttrMask.ACCESS_FLAGS) this.accessFlags = attr.qpAccessFlags ?? 0;
    if (mask & QpAttrMask.QKEY) this.qkey = (attr.qkey ?? 0) >>> 0;
    if (mask & QpAttrMask.PATH_MTU) {
      this.pathMtu = attr.pathMtu!;
      this.mtu = Math.min(mtuBytes(this.pathMtu), this.host.activeMtu);
    }
    if (mask & QpAttrMask.DEST_QPN) this.destQpNum = attr.destQpNum! & 0xffffff;
    if (mask & QpAttrMask.AV) {
      this.ahAttr = { ...attr.ahAttr!, dgid: Uint8Array.from(attr.ahAttr!.dgid) };
      this.peer = resolvePeer(this.host.wire, this.ahAttr);
    }
    if (mask & QpAttrMask.RQ_PSN) this.rqPsn = attr.rqPsn! & 0xffffff;
    if (mask & QpAttrMask.SQ_PSN) this.sqPsn = attr.sqPsn! & 0xffffff;
    if (mask & QpAttrMask.TIMEOUT) this.timeout = attr.timeout!;
    if (mask & QpAttrMask.RETRY_CNT) this.retryCnt = attr.retryCnt!;
    if (mask & QpAttrMask.RNR_RETRY) this.rnrRetry = attr.rnrRetry!;
    if (mask & QpAttrMask.MIN_RNR_TIMER) this.minRnrTimer = attr.minRnrTimer!;
    if (mask & QpAttrMask.MAX_QP_RD_ATOMIC) this.maxRdAtomic = attr.maxRdAtomic!;
    if (mask & QpAttrMask.MAX_DEST_RD_ATOMIC) this.maxDestRdAtomic = attr.maxDestRdAtomic!;
    if (mask & QpAttrMask.EN_SQD_ASYNC_NOTIFY) this.enSqdAsyncNotify = attr.enSqdAsyncNotify ?? 0;
    if (mask & QpAttrMask.STATE) this.moveTo(attr.qpState!, mask);
    this.host.directory?.publishQp(this);
  }

  private moveTo(next: number, mask: number): void {
    const prev = this.state;
    if (next === QpState.RESET) {
      this.req.reset();
      this.resp.reset();
      this.sq.clear();
      this.rq?.clear();
      this.state = QpState.RESET;
      return;
    }
    if (next === QpState.ERR) {
      // Messages this side executed and completed are ACKed first: a coalesced ACK still waiting would be dropped in ERR, and the
      // peer would retry a message its application already has into RETRY_EXC_ERR (rdma_disconnect moves the QP to ERR).
      this.resp.flushPendingAck();
      this.toError();
      return;
    }
    this.state = next;
    if (next === QpState.RTR && prev === QpState.INIT) this.resp.start(this.rqPsn);
    if (next === QpState.RTS && prev === QpState.RTR) this.req.start(this.sqPsn);
    else if (next === QpState.RTS && (mask & QpAttrMask.SQ_PSN) && prev === QpState.SQD) this.req.start(this.sqPsn);
    if (next === QpState.RTS) this.req.pump();
    if (next === QpState.SQD) this.req.checkDrained();
  }

  query(): QpAttr {
    this.check();
    return {
      qpState: this.state,
      curQpState: this.state,
      pathMtu: this.pathMtu,
      qkey: this.qkey,
      rqPsn: this.resp.epsn,
      sqPsn: this.req.psn,
      destQpNum: this.destQpNum,
      qpAccessFlags: this.accessFlags,
      cap: { ...this.cap },
      ahAttr: this.ahAttr ? { ...this.ahAttr, dgid: Uint8Array.from(this.ahAttr.dgid) } : undefined,
      pkeyIndex: this.pkeyIndex,
      enSqdAsyncNotify: this.enSqdAsyncNotify,
      sqDraining: this.state === QpState.SQD && !this.req.drained() ? 1 : 0,
      maxRdAtomic: this.maxRdAtomic,
      maxDestRdAtomic: this.maxDestRdAtomic,
      minRnrTimer: this.minRnrTimer,
      portNum: this.portNum,
      timeout: this.timeout,
      retryCnt: this.retryCnt,
      rnrRetry: this.rnrRetry,
    };
  }

  postSend(wrs: readonly SendWr[]): void {
    this.check();
    const s = this.state;
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.RTR) {
      throw new PostError(`QP ${this.qpNum} is in a state that cannot send`, 0, 'ERR_IBAL_QP_STATE');
    }
    for (let i = 0; i < wrs.length; i++) {
      const wr = wrs[i]!;
      if (this.sq.full) throw new PostError(`send queue is full (${this.sq.capacity} WRs)`, i, 'ERR_IBAL_CAPACITY');
      if (wr.sgList.length > Math.max(this.cap.maxSendSge, 0) && !(wr.sendFlags! & SendFlags.INLINE)) {
        throw new PostError(`${wr.sgList.length} SGEs exceed max_send_sge ${this.cap.maxSendSge}`, i);
      }
      if ((wr.opcode === WrOpcode.RDMA_READ || isAtomic(wr.opcode)) && this.qpType === QpType.RC && this.maxRdAtomic === 0) {
        throw new PostError('max_rd_atomic is 0: this QP may not issue RDMA READ or atomics', i);
      }
      const w = this.sq.reserve();
      w.load(wr, this.sqSigAll);
      if (wr.sendFlags! & SendFlags.INLINE) {
        if (w.length > this.cap.maxInlineData) {
          throw new PostError(`inline data of ${w.length} bytes exceeds max_inline_data ${this.cap.maxInlineData}`, i);
        }
        // Inline data is read now, at post time: the caller may reuse its buffer on return.
        if (!gather(this.host.mrs, this.pd, w, 0, w.inline, 0, w.length)) {
          throw new PostError('inline SGE does not name registered memory of this PD', i, 'ERR_IBAL_LOC_PROT');
        }
        w.inlineLen = w.length;
      }
      this.sq.commit();
    }
    if (this.state === QpState.ERR) this.flush();
    else this.req.pump();
  }

  postRecv(wrs: readonly RecvWr[]): void {
    this.check();
    if (this.srq) throw new PostError('QP uses an SRQ: post receives with postSrqRecv', 0, 'ERR_IBAL_INVALID_ARGUMENT');
    if (this.state === QpState.RESET) throw new PostError(`QP ${this.qpNum} is in RESET`, 0, 'ERR_IBAL_QP_STATE');
    postToRing(this.rq!, Math.max(this.cap.maxRecvSge, 1), wrs);
    if (this.state === QpState.ERR) this.flush();
  }

  /** Complete a send WQE: a CQE if it was signaled or failed, as the IBTA requires. */
  completeSend(w: SendWqe, status: number): void {
    if (!w.signaled && status === WcStatus.SUCCESS) return;
    const wc = this.sendCq.push(false);
    if (!wc) return this.cqOverflow();
    wc.wrId = w.wrId;
    wc.status = status;
    wc.opcode = wcOpcodeOf[w.opcode] ?? WcOpcode.SEND;
    wc.vendorErr = 0;
    wc.byteLen = w.opcode === WrOpcode.RDMA_READ || isAtomic(w.opcode) ? w.length : 0;
    wc.immData = 0;
    wc.invalidatedRkey = 0;
    wc.qpNum = this.qpNum;
    wc.srcQp = 0;
    wc.wcFlags = 0;
    wc.pkeyIndex = 0;
    wc.slid = 0;
    wc.sl = 0;
    wc.dlidPathBits = 0;
  }

  completeRecv(
    w: RecvWqe,
    status: number,
    opcode: number,
    byteLen: number,
    imm: number,
    flags: number,
    srcQp: number,
    solicited: boolean,
  ): void {
    const wc = this.recvCq.push(solicited);
    if (!wc) return this.cqOverflow();
    wc.wrId = w.wrId;
    wc.status = status;
    wc.opcode = opcode;
    wc.vendorErr = 0;
    wc.byteLen = byteLen;
    // One argument carries what C keeps in a union: the immediate, or the invalidated rkey.
    const inv = (flags & WcFlags.WITH_INV) !== 0;
    wc.immData = inv ? 0 : imm >>> 0;
    wc.invalidatedRkey = inv ? imm >>> 0 : 0;
    wc.qpNum = this.qpNum;
    wc.srcQp = srcQp;
    wc.wcFlags = flags;
    wc.pkeyIndex = this.pkeyIndex;
    wc.slid = 0;
    wc.sl = 0;
    wc.dlidPathBits = 0;
  }

  /** Take the receive WQE for an arriving message from the RQ or SRQ. */
  takeRecv(): RecvWqe | undefined {
    if (this.srq) return this.srq.take();
    const rq = this.rq!;
    return rq.size > 0 ? rq.shift() : undefined;
  }

  hasRecv(): boolean {
    return this.srq ? this.srq.ring.size > 0 : this.rq!.size > 0;
  }

  /**
   * Enter ERR and flush: every outstanding WR completes, in order, with
   * WR_FLUSH_ERR. `event` names the async event for errors that no
   * completion reports (a responder-side access violation, say).
   */
  toError(event?: number): void {
    if (this.state === QpState.ERR) return;
    this.state = QpState.ERR;
    this.host.directory?.publishQp(this);
    this.req.stop();
    this.resp.stop();
    if (event !== undefined) this.host.raise({ eventType: event, qp: this });
    this.flush();
  }

  private flush(): void {
    this.req.flush();
    this.resp.flushInProgress();
    if (this.rq) {
      while (this.rq.size > 0) {
        const w = this.rq.shift();
        this.completeRecv(w, WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, 0, 0, 0, false);
      }
    }
    // Receives posted to an SRQ belong to the SRQ, not to this QP: they stay.
  }

  private cqOverflow(): void {
    this.toError(EventType.QP_FATAL);
  }

  /** Multicast groups the QP is attached to (multicast.ts). */
  readonly groups = new Set<string>();

  attachMcast(gid: Gid, lid: number): Promise<void> {
    this.check();
    if (this.qpType !== QpType.UD) throw new InvalidArgumentError('attachMcast: only UD QPs join multicast groups (EINVAL)');
    void lid; // RoCE has no LIDs (0, and ignored, as rxe does)
    return this.host.attachMcast(this, ipFromGid(gid));
  }

  detachMcast(gid: Gid, _lid: number): void {
    this.check();
    if (!this.host.detachMcast(this, ipFromGid(gid))) throw new NotFoundError(`detachMcast: QP ${this.qpNum} is not attached to ${ipFromGid(gid)}`);
  }

  destroy(): void {
    this.check();
    this.closed = true;
    for (const g of [...this.groups]) this.host.detachMcast(this, g);
    this.host.directory?.clearQp(this.qpNum);
    this.resp.flushPendingAck();
    this.req.stop();
    this.resp.stop();
    this.sendCq.users--;
    this.recvCq.users--;
    if (this.srq) this.srq.users--;
    this.host.unregisterQp(this);
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError(`QP ${this.qpNum}`);
  }

  /** Receive-side flags for a WC. */
  static recvFlags(withImm: boolean, grh: boolean): number {
    return (withImm ? WcFlags.WITH_IMM : 0) | (grh ? WcFlags.GRH : 0);
  }
}
