// Work request shapes as users write them, and the checks libibverbs
// providers make before ringing the doorbell. The checks return a message
// (or undefined) instead of throwing so the caller can name the WR index,
// and build no objects unless something is wrong: they run on every post.

import { MwType, PostError, QpType, SendFlags, WrOpcode } from '@ibal/hca';
import type { RecvWr, SendWr as HcaSendWr, Sge } from '@ibal/hca';
import { AH } from './ah.js';
import { checkBind, type BindMwWr } from './mw.js';
import type { PD } from './pd.js';

/** The destination of a UD send. */
export interface UdDest {
  ah: AH;
  remoteQpn: number;
  remoteQkey: number;
}

/** ibv_send_wr; for UD the destination names an AH created with createAh, for BIND_MW the window an MW from allocMw. */
export interface SendWr extends Omit<HcaSendWr, 'ud' | 'bindMw'> {
  ud?: UdDest;
  bindMw?: BindMwWr;
}

export type { RecvWr, Sge };

// Placeholders for the one-element arrays single-WR posts reuse. Resetting
// the slot (rather than truncating the array, which makes V8 drop and later
// reallocate its storage) avoids pinning the caller's WR and buffers.
export const NO_RECV_WR: RecvWr = Object.freeze({ wrId: 0, sgList: [] });
export const NO_SEND_WR: SendWr = Object.freeze({ wrId: 0, opcode: WrOpcode.SEND, sgList: [] });

const opcodeNames = ['RDMA_WRITE', 'RDMA_WRITE_WITH_IMM', 'SEND', 'SEND_WITH_IMM', 'RDMA_READ', 'ATOMIC_CMP_AND_SWP', 'ATOMIC_FETCH_AND_ADD', 'LOCAL_INV', 'BIND_MW', 'SEND_WITH_INV'];
const MAX_OPCODE = WrOpcode.SEND_WITH_INV;

/**
 * Opcodes each transport supports, as bit sets over WrOpcode values (windows:
 * RC and UC; Send with Invalidate: RC). ibv_qp_ex's send_ops_flags use the
 * same bits, so createQpEx checks against it too.
 */
export const opcodesFor: Record<number, number> = {
  [QpType.RC]: (1 << (MAX_OPCODE + 1)) - 1,
  [QpType.UC]:
    (1 << WrOpcode.RDMA_WRITE) | (1 << WrOpcode.RDMA_WRITE_WITH_IMM) | (1 << WrOpcode.SEND) | (1 << WrOpcode.SEND_WITH_IMM) | (1 << WrOpcode.LOCAL_INV) | (1 << WrOpcode.BIND_MW),
  [QpType.UD]: (1 << WrOpcode.SEND) | (1 << WrOpcode.SEND_WITH_IMM),
};
const qpTypeNames: Record<number, string> = { [QpType.RC]: 'RC', [QpType.UC]: 'UC', [QpType.UD]: 'UD' };

const KNOWN_SEND_FLAGS = SendFlags.FENCE | SendFlags.SIGNALED | SendFlags.SOLICITED | SendFlags.INLINE;

export interface SendLimits {
  qpType: number;
  pd: PD;
  maxSendSge: number;
  maxInlineData: number;
}

function isU32(v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && v <= 0xffffffff && Math.floor(v) === v;
}

function isAddr(v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && Number.isSafeInteger(v);
}

/** Checks an SGE list; returns a message or undefined. */
export function checkSgList(sgl: unknown, maxSge: number, what: string): string | undefined {
  if (!Array.isArray(sgl)) return 'sgList must be an array of SGEs';
  if (sgl.length > maxSge) return `${sgl.length} SGEs exceed ${what} ${maxSge}`;
  for (let i = 0; i < sgl.length; i++) {
    const sge = sgl[i] as Sge | null | undefined;
    if (typeof sge !== 'object' || sge === null) return `sgList[${i}] is not an SGE`;
    if (!isAddr(sge.addr)) return `sgList[${i}].addr must be a non-negative integer, got ${String(sge.addr)}`;
    if (!isU32(sge.length)) return `sgList[${i}].length must be an unsigned 32-bit integer, got ${String(sge.length)}`;
    if (!isU32(sge.lkey)) return `sgList[${i}].lkey must be an unsigned 32-bit integer, got ${String(sge.lkey)}`;
  }
  return undefined;
}

function sgTotal(sgl: readonly Sge[]): number {
  let total = 0;
  for (let i = 0; i < sgl.length; i++) total += sgl[i]!.length;
  return total;
}

