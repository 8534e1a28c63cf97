// ibv_qp: the queue pair. modifyQp enforces the IBTA state machine before
// the provider sees the call; postSend/postRecv check every WR the way a
// provider's post routine does, synchronously and (for one WR) without
// allocating.

import {
  CapacityError,
  InvalidArgumentError,
  MwType,
  NotFoundError,
  NotSupportedError,
  PostError,
  QpAttrMask,
  QpState,
  QpType,
  SendFlags,
  WrOpcode,
  qpStateName,
  validateModifyQp,
} from '@ibal/hca';
import type { HcaAh, HcaQp, QpAttr, QpCap, RecvWr, SendWr as HcaSendWr, Sge } from '@ibal/hca';
import { CQ } from './cq.js';
import { bindWrapper } from './events.js';
import { kHandle, kLimits, kOnDestroy, kSetRkey } from './internal.js';
import { checkBind, hcaBindInfo, incRkey, type MW, type MwBind } from './mw.js';
import { checkPd, type PD } from './pd.js';
import { Resource } from './resource.js';
import { SRQ } from './srq.js';
import { NO_RECV_WR, NO_SEND_WR, type SendLimits, type SendWr, checkRecvWr, checkSendWr, postChecked } from './wr.js';
import { PooledViews } from './views.js';

/** QP capacities to request; SGE counts default to 1 and inline data to 0. */
export interface QpCapInit {
  maxSendWr: number;
  /** Ignored (taken as 0) when the QP uses an SRQ. */
  maxRecvWr: number;
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
}

/** ibv_qp_init_attr. */
export interface QpInitAttr {
  /** QpType.RC, UC or UD. */
  qpType: number;
  sendCq: CQ;
  recvCq: CQ;
  srq?: SRQ;
  cap: QpCapInit;
  /** Every send completes on the CQ, whatever its SIGNALED flag. */
  sqSigAll?: boolean;
}

const EMPTY_SGL: readonly Sge[] = Object.freeze([]);

function newUdScratch(): HcaSendWr {
  return {
    wrId: 0,
    opcode: 0,
    sgList: EMPTY_SGL as Sge[],
    sendFlags: 0,
    immData: 0,
    ud: { ah: undefined as unknown as HcaAh, remoteQpn: 0, remoteQkey: 0 },
  };
}

export class QP extends Resource {
  readonly pd: PD;
  readonly qpType: number;
  readonly qpNum: number;
  readonly sendCq: CQ;
  readonly recvCq: CQ;
  readonly srq: SRQ | undefined;
  readonly sqSigAll: boolean;
  /** The capacities the provider granted (at least what was asked). */
  readonly cap: Readonly<QpCap>;
  readonly [kHandle]: HcaQp;
  readonly #limits: SendLimits;
  readonly #oneSend: SendWr[] = [NO_SEND_WR];
  readonly #oneRecv: RecvWr[] = [NO_RECV_WR];
  // UD WRs name verbs AH objects; the provider needs its own handles, so
  // they are copied into reused provider-shaped WRs.
  readonly #ud: PooledViews<HcaSendWr> | undefined;
  // A BIND_MW names verbs objects (MW, MR) the provider knows by their handles: such a post is translated.
  #binds = false;
  readonly #onDestroy: (() => void)[] = [];
  readonly #checkSend = (wr: SendWr): string | undefined => {
    const msg = checkSendWr(wr, this.#limits);
    if (msg === undefined && wr.opcode === WrOpcode.BIND_MW) this.#binds = true;
    return msg;
  };
  readonly #checkRecv = (wr: RecvWr): string | undefined => checkRecvWr(wr, this.cap.maxRecvSge, 'maxRecvSge');
  readonly #postSend: (wrs: readonly SendWr[]) => void;
  readonly #postRecv = (wrs: readonly RecvWr[]): void => this[kHandle].postRecv(wrs);

  /** @internal Use createQp(). */
  constructor(pd: PD, init: QpInitAttr, hca: HcaQp, cap: QpCap) {
    super(init.srq ? [pd, init.sendCq, init.recvCq, init.srq] : [pd, init.sendCq, init.recvCq]);
    this.pd = pd;
    this.qpType = init.qpType;
    this.qpNum = hca.qpNum;
    this.sendCq = init.sendCq;
    this.recvCq = init.recvCq;
    this.srq = init.srq;
    this.sqSigAll = init.sqSigAll ?? false;
    this.cap = Object.freeze({ ...cap });
    this[kHandle] = hca;
    this.#limits = { qpType: init.qpType, pd, maxSendSge: cap.maxSendSge, maxInlineData: cap.maxInlineData };
    if (init.qpType === QpType.UD) {
      this.#ud = new PooledViews(newUdScratch);
      this.#postSend = (wrs) => this.#postUd(wrs);
    } else {
      this.#ud = undefined;
      // Non-UD providers ignore `ud`, so the caller's WRs go through as they are (unless they bind windows).
      this.#postSend = (wrs) => {
        if (!this.#binds) return hca.postSend(wrs as readonly HcaSendWr[]);
        this.#binds = false;
        hca.postSend(wrs.map(toHcaWr));
      };
    }
    bindWrapper(hca, this);
  }

