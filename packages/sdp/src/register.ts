// Transparent mode: `node --import @ibal/sdp/register app.js`. For endpoints
// the rules (IBAL_SDP_RULES, IBAL_SDP_CONFIG) cover, net.connect and
// net.createConnection return an SDP socket that falls back to TCP when the
// peer does not speak SDP (as SMC-R falls back), and net.Server.listen also
// listens for SDP on the same port, handing SDP sockets to the same
// 'connection' listeners. http, ws and database clients built on net follow.

import http from 'node:http';
import net from 'node:net';
import { rulesFromEnv, matchRule, type SdpRule } from './rules.js';
import { SdpServer } from './server.js';
import { SdpSocket, normalizeConnectArgs, type SdpConnectOptions } from './socket.js';

const rules: SdpRule[] = rulesFromEnv();
/** The SdpServer beside a net.Server: tests and tools wait for its 'listening' under this key. */
const kSdp = Symbol.for('ibal.sdp.server');

const origConnect = net.connect;
/** host:port → until when it is known not to speak SDP. */
const tcpOnly = new Map<string, number>();
const TCP_ONLY_MS = 60_000;
const origListen = net.Server.prototype.listen;
const origClose = net.Server.prototype.close;

function sdpConnect(...args: unknown[]): net.Socket {
  const first = args[0];
  // Unix sockets and anything else with a path stay as they are.
  if (typeof first === 'string' && !/^\d+$/.test(first)) return (origConnect as (...a: unknown[]) => net.Socket)(...args);
  // (http's agent passes the request path along with host and port: only a path without a port is IPC.)
  if (typeof first === 'object' && first !== null && (first as { port?: unknown }).port === undefined) return (origConnect as (...a: unknown[]) => net.Socket)(...args);
  const [opts, cb] = normalizeConnectArgs(first as SdpConnectOptions | number, args[1] as string | (() => void), args[2] as () => void);
  const port = Number(opts.port);
  const host = opts.host ?? 'localhost';
  // Rules name addresses: a host name is resolved first (by the socket, with the caller's lookup) and each address checked.
  const usable = (address: string): boolean => {
    if (!matchRule(rules, 'client', address, port)) return false;
    const until = tcpOnly.get(`${address}:${port}`);
    return until === undefined || until <= Date.now();
  };
  if (net.isIP(host) ? !usable(host) : !matchRule(rules, 'client', undefined, port)) return (origConnect as (...a: unknown[]) => net.Socket)(...args);
  const s = new SdpSocket({ allowHalfOpen: opts.allowHalfOpen ?? false, ...(opts.onread ? { onread: opts.onread } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  s.connect({ ...pickConnect(opts), host, fallbackToTcp: true, sdpAddress: usable }, cb);
  // Remember peers that answered only over TCP, so the next connection does not wait for the CM again.
  s.once('connect', () => {
    const key = `${s.remoteAddress}:${port}`;
    if (s.transport === 'tcp') {
      if (s.remoteAddress && matchRule(rules, 'client', s.remoteAddress, port)) tcpOnly.set(key, Date.now() + TCP_ONLY_MS);
    } else tcpOnly.delete(key);
  });
  return s as unknown as net.Socket;
}

function pickConnect(o: SdpConnectOptions): SdpConnectOptions {
  const out: SdpConnectOptions = { port: Number(o.port) };
  for (const k of ['localAddress', 'localPort', 'timeout', 'keepAlive', 'keepAliveInitialDelay', 'noDelay', 'connectTimeout', 'udpPort', 'lookup', 'family', 'hints'] as const) {
    if (o[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = o[k];
  }
  return out;
}

function patchedListen(this: net.Server, ...args: unknown[]): net.Server {
  const server = this as net.Server & { [kSdp]?: SdpServer };
  // Ahead of the caller's own 'listening' callback, so the SDP server exists when that runs.
  server.prependOnceListener('listening', () => {
    const a = server.address();
    if (!a || typeof a === 'string') return;
    const any = a.address === '0.0.0.0' || a.address === '::';
    if (!matchRule(rules, 'server', any ? undefined : a.address, a.port)) return;
    const sdp = new SdpServer({ allowHalfOpen: (server as unknown as { allowHalfOpen?: boolean }).allowHalfOpen ?? false });
    server[kSdp] = sdp;
    // net.Server counts its connections in _connections (maxConnections,
    // getConnections and close() all read it); SDP's are counted there too,
    // so the application's limit and close() cover both listeners.
    const counts = server as unknown as { _connections: number; _emitCloseIfDrained?: () => void };
    let sdpOpen = 0;
    sdp.on('connection', (s: SdpSocket) => {
      counts._connections++;
      sdpOpen++;
      s.once('close', () => {
        counts._connections--;
        sdpOpen--;
        counts._emitCloseIfDrained?.();
      });
      server.emit('connection', s);
    });
    sdp.on('drop', (info: unknown) => server.emit('drop', info));
    // SDP admits what the TCP connections leave of the limit (it counts its own).
    Object.defineProperty(sdp, 'maxConnections', {
      get: () => {
        const max = server.maxConnections as number | undefined | null;
        return max === undefined || max === null ? undefined : Math.max(0, max - (counts._connections - sdpOpen));
      },
    });
    // The TCP listener serves; an SDP listener that cannot start (no RDMA device) is reported, not fatal.
    sdp.on('error', (err: Error) => process.emitWarning(`@ibal/sdp: no SDP listener on port ${a.port}: ${err.message}`));
    sdp.listen({ port: a.port, host: a.address === '::' ? '0.0.0.0' : a.address });
  });
  origListen.apply(server, args as Parameters<typeof origListen>);
  return server;
}

function patchedClose(this: net.Server, cb?: (err?: Error) => void): net.Server {
  const server = this as net.Server & { [kSdp]?: SdpServer };
  const sdp = server[kSdp];
  if (!sdp) return origClose.call(server, cb);
  server[kSdp] = undefined;
  // 'close' waits for both listeners and every socket of either, as net.Server's close does for its own.
  let pending = 2;
  let first: Error | undefined;
  const done = (err?: Error) => {
    first ??= err;
    if (--pending === 0) cb?.(first);
  };
  const emit = server.emit.bind(server);
  let closes = 0;
  server.emit = ((ev: string, ...rest: unknown[]) => {
    if (ev === 'close' && ++closes < 2) return true;
    return emit(ev, ...rest);
  }) as typeof server.emit;
  sdp.close(() => {
    server.emit('close');
    done();
  });
  origClose.call(server, (err?: Error) => done(err));
  return server;
}

if (rules.length > 0) {
  net.connect = sdpConnect as typeof net.connect;
  net.createConnection = sdpConnect as typeof net.createConnection;
  // The http agent took its reference to net.createConnection when it loaded.
  http.Agent.prototype.createConnection = sdpConnect as unknown as typeof http.Agent.prototype.createConnection;
  net.Server.prototype.listen = patchedListen as typeof net.Server.prototype.listen;
  net.Server.prototype.close = patchedClose as typeof net.Server.prototype.close;
}

export { rules as sdpRules };
