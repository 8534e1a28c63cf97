// Connection setup through @ibal/cm in SDP's port space (service ID
// 0x0000000000010000 | port): the Hello rides in the REQ's private data, the
// HelloAck in the REP's. Each link owns its QP, CQ, completion channel and
// PD, and tears them down in the order verbs requires.

import { CmEventType, PortSpace, ROCE_UDP_PORT, createEventChannel, createId, type CmEvent, type CmId, type EventChannel } from '@ibal/cm';
import type { CompChannel, CQ, PD } from '@ibal/verbs';
import { MAX_READS, SdpConnection, sendQueueDepth, type ConnectionOptions, type ConnectionSink } from './connection.js';
import { SdpSocketError } from './errors.js';
import { probeUdpPort, type UdpProbe } from './probe.js';
import { decodeHello, decodeHelloAck, encodeHello, encodeHelloAck, type Hello } from './protocol/hello.js';

/**
 * The QPs' local ACK timeout exponent (4.096 µs · 2^n): 17 is about half a
 * second, as Linux rdma_cm derives it on RoCE (packet lifetime 16, plus
 * one). A busy event loop serving hundreds of connections can stall longer
 * than rdma_cm's InfiniBand default of 14 (67 ms) allows, times 7 retries.
 */
const ACK_TIMEOUT = 17;

/** RDMA READs in flight each way: a sink keeps this many going through queued SrcAvails. */
const RD_ATOMIC = MAX_READS;
/** REJ reasons (IBTA 12.6.7.2) that mean "nobody here speaks SDP on that port". */
const REJ_INVALID_SERVICE_ID = 8;
/** The passive CM still held a connection from our QPN (a process before us died); it has dropped it now. */
const REJ_STALE_CONN = 10;
/** Connection attempts after a STALE_CONN reject (see connectLink). */
const STALE_RETRIES = 7;

type Handler = (e: CmEvent) => void;

/**
 * SDP listeners of this process, by port: the UDP port of the device each
 * listens on. A soft device's UDP port is only RoCEv2's 4791 when it got it
 * first, so a connection to a listener in this same process must be told
 * the port its device actually has.
 */
const localListeners = new Map<number, { address: string; udpPort: number | undefined }[]>();

function localUdpPort(host: string, port: number): number | undefined {
  const l = localListeners.get(port)?.find((x) => x.address === host || x.address === '0.0.0.0' || x.address === '::');
  return l?.udpPort;
}

let channel: EventChannel | undefined;
const handlers = new Map<CmId, Handler>();

/** One event channel per process, as an rdma_cm application keeps one per thread. */
function cmChannel(): EventChannel {
  if (channel && !channel.closed) return channel;
  const ch = createEventChannel();
  channel = ch;
  void (async () => {
    for await (const e of ch) {
      const h = e.event === CmEventType.CONNECT_REQUEST && e.listenId ? handlers.get(e.listenId) : handlers.get(e.id);
      if (h) h(e);
      else if (e.event === CmEventType.CONNECT_REQUEST) e.id.reject();
    }
  })();
  return ch;
}

interface Endpoint {
  address: string;
  port: number;
}

export class Link {
  readonly conn: SdpConnection;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  /** Called when the CM reports DISCONNECTED (the peer's DREQ, or its QP failing). */
  onDisconnected: (() => void) | undefined;
  readonly #id: CmId;
  readonly #pd: PD;
  readonly #cq: CQ;
  readonly #channel: CompChannel;
  #down: Promise<void> | undefined;

  constructor(id: CmId, conn: SdpConnection, res: { pd: PD; cq: CQ; channel: CompChannel }, local: Endpoint, remote: Endpoint) {
    this.#id = id;
    this.conn = conn;
    this.#pd = res.pd;
    this.#cq = res.cq;
    this.#channel = res.channel;
    this.local = local;
    this.remote = remote;
    handlers.set(id, (e) => {
      if (e.event === CmEventType.DISCONNECTED || e.event === CmEventType.DEVICE_REMOVAL) this.onDisconnected?.();
    });
  }

  setSink(sink: ConnectionSink): void {
    this.conn.setSink(sink);
  }

