// The connected ping-pongs: ibv_rc_pingpong and ibv_uc_pingpong differ only
// in the QP type and in what UC lacks (no ACKs, so no retry counts, RNR
// timers or RDMA READ/atomic depths to set on the way to RTS).
import { QpAttrMask as M, QpState, QpType, SendFlags, WrOpcode } from '@ibal/verbs';
import { SEND_WRID } from './loop.js';
import type { PingpongTransport } from './session.js';

export function connectedTransport(qpType: typeof QpType.RC | typeof QpType.UC): PingpongTransport {
  const rc = qpType === QpType.RC;
  return {
    qpType,
    bufferBytes: (size) => size,
    recvLength: (size) => size,
    check() {},
    init(qp, o) {
      qp.modifyQp(
        { qpState: QpState.INIT, pkeyIndex: 0, portNum: o.ibPort, qpAccessFlags: 0 },
        M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS,
      );
    },
    connect(r, remote, udpPort) {
      const { qp, mr, options: o } = r;
      const ahAttr = { dgid: remote.gid, sgidIndex: o.gidIdx, hopLimit: 1, sl: o.sl, portNum: o.ibPort, udpPort };
      const rtr = M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN;
      qp.modifyQp(
        { qpState: QpState.RTR, pathMtu: o.mtu, destQpNum: remote.qpn, rqPsn: remote.psn, maxDestRdAtomic: 1, minRnrTimer: 12, ahAttr },
        rc ? rtr | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER : rtr,
      );
      qp.modifyQp(
        { qpState: QpState.RTS, timeout: 14, retryCnt: 7, rnrRetry: 7, sqPsn: r.myPsn, maxRdAtomic: 1 },
        rc ? M.STATE | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.SQ_PSN | M.MAX_QP_RD_ATOMIC : M.STATE | M.SQ_PSN,
      );
      // As the examples: inline when the QP granted room for the whole message.
      const flags = SendFlags.SIGNALED | (qp.cap.maxInlineData >= o.size ? SendFlags.INLINE : 0);
      const wr = { wrId: SEND_WRID, opcode: WrOpcode.SEND, sendFlags: flags, sgList: [mr.sge(0, o.size)] };
      return () => qp.postSend(wr);
    },
  };
}
