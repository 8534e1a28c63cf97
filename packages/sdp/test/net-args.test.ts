// The same calls with the same random arguments on node:net and on SDP must
// throw the same errors (or none): connect and createConnection forms,
// new Socket options, setTimeout, setNoDelay, setKeepAlive, setEncoding,
// listen forms, getConnections and close. Each call gets a fresh socket or
// server, so only argument handling is compared, not connection state. Left
// out: what SDP cannot be (IPC paths, sockets over file descriptors).
// Found: getConnections() without a callback crashed the process from a
// tick; close(5) crashed likewise; connect() with no port, with a port of ''
// or of a wrong type or with a host that is not a string, listen(true),
// listen('') and listen({ host: 5 }) went ahead; a symbol port threw an
// error without a code; checks ran in another order than net's.
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { seeded } from '@ibal/tooling/seeded';
import * as sdp from '../src/index.js';

const base = Number(process.env.SDP_TEST_SEED ?? Math.floor(Math.random() * 1e6));
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

// Never a string that is not a number (net takes it for an IPC path), nor a host that needs DNS.
const values = [undefined, null, 0, -1, 1.5, NaN, Infinity, 70000, 2 ** 31, '', ' ', '10', '-3', true, false, {}, [], () => {}, Symbol('s'), 10n, Buffer.from('ab'), new ArrayBuffer(4), '127.0.0.1', '::1'];
const show = (v: unknown): string => (typeof v === 'symbol' ? 'Symbol' : typeof v === 'bigint' ? `${v}n` : typeof v === 'function' ? 'fn' : v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? v.constructor.name : JSON.stringify(v) ?? String(v));

type Api = { connect: (...a: unknown[]) => net.Socket | sdp.SdpSocket; Socket: new (o?: unknown) => net.Socket | sdp.SdpSocket; createServer: () => net.Server | sdp.SdpServer };
const apis: Record<'net' | 'sdp', Api> = {
  net: { connect: net.connect as Api['connect'], Socket: net.Socket as Api['Socket'], createServer: () => net.createServer() },
  sdp: { connect: sdp.connect as Api['connect'], Socket: sdp.SdpSocket as Api['Socket'], createServer: () => sdp.createServer() },
};

function outcome(api: Api, call: string, args: unknown[]): string {
  const keep = <T extends { on(e: string, f: () => void): unknown }>(x: T, end: () => void): T => {
    x.on('error', () => {});
    cleanup.push(end);
    return x;
  };
  try {
    switch (call) {
      case 'connect':
      case 'connect(options)': {
        const a = call === 'connect' ? args : [{ port: args[0], host: args[1], localPort: args[2] }];
        const s = api.connect(...a);
        keep(s, () => s.destroy());
        break;
      }
      case 'new Socket':
        if (typeof args[0] === 'number') return 'skipped (fd)';
        keep(new api.Socket(args[0]), () => undefined);
        break;
      case 'listen':
      case 'listen(options)': {
        const srv = api.createServer();
        keep(srv, () => srv.close());
        const a = call === 'listen' ? args : [{ port: args[0], host: args[1], backlog: args[2] }];
        (srv.listen as (...x: unknown[]) => unknown)(...a);
        break;
      }
      case 'getConnections':
      case 'close': {
        const srv = api.createServer();
        keep(srv, () => srv.close());
        (srv[call] as (...x: unknown[]) => unknown)(...args);
        break;
      }
      default: {
        const s = keep(new api.Socket(), () => undefined);
        (s[call as 'setTimeout'] as (...x: unknown[]) => unknown)(...args);
      }
    }
    return 'no throw';
  } catch (e) {
    return `${(e as Error).constructor.name} ${(e as NodeJS.ErrnoException).code}`;
  }
}

it.each([0, 1, 2])(`random arguments: SDP throws what net throws (seed ${base} + %i)`, async (i) => {
  const r = seeded(base + i);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const calls = ['connect', 'connect(options)', 'new Socket', 'setTimeout', 'setNoDelay', 'setKeepAlive', 'setEncoding', 'listen', 'listen(options)', 'getConnections', 'close'];
  const diffs: string[] = [];
  for (let k = 0; k < 400; k++) {
    const call = pick(calls);
    const args = Array.from({ length: Math.floor(r() * 4) }, () => pick(values));
    // net takes a first argument that is a string but not a number >= 0 for an IPC path.
    if ((call === 'connect' || call === 'listen') && typeof args[0] === 'string' && !(Number(args[0]) >= 0)) continue;
    // A localPort out of range: net lets it through to bind, which fails later with EADDRINUSE or
    // nothing at all; SDP refuses it at once (ERR_SOCKET_BAD_PORT).
    const lp = args[2];
    if (call === 'connect(options)' && typeof lp === 'number' && lp !== 0 && !(Number.isInteger(lp) && lp > 0 && lp < 65536)) continue;
    const a = outcome(apis.net, call, args);
    // A TypeError without a code is net's own failure (a Symbol or BigInt it converts unchecked): nothing to match.
    if (a === 'TypeError undefined') continue;
    const b = outcome(apis.sdp, call, args);
    if (a !== b) diffs.push(`${call}(${args.map(show).join(', ')}): net ${a}, sdp ${b}`);
    for (const f of cleanup.splice(0)) f();
    if (k % 20 === 0) await new Promise((res) => setImmediate(res));
  }
  expect(diffs).toEqual([]);
});
