// Two RC QPs on one soft device wired to each other by hand (the verbs
// README's recipe), to exercise the SDP data path without a CM. Sockets
// and servers are tested through the CM; this only isolates the engine.

import { Access, Mtu, QpAttrMask as M, QpState, QpType, createQp, openDevice, type Context, type QP } from '@ibal/verbs';
import type { ConnectionResources } from '../../src/connection.js';

export interface QpPair {
  ctx: Context;
  a: ConnectionResources;
  b: ConnectionResources;
  /** QPs, CQs and channels; then release the connections' MRs and call dealloc(). */
  destroy(): void;
  /** PDs and the context. */
  dealloc(): void;
}

export async function qpPair(depth = 64): Promise<QpPair> {
  const ctx = await openDevice();
  const port = ctx.queryPort(1);
  const gid = ctx.queryGid(1, 0);
  const side = (): ConnectionResources => {
    const pd = ctx.allocPd();
    const channel = ctx.createCompChannel();
    const cq = ctx.createCq(2 * depth + 8, { channel });
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: depth + 4, maxRecvWr: depth } });
    return { pd, qp, cq, channel };
  };
  const a = side();
  const b = side();
  const wire = (qp: QP, remote: QP) => {
    qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.LOCAL_WRITE | Access.REMOTE_READ }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
    qp.modifyQp(
      { qpState: QpState.RTR, pathMtu: Mtu.MTU_4096, destQpNum: remote.qpNum, rqPsn: 0, maxDestRdAtomic: 4, minRnrTimer: 1, ahAttr: { dgid: gid, portNum: 1, udpPort: port.udpPort } },
      M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
    );
    qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
  };
  wire(a.qp, b.qp);
  wire(b.qp, a.qp);
  return {
    ctx,
    a,
    b,
    destroy() {
      for (const s of [a, b]) {
        if (!s.qp.closed) s.qp.destroy();
        if (!s.cq.closed) s.cq.destroy();
        if (!s.channel.closed) s.channel.destroy();
      }
    },
    dealloc() {
      for (const s of [a, b]) if (!s.pd.closed) s.pd.dealloc();
      ctx.close();
    },
  };
}
