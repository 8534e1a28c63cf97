// ibv_create_qp_ex and the ibv_wr_* interface (man ibv_wr_post): work
// requests built call by call between wrStart and wrComplete, then posted
// together, as rdma-core recommends over ibv_post_send for new code. The
// builder sits on the QP's own postSend, so every provider has it and every
// check postSend makes applies.

import { Access, InvalidArgumentError, QpType, SendFlags, WrOpcode } from '@ibal/hca';
import type { Sge } from '@ibal/hca';
import type { AH } from './ah.js';
import { kOnDestroy } from './internal.js';
import { regMr, type MR } from './mr.js';
import type { MW, MwBindInfo } from './mw.js';
import type { PD } from './pd.js';
import { createQp, type QP, type QpInitAttr } from './qp.js';
import { opcodesFor, type SendWr } from './wr.js';

/** ibv_qp_create_send_ops_flags: the wr_* operations a QP ex may build (bit = 1 << the WR opcode). */
export const SendOpsFlags = {
  WITH_RDMA_WRITE: 1 << WrOpcode.RDMA_WRITE,
  WITH_RDMA_WRITE_WITH_IMM: 1 << WrOpcode.RDMA_WRITE_WITH_IMM,
  WITH_SEND: 1 << WrOpcode.SEND,
  WITH_SEND_WITH_IMM: 1 << WrOpcode.SEND_WITH_IMM,
  WITH_RDMA_READ: 1 << WrOpcode.RDMA_READ,
  WITH_ATOMIC_CMP_AND_SWP: 1 << WrOpcode.ATOMIC_CMP_AND_SWP,
  WITH_ATOMIC_FETCH_AND_ADD: 1 << WrOpcode.ATOMIC_FETCH_AND_ADD,
  WITH_LOCAL_INV: 1 << WrOpcode.LOCAL_INV,
  WITH_BIND_MW: 1 << WrOpcode.BIND_MW,
  WITH_SEND_WITH_INV: 1 << WrOpcode.SEND_WITH_INV,
} as const;

const ALL_OPS = opcodesFor[QpType.RC]!;

/** ibv_qp_init_attr_ex: a QP's init attributes and the operations its QpEx may build. */
export interface QpInitAttrEx extends QpInitAttr {
  sendOpsFlags: number;
}

const exOf = new WeakMap<QP, QpEx>();

/**
 * ibv_create_qp_ex: a QP whose send queue is also driven through the wr_*
 * calls of qpToQpEx(qp). postSend keeps working on it.
 */
export function createQpEx(pd: PD, attr: QpInitAttrEx): QP {
  if (typeof attr !== 'object' || attr === null) throw new InvalidArgumentError('createQpEx: attr must be an object');
  const ops = attr.sendOpsFlags;
  if (!Number.isInteger(ops) || ops <= 0 || ops & ~ALL_OPS) throw new InvalidArgumentError(`createQpEx: sendOpsFlags must be SendOpsFlags bits, got ${String(ops)}`);
  const allowed = opcodesFor[attr.qpType];
  if (allowed !== undefined && ops & ~allowed) throw new InvalidArgumentError(`createQpEx: sendOpsFlags 0x${(ops & ~allowed).toString(16)} are not operations of this QP type (EOPNOTSUPP)`);
  const qp = createQp(pd, attr);
  exOf.set(qp, new QpEx(qp, ops));
  return qp;
}

/** ibv_qp_to_qp_ex: the builder of a QP made by createQpEx. */
export function qpToQpEx(qp: QP): QpEx {
  const ex = exOf.get(qp);
  if (!ex) throw new InvalidArgumentError('qpToQpEx: the QP was not created with createQpEx');
  qp.assertOpen();
  return ex;
}

interface PooledWr extends SendWr {
  sgList: Sge[];
  rdma: { remoteAddr: number; rkey: number };
}

function newWr(): PooledWr {
  return { wrId: 0, opcode: 0, sendFlags: 0, sgList: [], rdma: { remoteAddr: 0, rkey: 0 } };
}

/**
 * ibv_qp_ex. Set `wrId` and `wrFlags` (SendFlags) before each wr* operation,
 * as C code sets qpx->wr_id and qpx->wr_flags; the setters that follow an
 * operation (wrSetSge, wrSetInlineData, wrSetUdAddr) apply to the WR it made.
 */
