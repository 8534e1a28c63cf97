// The verbs objects of one side of a perf test: an RC QP with separate send
// and receive CQs (as perftest), and one MR the peer may write, read and
// operate on atomically. WRITE latency uses two halves: the first is the
// source of this side's writes, the second is where the peer's writes land.
import { randomInt } from 'node:crypto';
import {
  Access,
  LinkLayer,
  QpAttrMask as M,
  QpState,
  QpType,
  createQp,
  regMr,
  type CQ,
  type Context,
  type MR,
  type PD,
  type PortAttr,
  type QP,
} from '@ibal/verbs';
import { Cleanup } from '../cleanup.js';
import { CliError } from '../cli-error.js';
import { announcedLid, openContext, queryGidOrFail, queryPortOrFail, udpPortFromLid } from '../device.js';
import type { PerfMode, PerfOptions, PerfTest } from './options.js';
import type { PerfDest } from './protocol.js';

/** perftest's default inline limit for latency tests; bandwidth tests use none. */
const LAT_INLINE = 220;
/**
 * The most outstanding reads/atomics asked for. The soft device advertises
 * 128 (max_qp_rd_atom) but its modify-QP check accepts at most 16, as
 * max_rd_atomic is commonly capped on hardware; 16 is also what perftest
 * gets from most HCAs.
 */
const RD_ATOMIC_CAP = 16;

export interface PerfSide {
  ctx: Context;
  port: PortAttr;
  gid: Uint8Array;
  pd: PD;
  mr: MR;
  sendCq: CQ;
  recvCq: CQ;
  qp: QP;
  /** Where the peer's writes land in this side's MR (the poll region of WRITE latency). */
  regionOffset: number;
  inline: number;
  rdAtomic: number;
  /** The most reads/atomics this side can take at once as a responder. */
  rdAtomicAccept: number;
  psn: number;
  /** ibv_mtu of the path. */
  mtu: number;
}

export async function openSide(o: PerfOptions, cleanup: Cleanup): Promise<{ ctx: Context; port: PortAttr; gid: Uint8Array }> {
  const ctx = await openContext(o.ibDev);
  cleanup.add(() => ctx.close());
  const port = queryPortOrFail(ctx, o.ibPort);
  const gid = queryGidOrFail(ctx, o.ibPort, o.gidIdx);
  return { ctx, port, gid };
}

export function usesRecv(test: PerfTest): boolean {
  return test === 'send';
}

/** Creates the PD, MR, CQs and QP (in INIT) for sizes up to `maxSize`. */
export function createSide(
  base: { ctx: Context; port: PortAttr; gid: Uint8Array },
  o: PerfOptions,
  test: PerfTest,
  mode: PerfMode,
  maxSize: number,
  mtu: number,
  cleanup: Cleanup,
): PerfSide {
  const { ctx } = base;
  const attr = ctx.queryDevice();
  const regionOffset = test === 'write' && mode === 'lat' ? maxSize : 0;
  const pd = ctx.allocPd();
  cleanup.add(() => pd.dealloc());
  const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
  // At least 8 bytes so an atomic always has its target.
  const mr = regMr(pd, Math.max(8, regionOffset + maxSize), access);
  cleanup.add(() => mr.dereg());
  const sendCq = ctx.createCq(o.txDepth + 1);
  cleanup.add(() => sendCq.destroy());
  const recvDepth = usesRecv(test) ? o.rxDepth : 1;
  const recvCq = ctx.createCq(recvDepth + 1);
  cleanup.add(() => recvCq.destroy());
  const inline = mode === 'lat' && (test === 'write' || test === 'send') ? Math.min(LAT_INLINE, attr.maxInlineData) : 0;
  const qp = createQp(pd, {
    qpType: QpType.RC,
    sendCq,
    recvCq,
    cap: { maxSendWr: o.txDepth, maxRecvWr: recvDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: inline },
  });
  cleanup.add(() => qp.destroy());
  qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: o.ibPort, qpAccessFlags: access }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
  const rdAtomic = Math.max(1, Math.min(RD_ATOMIC_CAP, attr.maxQpInitRdAtom, attr.maxQpRdAtom, o.txDepth));
  return { ...base, pd, mr, sendCq, recvCq, qp, regionOffset, inline, rdAtomic, rdAtomicAccept: Math.min(RD_ATOMIC_CAP, attr.maxQpRdAtom), psn: randomInt(0x1000000), mtu };
}

export function destOf(s: PerfSide): PerfDest {
  return {
    lid: announcedLid(s.port),
    qpn: s.qp.qpNum,
    psn: s.psn,
    gid: Buffer.from(s.gid).toString('hex'),
    addr: s.mr.addr,
    rkey: s.mr.rkey,
    rdAtomic: s.rdAtomic,
  };
}

/** INIT → RTR → RTS toward the peer, with perftest's timers and retry counts. */
export function connectSide(s: PerfSide, remote: PerfDest, o: PerfOptions): void {
  if (!/^[0-9a-f]{32}$/i.test(remote.gid)) throw new CliError(`the peer sent a malformed GID "${remote.gid}"`);
  const udpPort = s.port.linkLayer === LinkLayer.ETHERNET ? udpPortFromLid(remote.lid) : undefined;
  try {
    s.qp.modifyQp(
      {
        qpState: QpState.RTR,
        pathMtu: s.mtu,
        destQpNum: remote.qpn,
        rqPsn: remote.psn,
        maxDestRdAtomic: Math.max(1, Math.min(remote.rdAtomic, s.rdAtomicAccept)),
        minRnrTimer: 12,
        ahAttr: { dgid: Uint8Array.from(Buffer.from(remote.gid, 'hex')), sgidIndex: o.gidIdx, hopLimit: 64, portNum: o.ibPort, udpPort },
      },
      M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
    );
    s.qp.modifyQp(
      { qpState: QpState.RTS, timeout: 14, retryCnt: 7, rnrRetry: 7, sqPsn: s.psn, maxRdAtomic: s.rdAtomic },
      M.STATE | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.SQ_PSN | M.MAX_QP_RD_ATOMIC,
    );
  } catch (err) {
    throw new CliError(`Couldn't connect to the remote QP: ${(err as Error).message}`);
  }
}
