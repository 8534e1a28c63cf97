// ibal rc-pingpong: ibv_rc_pingpong over any ibal device.
import { QpAttrMask as M, QpState, QpType, SendFlags, WrOpcode } from '@ibal/verbs';
import { parsePingpongArgs, pingpongUsage } from '../lib/pingpong/options.js';
import { runPingpongSession, type PingpongTransport } from '../lib/pingpong/session.js';
import { SEND_WRID } from '../lib/pingpong/loop.js';

const rc: PingpongTransport = {
  qpType: QpType.RC,
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
    qp.modifyQp(
      {
        qpState: QpState.RTR,
        pathMtu: o.mtu,
        destQpNum: remote.qpn,
        rqPsn: remote.psn,
        maxDestRdAtomic: 1,
        minRnrTimer: 12,
        ahAttr: { dgid: remote.gid, sgidIndex: o.gidIdx, hopLimit: 1, sl: o.sl, portNum: o.ibPort, udpPort },
      },
      M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
    );
    qp.modifyQp(
      { qpState: QpState.RTS, timeout: 14, retryCnt: 7, rnrRetry: 7, sqPsn: r.myPsn, maxRdAtomic: 1 },
      M.STATE | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.SQ_PSN | M.MAX_QP_RD_ATOMIC,
    );
    // As the example: inline when the QP granted room for the whole message.
    const flags = SendFlags.SIGNALED | (qp.cap.maxInlineData >= o.size ? SendFlags.INLINE : 0);
    const wr = { wrId: SEND_WRID, opcode: WrOpcode.SEND, sendFlags: flags, sgList: [mr.sge(0, o.size)] };
    return () => qp.postSend(wr);
  },
};

export const rcPingpongHelp = pingpongUsage('rc');

export async function rcPingpong(args: string[], print: (line: string) => void): Promise<void> {
  const o = parsePingpongArgs(args, 'rc');
  if (o.help) {
    print(rcPingpongHelp);
    return;
  }
  await runPingpongSession(o, rc, print);
}