export class QpEx {
  wrId = 0;
  wrFlags = 0;
  readonly #qp: QP;
  readonly #ops: number;
  readonly #pool: PooledWr[] = [];
  readonly #view: SendWr[] = [];
  #n = 0;
  #started = false;
  // Inline data is copied here for the provider to copy at post time (ibv_wr_set_inline_data takes any memory).
  #staging: MR | undefined;
  #stagingUsed = 0;

  /** @internal Use createQpEx() and qpToQpEx(). */
  constructor(qp: QP, ops: number) {
    this.#qp = qp;
    this.#ops = ops;
    qp[kOnDestroy](() => {
      this.#staging?.dereg();
      this.#staging = undefined;
    });
  }

  get qp(): QP {
    return this.#qp;
  }

  /** ibv_wr_start: begins a batch. */
  wrStart(): void {
    this.#qp.assertOpen();
    if (this.#started) throw new InvalidArgumentError('wrStart: a batch is open (wrComplete or wrAbort it first)');
    this.#started = true;
    this.#n = 0;
    this.#stagingUsed = 0;
  }

  /**
   * ibv_wr_complete: posts the batch. Each WR gets postSend's checks; as
   * with ibv_post_send, those before a refused one are posted and PostError
   * names its index. The batch is closed either way.
   */
  wrComplete(): void {
    this.#open('wrComplete');
    this.#started = false;
    const n = this.#n;
    this.#n = 0;
    if (n === 0) return;
    const view = this.#view;
    view.length = n;
    for (let i = 0; i < n; i++) view[i] = this.#pool[i]!;
    try {
      this.#qp.postSend(view);
    } finally {
      // Let go of what the WRs named (MWs, AHs, user SGE lists).
      for (let i = 0; i < n; i++) {
        const w = this.#pool[i]!;
        w.bindMw = undefined;
        w.ud = undefined;
        w.atomic = undefined;
      }
      view.length = 0;
    }
  }

  /** ibv_wr_abort: drops the batch unposted. */
  wrAbort(): void {
    this.#open('wrAbort');
    this.#started = false;
    this.#n = 0;
  }

  wrSend(): void {
    this.#make(WrOpcode.SEND, 'wrSend');
  }

  wrSendImm(immData: number): void {
    this.#make(WrOpcode.SEND_WITH_IMM, 'wrSendImm').immData = immData;
  }

  wrSendInv(invalidateRkey: number): void {
    this.#make(WrOpcode.SEND_WITH_INV, 'wrSendInv').invalidateRkey = invalidateRkey;
  }

  wrRdmaWrite(rkey: number, remoteAddr: number): void {
    this.#remote(this.#make(WrOpcode.RDMA_WRITE, 'wrRdmaWrite'), rkey, remoteAddr);
  }

  wrRdmaWriteImm(rkey: number, remoteAddr: number, immData: number): void {
    this.#remote(this.#make(WrOpcode.RDMA_WRITE_WITH_IMM, 'wrRdmaWriteImm'), rkey, remoteAddr).immData = immData;
  }

  wrRdmaRead(rkey: number, remoteAddr: number): void {
    this.#remote(this.#make(WrOpcode.RDMA_READ, 'wrRdmaRead'), rkey, remoteAddr);
  }

  wrAtomicCmpSwp(rkey: number, remoteAddr: number, compare: bigint, swap: bigint): void {
    this.#make(WrOpcode.ATOMIC_CMP_AND_SWP, 'wrAtomicCmpSwp').atomic = { remoteAddr, rkey, compareAdd: compare, swap };
  }

  wrAtomicFetchAdd(rkey: number, remoteAddr: number, add: bigint): void {
    this.#make(WrOpcode.ATOMIC_FETCH_AND_ADD, 'wrAtomicFetchAdd').atomic = { remoteAddr, rkey, compareAdd: add };
  }

  /** ibv_wr_bind_mw: binds a type 2 window (`rkey`: incRkey of its previous key). */
  wrBindMw(mw: MW, rkey: number, bindInfo: MwBindInfo): void {
    this.#make(WrOpcode.BIND_MW, 'wrBindMw').bindMw = { mw, rkey, bindInfo };
  }

  wrLocalInv(invalidateRkey: number): void {
    this.#make(WrOpcode.LOCAL_INV, 'wrLocalInv').invalidateRkey = invalidateRkey;
  }

  /** ibv_wr_set_sge: the last WR gathers (or, for READ and atomics, scatters) one SGE. */
  wrSetSge(lkey: number, addr: number, length: number): void {
    const sg = this.#last('wrSetSge').sgList;
    sg.length = 1;
    const e = (sg[0] ??= { addr: 0, length: 0, lkey: 0 });
    e.addr = addr;
    e.length = length;
    e.lkey = lkey;
  }

  /** ibv_wr_set_sge_list. */
  wrSetSgeList(sges: readonly Sge[]): void {
    const w = this.#last('wrSetSgeList');
    if (!Array.isArray(sges)) throw new InvalidArgumentError('wrSetSgeList: sges must be an array of SGEs');
    const sg = w.sgList;
    sg.length = sges.length;
    for (let i = 0; i < sges.length; i++) {
      const s = sges[i]!;
      const e = (sg[i] ??= { addr: 0, length: 0, lkey: 0 });
      e.addr = s?.addr;
      e.length = s?.length;
      e.lkey = s?.lkey;
    }
  }

  /** ibv_wr_set_inline_data: the last WR carries these bytes inline (copied now; any memory). */
  wrSetInlineData(data: Uint8Array): void {
    this.wrSetInlineDataList([data]);
  }

  /** ibv_wr_set_inline_data_list. */
  wrSetInlineDataList(list: readonly Uint8Array[]): void {
    const w = this.#last('wrSetInlineDataList');
    if (!Array.isArray(list) || !list.every((b) => b instanceof Uint8Array)) throw new InvalidArgumentError('wrSetInlineDataList: expected an array of Uint8Arrays');
    let total = 0;
    for (const b of list) total += b.length;
    const max = this.#qp.cap.maxInlineData;
    if (total > max) throw new InvalidArgumentError(`wrSetInlineData: ${total} bytes exceed the QP's maxInlineData ${max}`);
    const staging = (this.#staging ??= regMr(this.#qp.pd, Math.max(max, 1) * this.#qp.cap.maxSendWr, Access.LOCAL_WRITE));
    const at = this.#stagingUsed;
    if (at + total > staging.length) throw new InvalidArgumentError('wrSetInlineData: the batch holds more inline data than the send queue can');
    let off = at;
    for (const b of list) {
      staging.buf.set(b, off);
      off += b.length;
    }
    this.#stagingUsed = off;
    w.sgList.length = 0;
    w.sgList.push(staging.sge(at, total));
    w.sendFlags = (w.sendFlags ?? 0) | SendFlags.INLINE;
  }

  /** ibv_wr_set_ud_addr: the last WR's destination on a UD QP. */
  wrSetUdAddr(ah: AH, remoteQpn: number, remoteQkey: number): void {
    this.#last('wrSetUdAddr').ud = { ah, remoteQpn, remoteQkey };
  }

  #open(verb: string): void {
    this.#qp.assertOpen();
    if (!this.#started) throw new InvalidArgumentError(`${verb}: no batch is open (call wrStart first)`);
  }

  #make(opcode: number, verb: string): PooledWr {
    this.#open(verb);
    if (!(this.#ops & (1 << opcode))) throw new InvalidArgumentError(`${verb}: the QP was created without its SendOpsFlags bit`);
    const w = (this.#pool[this.#n] ??= newWr());
    this.#n++;
    w.wrId = this.wrId;
    w.opcode = opcode;
    w.sendFlags = this.wrFlags;
    w.sgList.length = 0;
    w.immData = undefined;
    w.invalidateRkey = undefined;
    w.atomic = undefined;
    w.bindMw = undefined;
    w.ud = undefined;
    return w;
  }

  #remote(w: PooledWr, rkey: number, remoteAddr: number): PooledWr {
    w.rdma.rkey = rkey;
    w.rdma.remoteAddr = remoteAddr;
    return w;
  }

  #last(verb: string): PooledWr {
    this.#open(verb);
    if (this.#n === 0) throw new InvalidArgumentError(`${verb}: no work request yet (call a wr* operation first)`);
    return this.#pool[this.#n - 1]!;
  }
}