export function checkSendWr(wr: SendWr, lim: SendLimits): string | undefined {
  if (typeof wr !== 'object' || wr === null) return 'not a work request object';
  if (typeof wr.wrId !== 'number') return `wrId must be a number, got ${typeof wr.wrId}`;
  const op = wr.opcode;
  if (typeof op !== 'number' || op < 0 || op > MAX_OPCODE || Math.floor(op) !== op) return `unknown opcode ${String(op)}`;
  if (!(opcodesFor[lim.qpType]! & (1 << op))) return `${opcodeNames[op]} is not supported on ${qpTypeNames[lim.qpType]} QPs`;
  const flags = wr.sendFlags ?? 0;
  if (!isU32(flags) || flags & ~KNOWN_SEND_FLAGS) return `unknown sendFlags ${String(flags)}`;
  const sgErr = checkSgList(wr.sgList, lim.maxSendSge, 'maxSendSge');
  if (sgErr !== undefined) return sgErr;

  if (flags & SendFlags.INLINE) {
    if (op === WrOpcode.RDMA_READ || op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD || op === WrOpcode.LOCAL_INV || op === WrOpcode.BIND_MW) {
      return `INLINE is not valid for ${opcodeNames[op]}`;
    }
    const total = sgTotal(wr.sgList);
    if (total > lim.maxInlineData) return `inline data of ${total} bytes exceeds maxInlineData ${lim.maxInlineData}`;
  }
  if (op === WrOpcode.SEND_WITH_IMM || op === WrOpcode.RDMA_WRITE_WITH_IMM) {
    if (!isU32(wr.immData)) return `${opcodeNames[op]} needs immData as an unsigned 32-bit integer, got ${String(wr.immData)}`;
  }
  if (op === WrOpcode.RDMA_WRITE || op === WrOpcode.RDMA_WRITE_WITH_IMM || op === WrOpcode.RDMA_READ) {
    const r = wr.rdma;
    if (typeof r !== 'object' || r === null) return `${opcodeNames[op]} needs rdma { remoteAddr, rkey }`;
    if (!isAddr(r.remoteAddr)) return `rdma.remoteAddr must be a non-negative integer, got ${String(r.remoteAddr)}`;
    if (!isU32(r.rkey)) return `rdma.rkey must be an unsigned 32-bit integer, got ${String(r.rkey)}`;
  } else if (op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD) {
    const a = wr.atomic;
    if (typeof a !== 'object' || a === null) return `${opcodeNames[op]} needs atomic { remoteAddr, rkey, compareAdd${op === WrOpcode.ATOMIC_CMP_AND_SWP ? ', swap' : ''} }`;
    if (!isAddr(a.remoteAddr)) return `atomic.remoteAddr must be a non-negative integer, got ${String(a.remoteAddr)}`;
    if (!isU32(a.rkey)) return `atomic.rkey must be an unsigned 32-bit integer, got ${String(a.rkey)}`;
    if (typeof a.compareAdd !== 'bigint') return 'atomic.compareAdd must be a bigint';
    if (op === WrOpcode.ATOMIC_CMP_AND_SWP && typeof a.swap !== 'bigint') return 'ATOMIC_CMP_AND_SWP needs atomic.swap as a bigint';
    // The 8 bytes fetched from the remote side land in this one SGE.
    if (wr.sgList.length !== 1 || wr.sgList[0]!.length !== 8) return `${opcodeNames[op]} needs exactly one SGE of 8 bytes`;
  }
  if (op === WrOpcode.LOCAL_INV || op === WrOpcode.SEND_WITH_INV) {
    if (!isU32(wr.invalidateRkey)) return `${opcodeNames[op]} needs invalidateRkey as an unsigned 32-bit integer, got ${String(wr.invalidateRkey)}`;
  } else if (op === WrOpcode.BIND_MW) {
    const b = wr.bindMw;
    if (typeof b !== 'object' || b === null) return 'BIND_MW needs bindMw { mw, rkey, bindInfo }';
    if (!isU32(b.rkey)) return `bindMw.rkey must be an unsigned 32-bit integer, got ${String(b.rkey)}`;
    const msg = checkBind(b.mw, b.bindInfo, lim.pd, MwType.TYPE_2);
    if (msg !== undefined) return `bindMw: ${msg}`;
  }
  if (lim.qpType === QpType.UD) {
    const ud = wr.ud;
    if (typeof ud !== 'object' || ud === null) return 'a UD send needs ud { ah, remoteQpn, remoteQkey }';
    if (!(ud.ah instanceof AH)) return 'ud.ah must be an AH from createAh';
    if (ud.ah.closed) return 'ud.ah has been destroyed';
    if (ud.ah.pd !== lim.pd) return "ud.ah belongs to a different PD than the QP's";
    if (typeof ud.remoteQpn !== 'number' || !(ud.remoteQpn >= 0 && ud.remoteQpn <= 0xffffff) || Math.floor(ud.remoteQpn) !== ud.remoteQpn) {
      return `ud.remoteQpn must be a 24-bit QP number, got ${String(ud.remoteQpn)}`;
    }
    if (!isU32(ud.remoteQkey)) return `ud.remoteQkey must be an unsigned 32-bit integer, got ${String(ud.remoteQkey)}`;
  }
  return undefined;
}

export function checkRecvWr(wr: RecvWr, maxSge: number, what: string): string | undefined {
  if (typeof wr !== 'object' || wr === null) return 'not a work request object';
  if (typeof wr.wrId !== 'number') return `wrId must be a number, got ${typeof wr.wrId}`;
  return checkSgList(wr.sgList, maxSge, what);
}

/**
 * ibv_post_* semantics for a checked list: WRs before the first bad one are
 * posted, that one and the rest are not, and PostError names its index.
 * `check` and `post` should be created once per object, not per call.
 */
export function postChecked<W>(
  wrs: readonly W[],
  check: (wr: W) => string | undefined,
  post: (wrs: readonly W[]) => void,
): void {
  for (let i = 0; i < wrs.length; i++) {
    const msg = check(wrs[i]!);
    if (msg !== undefined) {
      if (i > 0) post(wrs.slice(0, i));
      throw new PostError(msg, i);
    }
  }
  if (wrs.length > 0) post(wrs);
}