  /** Whether this connection keeps the event loop alive (the socket's ref()/unref()). */
  setRef(on: boolean): void {
    if (on) this.#id.ref();
    else this.#id.unref();
  }

  /** Releases everything; `abort` sends AbortConn first (a reset), otherwise the close was graceful. */
  teardown(abort: boolean): Promise<void> {
    this.#down ??= (async () => {
      if (abort) await this.conn.abort();
      else this.conn.close();
      releaseResources(this.#id, this.conn, { pd: this.#pd, cq: this.#cq, channel: this.#channel });
    })();
    return this.#down;
  }
}

function releaseResources(id: CmId, conn: SdpConnection | undefined, res: { pd?: PD; cq?: CQ; channel?: CompChannel }): void {
  handlers.delete(id);
  conn?.close();
  try {
    if (!id.destroyed && (id.state as number) !== 0) {
      try {
        id.disconnect();
      } catch {
        // Not connected (yet, or any more): nothing to disconnect.
      }
    }
  } finally {
    id.destroyQp();
    conn?.releaseMemory();
    if (res.cq && !res.cq.closed) res.cq.destroy();
    if (res.channel && !res.channel.closed) res.channel.destroy();
    if (res.pd && !res.pd.closed) res.pd.dealloc();
    id.destroy();
  }
}

function createResources(id: CmId, opts: ConnectionOptions): { pd: PD; cq: CQ; channel: CompChannel } {
  const ctx = id.verbs!;
  const pd = ctx.allocPd();
  const channel = ctx.createCompChannel();
  const depth = sendQueueDepth(opts);
  const cq = ctx.createCq(depth + opts.rxBufs + 2, { channel });
  id.createQp(pd, { sendCq: cq, recvCq: cq, cap: { maxSendWr: depth, maxRecvWr: opts.rxBufs, maxSendSge: 1, maxRecvSge: 1 } });
  return { pd, cq, channel };
}

function cmError(e: CmEvent | Error, where: { address: string; port?: number }, syscall = 'connect'): SdpSocketError {
  if (e instanceof Error) {
    const code = (e as { code?: string }).code;
    // An address no device has: the peer's is unreachable; a local one is
    // not available, as net says of a bind or listen address not on this host.
    if (code === 'ERR_IBAL_CM_ADDR' || code === 'ERR_IBAL_NOT_FOUND') return new SdpSocketError(syscall === 'connect' ? 'EHOSTUNREACH' : 'EADDRNOTAVAIL', syscall, e.message, where, { cause: e });
    if (code === 'ERR_IBAL_CM_ADDR_IN_USE') return new SdpSocketError('EADDRINUSE', syscall === 'connect' ? 'bind' : syscall, e.message, where, { cause: e });
    return new SdpSocketError('ECONNREFUSED', syscall, e.message, where, { cause: e });
  }
  switch (e.event) {
    case CmEventType.REJECTED:
      if (e.status === REJ_STALE_CONN) return Object.assign(new SdpSocketError('ECONNREFUSED', syscall, 'stale connection', where), { stale: true });
      return new SdpSocketError('ECONNREFUSED', syscall, e.status === REJ_INVALID_SERVICE_ID ? 'no SDP listener on that port' : `rejected: ${e.reason ?? e.status}`, where);
    case CmEventType.UNREACHABLE:
      return new SdpSocketError('ETIMEDOUT', syscall, 'no answer from the peer CM', where);
    case CmEventType.ADDR_ERROR:
    case CmEventType.ROUTE_ERROR:
      return new SdpSocketError('EHOSTUNREACH', syscall, e.reason ?? 'address resolution failed', where);
    default:
      return new SdpSocketError('ECONNRESET', syscall, `${e.eventName}${e.reason ? `: ${e.reason}` : ''}`, where);
  }
}

export interface ConnectLinkOptions {
  host: string;
  port: number;
  localAddress?: string;
  /** The local port in SDP's port space (0 or absent: any free one). */
  localPort?: number;
  udpPort?: number;
  connectTimeout?: number;
  /** Transparent mode gives up on a silent peer sooner, to fall back to TCP. */
  fallbackToTcp?: boolean;
}

