// ibal ud-pingpong: ibv_ud_pingpong over any ibal device.
import { QpAttrMask as M, QpState, QpType, SendFlags, WrOpcode, createAh, mtuBytes } from '@ibal/verbs';
import { CliError } from '../lib/cli-error.js';
import { pingpongCommand } from '../lib/pingpong/options.js';
import { runPingpongSession, type PingpongTransport } from '../lib/pingpong/session.js';
import { SEND_WRID } from '../lib/pingpong/loop.js';

/** UD receives start with the 40-byte GRH (or room for it). */
const GRH_BYTES = 40;
/** The Q_Key both examples use. */
const QKEY = 0x11111111;

const ud: PingpongTransport = {
  qpType: QpType.UD,
  bufferBytes: (size) => size + GRH_BYTES,
  recvLength: (size) => size + GRH_BYTES,
  check(port, o) {
    const mtu = mtuBytes(port.activeMtu);
    if (o.size > mtu) throw new CliError(`Requested size larger than port MTU (${mtu})`);
  },
  init(qp, o) {
    qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: o.ibPort, qkey: QKEY }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
  },
  connect(r, remote, udpPort) {
    const { qp, pd, mr, options: o, cleanup } = r;
    qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
    qp.modifyQp({ qpState: QpState.RTS, sqPsn: r.myPsn }, M.STATE | M.SQ_PSN);
    const ah = createAh(pd, { dgid: remote.gid, sgidIndex: o.gidIdx, hopLimit: 64, sl: o.sl, portNum: o.ibPort, udpPort });
    cleanup.add(() => ah.destroy());
    const flags = SendFlags.SIGNALED | (qp.cap.maxInlineData >= o.size ? SendFlags.INLINE : 0);
    const wr = {
      wrId: SEND_WRID,
      opcode: WrOpcode.SEND,
      sendFlags: flags,
      sgList: [mr.sge(GRH_BYTES, o.size)],
      ud: { ah, remoteQpn: remote.qpn, remoteQkey: QKEY },
    };
    return () => qp.postSend(wr);
  },
};

export const { help: udPingpongHelp, run: udPingpong } = pingpongCommand('ud', (o, print) => runPingpongSession(o, ud, print));