  describe(): string {
    return `QP 0x${this.qpNum.toString(16)}`;
  }

  /** The current state as the provider tracks it (errors move a QP to ERR or SQE on their own). */
  get state(): number {
    this.assertOpen();
    return this[kHandle].state;
  }

  /**
   * ibv_modify_qp. `mask` (QpAttrMask bits) says which fields of `attr`
   * apply; the transition and its attributes are checked against the IBTA
   * state machine first (QpStateError names what is missing or not allowed).
   */
  modifyQp(attr: QpAttr, mask: number): void {
    this.assertOpen();
    const hca = this[kHandle];
    validateModifyQp(this.qpType, hca.state, attr, mask);
    const lim = this.pd.context[kLimits];
    if (mask & QpAttrMask.PORT) this.#checkPort(attr.portNum!, 'attr.portNum');
    if (mask & QpAttrMask.AV && attr.ahAttr!.portNum !== undefined) this.#checkPort(attr.ahAttr!.portNum, 'attr.ahAttr.portNum');
    if (mask & QpAttrMask.MAX_QP_RD_ATOMIC && attr.maxRdAtomic! > lim.maxQpInitRdAtom) {
      throw new InvalidArgumentError(`modifyQp: maxRdAtomic ${attr.maxRdAtomic} exceeds the device's maxQpInitRdAtom ${lim.maxQpInitRdAtom}`);
    }
    if (mask & QpAttrMask.MAX_DEST_RD_ATOMIC && attr.maxDestRdAtomic! > lim.maxQpRdAtom) {
      throw new InvalidArgumentError(`modifyQp: maxDestRdAtomic ${attr.maxDestRdAtomic} exceeds the device's maxQpRdAtom ${lim.maxQpRdAtom}`);
    }
    hca.modify(attr, mask);
  }

  /** ibv_query_qp. */
  queryQp(): QpAttr {
    this.assertOpen();
    return this[kHandle].query();
  }