/** The active side: resolve, REQ with Hello, REP with HelloAck, RTU. */
export async function connectLink(o: ConnectLinkOptions, sink: ConnectionSink, opts: ConnectionOptions): Promise<Link> {
  // A STALE_CONN reject means one CM remembered a connection of a dead
  // process from the same address and QPN, and has just let it go: retry.
  // Each attempt meets a new QPN of the peer's, so a peer restarted on the
  // same port while we still held several connections of its earlier runs
  // can take one attempt per connection held.
  for (let attempt = 0; ; attempt++) {
    try {
      return await connectOnce(o, sink, opts);
    } catch (err) {
      if (!(err as { stale?: boolean }).stale || attempt >= STALE_RETRIES) throw err;
    }
  }
}

async function connectOnce(o: ConnectLinkOptions, sink: ConnectionSink, opts: ConnectionOptions): Promise<Link> {
  const where = { address: o.host, port: o.port };
  const timeoutMs = o.connectTimeout ?? (o.fallbackToTcp ? 2000 : 10_000);
  const id = createId(cmChannel(), {
    portSpace: PortSpace.SDP,
    ackTimeout: ACK_TIMEOUT,
    // A peer with no CM at all never answers: keep the REQ retries inside the connect timeout.
    ...(o.fallbackToTcp ? { cmResponseTimeout: 16, maxCmRetries: 3 } : {}),
  });
  const events: CmEvent[] = [];
  let wake: (() => void) | undefined;
  handlers.set(id, (e) => {
    events.push(e);
    wake?.();
  });
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let refused = false;
  let probe: UdpProbe | undefined;
  const next = (): Promise<CmEvent> =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (timedOut) return reject(new SdpSocketError('ETIMEDOUT', 'connect', `no SDP connection within ${timeoutMs} ms`, where));
        if (refused) return reject(new SdpSocketError('ECONNREFUSED', 'connect', `nothing listens at ${o.host}'s RDMA port (ICMP port unreachable): no RDMA device there`, where));
        const e = events.shift();
        if (e) {
          wake = undefined;
          resolve(e);
        } else wake = check;
      };
      check();
    });
  timer = setTimeout(() => {
    timedOut = true;
    wake?.();
  }, timeoutMs);
  let res: { pd: PD; cq: CQ; channel: CompChannel } | undefined;
  let conn: SdpConnection | undefined;
  try {
    const bindTo = o.localAddress ?? (o.host.includes(':') ? '::' : '0.0.0.0');
    try {
      await id.bindAddr({ address: bindTo, port: o.localPort || 0 });
    } catch (err) {
      throw cmError(err as Error, { address: bindTo, ...(o.localPort ? { port: o.localPort } : {}) }, 'bind');
    }
    const udpPort = o.udpPort ?? localUdpPort(o.host, o.port);
    id.resolveAddr({ address: o.host, port: o.port, ...(udpPort !== undefined ? { udpPort } : {}) }, { timeoutMs });
    let e = await next();
    if (e.event !== CmEventType.ADDR_RESOLVED) throw cmError(e, where);
    // Only a soft device's peer is a UDP socket that a closed port would refuse (a RoCE NIC takes its port in hardware).
    if (id.verbs?.device.provider === 'soft') {
      probe = probeUdpPort(o.host, udpPort ?? ROCE_UDP_PORT, timeoutMs);
      void probe.refused.then((r) => {
        if (!r) return;
        refused = true;
        wake?.();
      });
    }
    id.resolveRoute(timeoutMs);
    e = await next();
    if (e.event !== CmEventType.ROUTE_RESOLVED) throw cmError(e, where);
    res = createResources(id, opts);
    conn = new SdpConnection({ ...res, qp: id.qp! }, sink, opts);
    const local = id.localAddr!;
    const hello = encodeHello({
      bufs: conn.postedReceives,
      desRemRcvSz: opts.rxBufSize,
      localRcvSz: opts.rxBufSize,
      localPort: local.port,
      srcAddress: local.address,
      dstAddress: o.host,
    });
    id.connect({ privateData: hello, responderResources: RD_ATOMIC, initiatorDepth: RD_ATOMIC, retryCount: 7, rnrRetryCount: 7 });
    e = await next();
    if (e.event !== CmEventType.ESTABLISHED) throw cmError(e, where);
    const ack = decodeHelloAck(e.conn!.privateData);
    clearTimeout(timer);
    timer = undefined;
    probe?.stop();
    const link = new Link(id, conn, res, { address: local.address, port: local.port }, { address: o.host, port: o.port });
    conn.start({ bufs: ack.bsdh.bufs, rcvSz: ack.actRcvSz });
    return link;
  } catch (err) {
    if (timer) clearTimeout(timer);
    probe?.stop();
    releaseResources(id, conn, res ?? {});
    if (err instanceof SdpSocketError) throw err;
    throw cmError(err as Error, where);
  }
}

