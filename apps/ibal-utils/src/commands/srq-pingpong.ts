// ibal srq-pingpong: ibv_srq_pingpong over any ibal device. -q RC QPs share
// one shared receive queue and one CQ; each QP ping-pongs on its own (a QP
// sends again once its previous send completed and a message arrived on
// it), receives are refilled into the SRQ as it drains, and -n counts the
// exchanges of all QPs together, as the C example does.
import { randomInt } from 'node:crypto';
import { LinkLayer, QpType, createQp, createSrq, type QP, type WorkCompletion } from '@ibal/verbs';
import { withCleanup, type Cleanup } from '../lib/cleanup.js';
import { CliError, UsageError } from '../lib/cli-error.js';
import { announcedLid, ipOfGid, queryGidOrFail, udpPortFromLid } from '../lib/device.js';
import { openPingpongBase, postUpTo } from '../lib/pingpong/base.js';
import { connectedTransport } from '../lib/pingpong/connected.js';
import { destLine, type PingpongDest } from '../lib/pingpong/dest.js';
import { clientExchange, serverExchange } from '../lib/pingpong/exchange.js';
import { RECV_WRID, runTraffic } from '../lib/pingpong/loop.js';
import { SRQ_MAX_QP, pingpongCommand, type PingpongOptions } from '../lib/pingpong/options.js';
import { listenTcp } from '../lib/tcp.js';

const rc = connectedTransport(QpType.RC);

export const { help: srqPingpongHelp, run: srqPingpong } = pingpongCommand('srq', (o, print) => {
  if (o.numQp > o.rxDepth) throw new UsageError(`rx_depth ${o.rxDepth} is too small for ${o.numQp} QPs -- must have at least one receive per QP.`);
  return withCleanup((cleanup) => run(o, cleanup, print));
});

async function run(o: PingpongOptions, cleanup: Cleanup, print: (line: string) => void): Promise<void> {
  const { ctx, port, channel, pd, mr, cq } = await openPingpongBase(o, cleanup, { bufferBytes: o.size, cqDepth: o.rxDepth + o.numQp });
  const srq = createSrq(pd, { maxWr: o.rxDepth, maxSge: 1 });
  cleanup.add(() => srq.destroy());
  const qps: QP[] = [];
  for (let i = 0; i < o.numQp; i++) {
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap: { maxSendWr: 1, maxSendSge: 1, maxRecvWr: 0, maxRecvSge: 0 } });
    cleanup.add(() => qp.destroy());
    qps.push(qp);
  }
  for (const qp of qps) rc.init(qp, o);

  const recvWr = { wrId: RECV_WRID, sgList: [mr.sge(0, o.size)] };
  const postRecvs = (n: number): number => postUpTo(n, () => srq.postSrqRecv(recvWr));
  const routs = postRecvs(o.rxDepth);
  if (routs < o.rxDepth) throw new CliError(`Couldn't post receive (${routs})`);
  if (channel) cq.reqNotify();

  const gid = queryGidOrFail(ctx, o.ibPort, o.gidIdx);
  const mine: PingpongDest[] = qps.map((qp) => ({ lid: announcedLid(port), qpn: qp.qpNum, psn: randomInt(0x1000000), gid }));
  const none: PingpongDest = { lid: 0, qpn: 0, psn: 0, gid: new Uint8Array(16) };
  const records = [...mine, ...new Array<PingpongDest>(SRQ_MAX_QP - mine.length).fill(none)];
  const sends: (() => void)[] = [];
  const connectAll = (remote: PingpongDest[]): void => {
    qps.forEach((qp, i) => {
      const rem = remote[i]!;
      const udpPort = port.linkLayer === LinkLayer.ETHERNET ? udpPortFromLid(rem.lid) : undefined;
      sends[i] = rc.connect({ ctx, pd, mr, cq, qp, port, options: o, myPsn: mine[i]!.psn, cleanup }, rem, udpPort);
    });
  };
  let remote: PingpongDest[];
  if (o.host === undefined) {
    const listener = await listenTcp(o.port, o.bind ?? ipOfGid(gid));
    cleanup.add(() => listener.close());
    for (const d of mine) print(destLine('local', d));
    remote = await serverExchange(listener, records, connectAll, o.timeoutMs);
  } else {
    for (const d of mine) print(destLine('local', d));
    remote = await clientExchange(o.host, o.port, records, o.timeoutMs);
  }
  for (let i = 0; i < o.numQp; i++) print(destLine('remote', remote[i]!));
  if (o.host !== undefined) connectAll(remote);

  const indexOf = new Map(qps.map((qp, i) => [qp.qpNum, i]));
  const qpIndex = (wc: WorkCompletion): number => {
    const i = indexOf.get(wc.qpNum);
    if (i === undefined) throw new CliError(`Couldn't find QPN ${wc.qpNum.toString(16).padStart(6, '0')}`);
    return i;
  };
  await runTraffic(o, cleanup, cq, channel, { routs, numQp: o.numQp, batch: o.rxDepth + o.numQp, postSend: (i) => sends[i]!(), qpIndex, postRecvs }, print);
}
