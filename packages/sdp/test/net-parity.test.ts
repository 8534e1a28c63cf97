// The same socket script run over node:net (TCP loopback) and over SDP must
// give the same events on each side, in the same order, and move the same
// bytes: closes and resets, half-close, timeouts, signals, write after end,
// readyState and pending. Found and now pinned: a client that never reads
// never closed after both ends; destroy() reset the peer where TCP's close
// sends FIN; resetAndDestroy() raised an error locally; pending stayed false
// after close; a write after the peer's end was the stream's write-after-end
// where net says EPIPE; an idle socket emitted 'timeout' again every period
// where net emits it once until there is activity again.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import * as sdp from '../src/index.js';
import { sleep } from './helpers/wait.js';

type Sock = net.Socket | sdp.SdpSocket;
interface Scenario {
  serverOpts?: { allowHalfOpen?: boolean };
  clientOpts?: () => Record<string, unknown>;
  server(s: Sock, count: (d: Buffer) => void): void;
  client(c: Sock, count: (d: Buffer) => void, log: string[]): Promise<void>;
}

const connected = (c: Sock) => new Promise((r) => c.once('connect', r));
const scenarios: Record<string, Scenario> = {
  'both end, the server echoing': { server: (s, n) => s.on('data', (d: Buffer) => (n(d), s.write(d))), client: async (c, n) => void (c.on('data', n), c.end('hello')) },
  'a client that never reads writes and ends': { server: (s, n) => s.on('data', n).on('end', () => s.end()), client: async (c) => void c.end(Buffer.alloc(200_000, 1)) },
  'the client destroys a connected socket': { server: (s, n) => s.on('data', n), client: async (c) => (await connected(c), await sleep(20), void c.destroy()) },
  'the server destroys, the client reads': { server: (s) => void setTimeout(() => s.destroy(), 20), client: async (c, n) => void c.on('data', n) },
  'the server destroys, nobody reads': { server: (s) => void setTimeout(() => s.destroy(), 20), client: async () => {} },
  'destroy(err) on the client': { server: (s, n) => s.on('data', n), client: async (c) => (await connected(c), await sleep(10), void c.destroy(new Error('boom'))) },
  'destroy() right after a large write': { server: (s, n) => s.on('data', n), client: async (c, n) => (c.on('data', n), await connected(c), c.write(Buffer.alloc(3_000_000, 1)), void setTimeout(() => c.destroy(), 30)) },
  "a write after the peer's end": {
    server: (s) => void s.end('bye'),
    client: async (c, n, log) => void (c.on('data', n), c.once('close', () => c.write('late', (e) => log.push(`client:write callback ${(e as NodeJS.ErrnoException | null)?.code}`)))),
  },
  'write after end': { server: (s, n) => s.on('data', n), client: async (c, n) => (c.on('data', n), c.end('x'), void c.write('y')) },
  'a half-open server answers after the end': { serverOpts: { allowHalfOpen: true }, server: (s, n) => s.on('data', n).on('end', () => setTimeout(() => s.end('late'), 20)), client: async (c, n) => void (c.on('data', n), c.end('req')) },
  'the end waits for a paused reader': { server: (s) => void s.end('abc'), client: async (c, n) => (c.pause(), await sleep(50), c.on('data', n), void c.resume()) },
  'one timeout per idle period': {
    server: (s, n) => s.on('data', n),
    client: async (c, n) => (c.on('data', n), await connected(c), c.setTimeout(30), await sleep(150), c.write('x'), await sleep(150), void c.end()),
  },
  'timeout, then end': { server: () => {}, client: async (c) => void (c.setTimeout(30), c.on('timeout', () => c.end())) },
  "end()'s callback": { server: (s, n) => s.on('data', n), client: async (c, n, log) => void (c.on('data', n), c.end('z', () => log.push('client:end callback'))) },
  'resetAndDestroy() when connected': { server: (s, n) => s.on('data', n), client: async (c) => (await connected(c), await sleep(10), void c.resetAndDestroy()) },
  'resetAndDestroy() while connecting': { server: (s, n) => s.on('data', n), client: async (c) => void c.resetAndDestroy() },
  'an aborted signal': {
    clientOpts: () => ({ signal: (ac = new AbortController()).signal }),
    server: (s, n) => s.on('data', n),
    client: async (c) => (await connected(c), await sleep(10), void ac.abort()),
  },
  'readyState and pending through a life': {
    server: (s) => s.resume(),
    client: async (c, _n, log) => {
      log.push(`client:${c.readyState} pending=${c.pending}`);
      await connected(c);
      log.push(`client:${c.readyState} pending=${c.pending}`);
      c.end();
      log.push(`client:${c.readyState}`);
      c.resume();
      await new Promise((r) => c.once('close', r));
      log.push(`client:${c.readyState} pending=${c.pending} connecting=${c.connecting}`);
    },
  },
};
let ac = new AbortController();

const EVENTS = ['connect', 'ready', 'end', 'finish', 'close', 'error', 'timeout'];
function watch(s: Sock, side: string, log: string[]): { bytes: number; count: (d: Buffer) => void } {
  const t = { bytes: 0, count: (d: Buffer) => void (t.bytes += d.length) };
  for (const e of EVENTS) s.on(e, (x: unknown) => log.push(`${side}:${e}${e === 'close' ? `(${String(x)})` : e === 'error' ? `(${(x as { code?: string }).code ?? (x as Error).message})` : ''}`));
  return t;
}

async function trace(m: typeof net | typeof sdp, sc: Scenario): Promise<string[]> {
  const log: string[] = [];
  let st: ReturnType<typeof watch> | undefined;
  const server = (m.createServer as typeof net.createServer)(sc.serverOpts ?? {}, (s) => {
    st = watch(s, 'server', log);
    sc.server(s, st.count);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const c = (m.connect as typeof net.connect)({ port, host: '127.0.0.1', ...(sc.clientOpts?.() ?? {}) }) as Sock;
  const ct = watch(c, 'client', log);
  const closed = new Promise((r) => c.once('close', r));
  await sc.client(c, ct.count, log);
  await Promise.race([closed, sleep(5000)]);
  await sleep(100);
  c.destroy();
  await new Promise((r) => server.close(r));
  // Each side's events in order; the two sides' interleaving is timing.
  return [...log.filter((l) => l.startsWith('client')), `client bytes ${ct.bytes}`, ...log.filter((l) => l.startsWith('server')), `server bytes ${st?.bytes}`];
}

describe('SdpSocket against net.Socket: the same script, the same events', () => {
  for (const [name, sc] of Object.entries(scenarios)) {
    it(name, async () => {
      const tcp = await trace(net, sc);
      expect(await trace(sdp, sc)).toEqual(tcp);
    });
  }
});