export interface ListenLinkOptions {
  host?: string;
  port: number;
  backlog?: number;
}

export interface LinkListener {
  readonly address: string;
  readonly port: number;
  /** Whether the listener keeps the event loop alive (the server's ref()/unref()). */
  setRef(on: boolean): void;
  close(): void;
}

/**
 * The passive side: each REQ whose Hello parses and that `admit` allows gets
 * a QP, a receive ring and a REP with HelloAck; `onLink` runs at ESTABLISHED.
 */
export async function listenLink(
  o: ListenLinkOptions,
  opts: ConnectionOptions,
  admit: (hello: Hello) => boolean,
  onLink: (link: Link) => void,
  sink: () => ConnectionSink,
  /** An admitted request that never reached ESTABLISHED. */
  onDropped: () => void,
): Promise<LinkListener> {
  const id = createId(cmChannel(), { portSpace: PortSpace.SDP, ackTimeout: ACK_TIMEOUT });
  const host = o.host ?? '0.0.0.0';
  try {
    await id.bindAddr({ address: host, port: o.port });
    id.listen(o.backlog ?? 511);
  } catch (err) {
    id.destroy();
    throw cmError(err as Error, { address: host, ...(o.port ? { port: o.port } : {}) }, 'listen');
  }
  const bound = id.localAddr!;
  const entry = { address: host, udpPort: bound.udpPort };
  const list = localListeners.get(bound.port) ?? [];
  list.push(entry);
  localListeners.set(bound.port, list);
  handlers.set(id, (e) => {
    if (e.event === CmEventType.CONNECT_REQUEST) onRequest(e);
  });
  const onRequest = (e: CmEvent): void => {
    const child = e.id;
    let hello: Hello;
    try {
      hello = decodeHello(e.conn!.privateData);
    } catch {
      child.reject();
      return;
    }
    if (!admit(hello)) {
      child.reject();
      return;
    }
    let res: { pd: PD; cq: CQ; channel: CompChannel } | undefined;
    let conn: SdpConnection | undefined;
    try {
      res = createResources(child, opts);
      conn = new SdpConnection({ ...res, qp: child.qp! }, sink(), opts);
      handlers.set(child, (ev) => {
        if (ev.event === CmEventType.ESTABLISHED) {
          const local = { address: hello.dstAddress, port: bound.port };
          const link = new Link(child, conn!, res!, local, { address: hello.srcAddress, port: hello.localPort });
          // The socket takes the sink before the first completion is polled.
          onLink(link);
          conn!.start({ bufs: hello.bsdh.bufs, rcvSz: hello.localRcvSz });
        } else {
          releaseResources(child, conn, res ?? {});
          onDropped();
        }
      });
      child.accept({
        privateData: encodeHelloAck({ bufs: conn.postedReceives, actRcvSz: opts.rxBufSize, ipVersion: hello.ipVersion }),
        responderResources: RD_ATOMIC,
        initiatorDepth: RD_ATOMIC,
        rnrRetryCount: 7,
      });
    } catch {
      releaseResources(child, conn, res ?? {});
      onDropped();
    }
  };
  return {
    address: host,
    port: bound.port,
    setRef(on) {
      if (on) id.ref();
      else id.unref();
    },
    close() {
      handlers.delete(id);
      const l = localListeners.get(bound.port);
      if (l) {
        l.splice(l.indexOf(entry) >>> 0, 1);
        if (l.length === 0) localListeners.delete(bound.port);
      }
      id.destroy();
    },
  };
}
