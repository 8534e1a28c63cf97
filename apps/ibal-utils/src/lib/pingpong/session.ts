// Everything around the ping-pong loop that RC, UC and UD share: resources
// (created and closed in the order of the C examples), the address
// exchange, the printed lines, and cleanup on every path.
import { randomInt } from 'node:crypto';
import { LinkLayer, createQp, type CQ, type Context, type MR, type PD, type PortAttr, type QP } from '@ibal/verbs';
import { withCleanup, type Cleanup } from '../cleanup.js';
import { CliError } from '../cli-error.js';
import { announcedLid, ipOfGid, queryGidOrFail, udpPortFromLid } from '../device.js';
import { listenTcp } from '../tcp.js';
import { openPingpongBase, postUpTo } from './base.js';
import { destLine, type PingpongDest } from './dest.js';
import { clientExchange, serverExchange } from './exchange.js';
import { RECV_WRID, runTraffic } from './loop.js';
import type { PingpongOptions } from './options.js';

export interface PingpongResources {
  ctx: Context;
  pd: PD;
  mr: MR;
  cq: CQ;
  qp: QP;
  port: PortAttr;
  options: PingpongOptions;
  myPsn: number;
  cleanup: Cleanup;
}

/** What differs between the RC, UC and UD ping-pongs. */
export interface PingpongTransport {
  qpType: number;
  /** Bytes to register (UD adds 40 for the GRH that lands before each received payload). */
  bufferBytes(size: number): number;
  /** Refuses option combinations the transport cannot do, before anything is created. */
  check(port: PortAttr, options: PingpongOptions): void;
  /** RESET → INIT. */
  init(qp: QP, options: PingpongOptions): void;
  /** INIT → RTR → RTS toward `remote`; returns the function that posts one send to it. */
  connect(r: PingpongResources, remote: PingpongDest, remoteUdpPort: number | undefined): () => void;
  /** The scatter entry of every receive. */
  recvLength(size: number): number;
}

export async function runPingpongSession(o: PingpongOptions, t: PingpongTransport, print: (line: string) => void): Promise<void> {
  await withCleanup(async (cleanup) => {
    const sizes = { bufferBytes: t.bufferBytes(o.size), cqDepth: o.rxDepth + 1 };
    const { ctx, port, channel, pd, mr, cq } = await openPingpongBase(o, cleanup, sizes, (p) => t.check(p, o));
    const qp = createQp(pd, {
      qpType: t.qpType,
      sendCq: cq,
      recvCq: cq,
      cap: { maxSendWr: 1, maxRecvWr: o.rxDepth, maxSendSge: 1, maxRecvSge: 1 },
    });
    cleanup.add(() => qp.destroy());
    t.init(qp, o);

    const recvWr = { wrId: RECV_WRID, sgList: [mr.sge(0, t.recvLength(o.size))] };
    const postRecvs = (n: number): number => postUpTo(n, () => qp.postRecv(recvWr));
    const routs = postRecvs(o.rxDepth);
    if (routs < o.rxDepth) throw new CliError(`Couldn't post receive (${routs})`);
    if (channel) cq.reqNotify();

    const my: PingpongDest = {
      lid: announcedLid(port),
      qpn: qp.qpNum,
      psn: randomInt(0x1000000),
      gid: queryGidOrFail(ctx, o.ibPort, o.gidIdx),
    };
    const r: PingpongResources = { ctx, pd, mr, cq, qp, port, options: o, myPsn: my.psn, cleanup };
    const udpPortOf = (remote: PingpongDest): number | undefined =>
      port.linkLayer === LinkLayer.ETHERNET ? udpPortFromLid(remote.lid) : undefined;

    let postSend: (() => void) | undefined;
    let remote: PingpongDest;
    if (o.host === undefined) {
      // Listening before the local address is printed lets whoever reads
      // that line start the client at once.
      const listener = await listenTcp(o.port, o.bind ?? ipOfGid(my.gid));
      cleanup.add(() => listener.close());
      print(destLine('local', my));
      [remote] = await serverExchange(listener, [my], ([rem]) => (postSend = t.connect(r, rem!, udpPortOf(rem!))), o.timeoutMs);
    } else {
      print(destLine('local', my));
      [remote] = await clientExchange(o.host, o.port, [my], o.timeoutMs);
    }
    print(destLine('remote', remote));
    if (o.host !== undefined) postSend = t.connect(r, remote, udpPortOf(remote));

    await runTraffic(o, cleanup, cq, channel, { routs, numQp: 1, batch: 2, postSend: postSend!, qpIndex: () => 0, postRecvs }, print);
  });
}
