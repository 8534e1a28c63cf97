// Two soft devices on loopback with an RC (or UC/UD) QP each, connected as a
// libibverbs program connects them: what the end-to-end verbs tests share.
import {
  Access,
  Mtu,
  QpAttrMask as M,
  QpState,
  QpType,
  addSoftDevice,
  createQp,
  openDevice,
  regMr,
  type AsyncEvent,
  type Context,
  type PD,
  type QP,
} from '../src/index.js';

export const ALL = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;

let n = 0;

/** A device with a PD, a CQ, a QP and a 1 MiB MR; `cleanup` gets what removes the device. */
export async function endpoint(cleanup: (() => void)[], qpType: number = QpType.RC, name = 'verbs_e2e') {
  const dev = addSoftDevice({ name: `${name}_${process.pid}_${n++}`, address: '127.0.0.1', port: 0 });
  cleanup.push(() => dev.remove());
  const ctx = await openDevice(dev.name);
  const events: AsyncEvent[] = [];
  ctx.on('event', (e) => events.push(e));
  const pd = ctx.allocPd();
  const cq = ctx.createCq(256);
  const qp = rcQp(pd, cq, qpType);
  const mr = regMr(pd, 1 << 20, ALL);
  return { ctx, pd, cq, qp, mr, events };
}

export function rcQp(pd: PD, cq: ReturnType<Context['createCq']>, qpType: number = QpType.RC): QP {
  return createQp(pd, { qpType, sendCq: cq, recvCq: cq, cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 64 } });
}

/** INIT, RTR, RTS towards `rqp` on `rctx`'s device. */
export function connectRc(qp: QP, rctx: Context, rqp: QP): void {
  qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: ALL & ~Access.LOCAL_WRITE }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
  qp.modifyQp(
    { qpState: QpState.RTR, pathMtu: Mtu.MTU_1024, destQpNum: rqp.qpNum, rqPsn: 0xfffff0, maxDestRdAtomic: 4, minRnrTimer: 1, ahAttr: { dgid: rctx.queryGid(1, 0), portNum: 1, udpPort: rctx.queryPort(1).udpPort } },
    M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
  );
  qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0xfffff0, timeout: 12, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
}

export async function rcPair(cleanup: (() => void)[], name?: string) {
  const a = await endpoint(cleanup, QpType.RC, name);
  const b = await endpoint(cleanup, QpType.RC, name);
  connectRc(a.qp, b.ctx, b.qp);
  connectRc(b.qp, a.ctx, a.qp);
  return [a, b] as const;
}