  /**
   * ibv_post_send. Each WR is checked (opcode for this transport, SGE count,
   * inline size, rdma/atomic/ud parts); WRs before the first bad one are
   * posted and PostError names its index. Sending needs RTS or later:
   * RESET, INIT and RTR refuse (EINVAL); in ERR the provider flushes.
   */
  postSend(wr: SendWr | readonly SendWr[]): void {
    if (this.closed) this.assertOpen();
    const isList = Array.isArray(wr);
    if (isList && (wr as readonly SendWr[]).length === 0) return;
    const state = this[kHandle].state;
    if (state < QpState.RTS) {
      throw new PostError(`cannot post sends to a QP in ${qpStateName(state)} (needs RTS, SQD, SQE or ERR)`, 0, 'ERR_IBAL_POST_QP_STATE');
    }
    if (isList) {
      postChecked(wr as readonly SendWr[], this.#checkSend, this.#postSend);
      return;
    }
    const one = this.#oneSend;
    one[0] = wr as SendWr;
    try {
      postChecked(one, this.#checkSend, this.#postSend);
    } finally {
      one[0] = NO_SEND_WR;
    }
  }

  /**
   * ibv_bind_mw: binds a type 1 window to `bind.bindInfo` (length 0 unbinds
   * it) through this QP's send queue, ordered after what was posted before.
   * The window's rkey moves to its new value at once (as mw->rkey does:
   * incRkey of the old one on the soft HCA, libibverbs' choice on
   * hardware); the bind completes with WcOpcode.BIND_MW when signaled, or
   * with MW_BIND_ERR when the HCA refuses it (MR without MW_BIND, range
   * outside the MR, another PD).
   */
  bindMw(mw: MW, bind: MwBind): void {
    this.assertOpen();
    if (this.qpType === QpType.UD) throw new InvalidArgumentError('bindMw: UD QPs cannot bind memory windows');
    const state = this[kHandle].state;
    if (state < QpState.RTS) {
      throw new PostError(`cannot bind a window through a QP in ${qpStateName(state)} (needs RTS, SQD, SQE or ERR)`, 0, 'ERR_IBAL_POST_QP_STATE');
    }
    if (typeof bind !== 'object' || bind === null) throw new InvalidArgumentError('bindMw: bind must be an object { wrId, sendFlags, bindInfo }');
    const msg = checkBind(mw, bind.bindInfo, this.pd, MwType.TYPE_1);
    if (msg !== undefined) throw new InvalidArgumentError(`bindMw: ${msg}`);
    const wrId = bind.wrId ?? 0;
    const flags = bind.sendFlags ?? 0;
    if (typeof wrId !== 'number') throw new InvalidArgumentError(`bindMw: wrId must be a number, got ${typeof wrId}`);
    if (typeof flags !== 'number' || flags & ~(SendFlags.SIGNALED | SendFlags.FENCE)) throw new InvalidArgumentError(`bindMw: sendFlags may hold SIGNALED and FENCE, got ${String(flags)}`);
    mw[kSetRkey](mw[kHandle].bind(this[kHandle], wrId, flags, incRkey(mw.rkey), hcaBindInfo(bind.bindInfo)));
  }

  /**
   * ibv_attach_mcast: this UD QP receives a copy of each packet sent to the
   * multicast group `gid` (destination QP 0xFFFFFF). On RoCE a group GID is
   * an IPv4-mapped 224.0.0.0/4 or an IPv6 ff00::/8 address and `lid` is 0;
   * the soft HCA joins the IP group on the device's address (packets on UDP
   * 4791, as RoCEv2's). Resolves once packets to the group reach the QP.
   */
  async attachMcast(gid: Uint8Array, lid = 0): Promise<void> {
    const hca = this.#mcastChecks('attachMcast', gid, lid);
    if (!hca.attachMcast) throw new NotSupportedError(`attachMcast: the ${this.pd.context.device.provider} provider has no multicast`);
    await hca.attachMcast(gid, lid);
  }

  /** ibv_detach_mcast; NotFoundError when the QP is not attached to the group. */
  detachMcast(gid: Uint8Array, lid = 0): void {
    const hca = this.#mcastChecks('detachMcast', gid, lid);
    if (!hca.detachMcast) throw new NotSupportedError(`detachMcast: the ${this.pd.context.device.provider} provider has no multicast`);
    hca.detachMcast(gid, lid);
  }

  #mcastChecks(verb: string, gid: unknown, lid: unknown): HcaQp {
    this.assertOpen();
    if (this.qpType !== QpType.UD) throw new InvalidArgumentError(`${verb}: only UD QPs join multicast groups (EINVAL)`);
    if (!(gid instanceof Uint8Array) || gid.length !== 16) throw new InvalidArgumentError(`${verb}: gid must be a 16-byte GID (gidFromString('::ffff:239.1.2.3'))`);
    if (!Number.isInteger(lid) || (lid as number) < 0 || (lid as number) > 0xffff) throw new InvalidArgumentError(`${verb}: lid must be a 16-bit integer (0 on RoCE), got ${String(lid)}`);
    return this[kHandle];
  }

  /**
   * ibv_post_recv: allowed from INIT on (receives posted before RTR are
   * waiting when the first message arrives); refused in RESET and on QPs
   * that use an SRQ.
   */
  postRecv(wr: RecvWr | readonly RecvWr[]): void {
    if (this.closed) this.assertOpen();
    const isList = Array.isArray(wr);
    if (isList && (wr as readonly RecvWr[]).length === 0) return;
    if (this.srq !== undefined) {
      throw new PostError('the QP takes receives from its SRQ; use srq.postSrqRecv', 0);
    }
    const state = this[kHandle].state;
    if (state === QpState.RESET) {
      throw new PostError('cannot post receives to a QP in RESET (move it to INIT first)', 0, 'ERR_IBAL_POST_QP_STATE');
    }
    if (isList) {
      postChecked(wr as readonly RecvWr[], this.#checkRecv, this.#postRecv);
      return;
    }
    const one = this.#oneRecv;
    one[0] = wr as RecvWr;
    try {
      postChecked(one, this.#checkRecv, this.#postRecv);
    } finally {
      one[0] = NO_RECV_WR;
    }
  }

  /** ibv_destroy_qp. */
  destroy(): void {
    if (this.closed) return;
    this.closeWith('destroy', () => this[kHandle].destroy());
    for (const f of this.#onDestroy.splice(0)) f();
  }

  [kOnDestroy](f: () => void): void {
    this.#onDestroy.push(f);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  #postUd(wrs: readonly SendWr[]): void {
    const scratch = this.#ud!;
    const n = wrs.length;
    scratch.ensure(n);
    const pool = scratch.pool;
    for (let i = 0; i < n; i++) {
      const src = wrs[i]!;
      const dst = pool[i]!;
      dst.wrId = src.wrId;
      dst.opcode = src.opcode;
      dst.sgList = src.sgList;
      dst.sendFlags = src.sendFlags ?? 0;
      dst.immData = src.immData ?? 0;
      const ud = dst.ud!;
      ud.ah = src.ud!.ah[kHandle];
      ud.remoteQpn = src.ud!.remoteQpn;
      ud.remoteQkey = src.ud!.remoteQkey;
    }
    try {
      this[kHandle].postSend(scratch.view(n));
    } finally {
      for (let i = 0; i < n; i++) pool[i]!.sgList = EMPTY_SGL as Sge[];
    }
  }

  #checkPort(port: number, what: string): void {
    const ports = this.pd.context[kLimits].physPortCnt;
    if (port > ports) throw new NotFoundError(`modifyQp: ${what} ${port} does not exist (the device has ports 1..${ports})`);
  }
}

/** A checked BIND_MW WR in the provider's terms; other WRs as they are. */
function toHcaWr(wr: SendWr): HcaSendWr {
  const b = wr.bindMw;
  if (wr.opcode !== WrOpcode.BIND_MW || !b) return wr as HcaSendWr;
  return { ...wr, bindMw: { mw: b.mw[kHandle], rkey: b.rkey, bindInfo: hcaBindInfo(b.bindInfo) } };
}

function capValue(v: number | undefined, dflt: number, name: string, max: number, maxName: string): number {
  const value = v ?? dflt;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`createQp: cap.${name} must be a non-negative integer, got ${String(v)}`);
  if (value > max) throw new CapacityError(`createQp: cap.${name} ${value} exceeds the device's ${maxName} ${max}`);
  return value;
}

/** ibv_create_qp. The QP starts in RESET. */
export function createQp(pd: PD, init: QpInitAttr): QP {
  checkPd(pd, 'createQp');
  if (typeof init !== 'object' || init === null) throw new InvalidArgumentError('createQp: init must be an object');
  const { qpType, sendCq, recvCq, srq } = init;
  if (qpType !== QpType.RC && qpType !== QpType.UC && qpType !== QpType.UD) {
    throw new InvalidArgumentError(`createQp: qpType must be QpType.RC, UC or UD, got ${String(qpType)}`);
  }
  const ctx = pd.context;
  for (const [cq, name] of [[sendCq, 'sendCq'], [recvCq, 'recvCq']] as const) {
    if (!(cq instanceof CQ)) throw new InvalidArgumentError(`createQp: ${name} must be a CQ`);
    cq.assertOpen();
    if (cq.context !== ctx) throw new InvalidArgumentError(`createQp: ${name} belongs to another context`);
  }
  if (srq !== undefined) {
    if (!(srq instanceof SRQ)) throw new InvalidArgumentError('createQp: srq must be an SRQ');
    srq.assertOpen();
    if (srq.pd.context !== ctx) throw new InvalidArgumentError('createQp: srq belongs to another context');
  }
  if (init.sqSigAll !== undefined && typeof init.sqSigAll !== 'boolean') {
    throw new InvalidArgumentError('createQp: sqSigAll must be a boolean');
  }
  const c = init.cap;
  if (typeof c !== 'object' || c === null) throw new InvalidArgumentError('createQp: cap must be an object');
  const lim = ctx[kLimits];
  const cap: QpCap = {
    maxSendWr: capValue(c.maxSendWr, Number.NaN, 'maxSendWr', lim.maxQpWr, 'maxQpWr'),
    maxRecvWr: srq ? 0 : capValue(c.maxRecvWr, Number.NaN, 'maxRecvWr', lim.maxQpWr, 'maxQpWr'),
    maxSendSge: capValue(c.maxSendSge, 1, 'maxSendSge', lim.maxSge, 'maxSge'),
    maxRecvSge: srq ? 0 : capValue(c.maxRecvSge, 1, 'maxRecvSge', lim.maxSge, 'maxSge'),
    maxInlineData: capValue(c.maxInlineData, 0, 'maxInlineData', lim.maxInlineData, 'maxInlineData'),
  };
  const hca = pd[kHandle].createQp({
    qpType,
    sendCq: sendCq[kHandle],
    recvCq: recvCq[kHandle],
    srq: srq?.[kHandle],
    cap,
    sqSigAll: init.sqSigAll ?? false,
  });
  // Providers may round capacities up; checks use what was granted.
  const granted = hca.query().cap;
  return new QP(pd, init, hca, granted ? { ...granted, ...(srq ? { maxRecvWr: 0, maxRecvSge: 0 } : {}) } : cap);
}
