// Across processes, as the issue asks: each peer runs the built package.

import { createHash } from 'node:crypto';
import net from 'node:net';

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { sysStatus } from '@ibal/hca';
import { connect, type SdpSocket } from '../src/index.js';
import { Peer, fixtures, privateLoopback, registerHook } from './helpers/child.js';
import { errorOf, once, sleep } from './helpers/wait.js';

const peers: Peer[] = [];
const sockets: SdpSocket[] = [];

afterAll(() => {
  for (const s of sockets) s.destroy();
  for (const p of peers) p.kill();
});

function peer(args: string[], env: Record<string, string> = {}): Peer {
  const p = new Peer(args, env);
  peers.push(p);
  return p;
}

async function sdpPeer(mode: string, env: Record<string, string> = {}) {
  const p = peer([`${fixtures}/sdp-peer.mjs`, mode], env);
  const m = await p.message<{ port: number; udpPort: number }>('port');
  return { p, port: m.port, udpPort: m.udpPort };
}

/** Node's http server under the register hook, on a private loopback address of its own with a soft device there. */
async function sdpHttpServer() {
  const host = privateLoopback();
  const rules = { IBAL_SDP_RULES: `${host}:*` };
  const server = peer(['--import', registerHook, `${fixtures}/http-server.mjs`, host], { ...rules, IBAL_SOFT_DEVICES: `soft0=${host}:4791` });
  const { port, sdp } = await server.message<{ port: number; sdp: boolean }>('port');
  expect(sdp).toBe(true);
  return { host, rules, port };
}

describe('transparent mode: Node http, unchanged, over SDP', () => {
  it('exchanges 1,000 requests and a WebSocket-style upgrade over SDP', async () => {
    const { host, rules, port } = await sdpHttpServer();
    const client = peer(['--import', registerHook, `${fixtures}/http-client.mjs`, host, String(port), '1000'], rules);
    const r = await client.message<{ ok: number; transports: Record<string, number>; upgrade: { status: number; echoed: string; transport: string } }>('ok', 180_000);
    expect(r.ok).toBe(1000);
    expect(r.transports).toEqual({ sdp: 1000 });
    expect(r.upgrade).toEqual({ status: 101, echoed: 'frame-1frame-2', transport: 'sdp' });
  }, 240_000);

  it('reaches the second of two SDP services on one address, whose device is not on UDP 4791, over SDP', async () => {
    // Two servers, one address: the first device there takes RoCEv2's UDP port 4791, the second an
    // ephemeral one. A client naming only host and port reached the first device, which refused,
    // and fell back to TCP; listeners now record their UDP port for the host (@ibal/cm).
    const host = privateLoopback();
    const env = { IBAL_SDP_RULES: `${host}:*`, IBAL_SOFT_DEVICES: `soft0=${host}` };
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const server = peer(['--import', registerHook, `${fixtures}/http-server.mjs`, host], env);
      const m = await server.message<{ port: number; sdp: boolean }>('port');
      expect(m.sdp).toBe(true);
      ports.push(m.port);
    }
    for (const port of ports) {
      const client = peer(['--import', registerHook, `${fixtures}/http-client.mjs`, host, String(port), '20'], env);
      const r = await client.message<{ ok: number; transports: Record<string, number> }>('ok', 60_000);
      expect(r).toMatchObject({ ok: 20, transports: { sdp: 20 } });
    }
  }, 120_000);

  it("net.Server's maxConnections, getConnections and close() count SDP connections with TCP's", async () => {
    const host = privateLoopback();
    const server = peer(['--import', registerHook, `${fixtures}/limit-server.mjs`, host, '2'], { IBAL_SDP_RULES: `${host}:*`, IBAL_SOFT_DEVICES: `soft0=${host}:4791` });
    const { port, sdp } = await server.message<{ port: number; sdp: boolean }>('port');
    expect(sdp).toBe(true);
    const firstLine = (s: net.Socket | SdpSocket) =>
      new Promise<string>((resolve) => {
        let text = '';
        s.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('\n')) resolve(text.split('\n')[0]!);
        });
        s.on('close', () => resolve(`closed: ${text}`));
      });
    const a = connect(port, host);
    sockets.push(a);
    expect(await firstLine(a)).toBe('sdp');
    const b = net.connect(port, host).on('error', () => {});
    expect(await firstLine(b)).toBe('tcp');
    // The limit is reached by one connection of each: SDP refuses, TCP drops.
    const c = connect(port, host);
    sockets.push(c);
    expect((await errorOf(c)).code).toBe('ECONNREFUSED');
    const d = net.connect(port, host).on('error', () => {});
    expect(await firstLine(d)).toBe('closed: ');
    expect((await server.message<{ drop: number }>('drop')).drop).toBeGreaterThanOrEqual(1);
    server.proc.stdin!.write('count1\n');
    expect((await server.message<{ count1: number }>('count1')).count1).toBe(2);
    server.proc.stdin!.write('close\n');
    await sleep(300);
    a.destroy();
    await sleep(300);
    expect(server.messages.some((m) => 'closed' in m)).toBe(false);
    b.destroy();
    await server.message('closed');
    expect(server.messages.filter((m) => 'drop' in m).length).toBe(2);
  }, 60_000);

  it('falls back to TCP when the peer does not speak SDP', async () => {
    const host = privateLoopback();
    // A plain TCP server: no register hook, no RDMA device at that address.
    const server = peer([`${fixtures}/http-server.mjs`, host]);
    const { port } = await server.message<{ port: number }>('port');
    const client = peer(['--import', registerHook, `${fixtures}/http-client.mjs`, host, String(port), '20'], { IBAL_SDP_RULES: '*:*' });
    const r = await client.message<{ ok: number; transports: Record<string, number>; upgrade: { transport: string } }>('ok', 120_000);
    expect(r.ok).toBe(20);
    expect(r.transports).toEqual({ tcp: 20 });
    expect(r.upgrade.transport).toBe('tcp');
  }, 180_000);
});

describe('transparent mode: host names', () => {
  it('resolves a host name with the caller\'s lookup and takes SDP when a rule covers its address', async () => {
    const { host, rules, port } = await sdpHttpServer();
    const client = peer(['--import', registerHook, `${fixtures}/http-client.mjs`, host, String(port), '50', 'api.example.test'], rules);
    const r = await client.message<{ ok: number; transports: Record<string, number>; upgrade: { transport: string }; lookups: number }>('ok', 120_000);
    expect(r.ok).toBe(50);
    expect(r.transports).toEqual({ sdp: 50 });
    expect(r.upgrade.transport).toBe('sdp');
    expect(r.lookups).toBeGreaterThan(0);
  }, 180_000);

  it('keeps TCP, without trying SDP, for a host name whose address no rule covers', async () => {
    const host = privateLoopback();
    const server = peer([`${fixtures}/http-server.mjs`, host]);
    const { port } = await server.message<{ port: number }>('port');
    // The rule covers the port but another address: only the resolved address tells them apart.
    const other = host === '127.0.9.9' ? '127.0.9.8' : '127.0.9.9';
    const client = peer(['--import', registerHook, `${fixtures}/http-client.mjs`, host, String(port), '20', 'plain.example.test'], { IBAL_SDP_RULES: `${other}:${port}`, IBAL_SDP_DEBUG: '1' });
    const r = await client.message<{ ok: number; transports: Record<string, number>; upgrade: { transport: string } }>('ok', 120_000);
    expect(r.ok).toBe(20);
    expect(r.transports).toEqual({ tcp: 20 });
    expect(r.upgrade.transport).toBe('tcp');
    // IBAL_SDP_DEBUG reports every SDP attempt that fell back: there was none.
    expect(client.stderr).not.toMatch(/over TCP/);
  }, 180_000);
});

describe('onread across processes', () => {
  it('net.connect with onread, through the register hook, gets the echo of mixed writes intact and no data events', async () => {
    const host = privateLoopback();
    const rules = { IBAL_SDP_RULES: `${host}:*` };
    const server = peer([`${fixtures}/sdp-peer.mjs`, 'echo', host], { IBAL_SOFT_DEVICES: `soft0=${host}:4791` });
    const { port } = await server.message<{ port: number }>('port');
    const client = peer(['--import', registerHook, `${fixtures}/onread-client.mjs`, host, String(port), '48'], rules);
    const r = await client.message<{ ok: boolean; transport: string; dataEvents: number; received: number }>('ok', 120_000);
    expect(r).toEqual({ ok: true, transport: 'sdp', dataEvents: 0, received: 48 << 20 });
  }, 180_000);

  it('falls back to TCP with onread still honoured when the peer does not speak SDP', async () => {
    const host = privateLoopback();
    // A plain net echo server: no register hook, no RDMA device at that address.
    const echo = `const s = require('node:net').createServer((c) => c.pipe(c)).listen(0, '${host}', () => console.log(JSON.stringify({ port: s.address().port }))); process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
    const server = peer(['-e', echo]);
    const { port } = await server.message<{ port: number }>('port');
    const client = peer(['--import', registerHook, `${fixtures}/onread-client.mjs`, host, String(port), '8'], { IBAL_SDP_RULES: '*:*' });
    const r = await client.message<{ ok: boolean; transport: string; dataEvents: number; received: number }>('ok', 120_000);
    expect(r).toEqual({ ok: true, transport: 'tcp', dataEvents: 0, received: 8 << 20 });
  }, 180_000);

  it('carries 150 MiB of echoed writes, small and large, through onread over the shared-memory path', async () => {
    const { port, udpPort } = await sdpPeer('echo');
    const got = createHash('sha256');
    const sent = createHash('sha256');
    let received = 0;
    const c = connect({
      port,
      host: '127.0.0.1',
      udpPort,
      onread: {
        buffer: Buffer.alloc(1 << 20),
        callback: (n, buf) => {
          received += n;
          got.update(buf.subarray(0, n));
        },
      },
    });
    sockets.push(c);
    await once(c, 'connect');
    const ended = once(c, 'end', 120_000);
    for (let i = 0; i < 64; i++) {
      const chunk = Buffer.alloc(i % 4 === 3 ? 1000 + i : 3 << 20, i);
      sent.update(chunk);
      if (!c.write(chunk)) await once(c, 'drain', 60_000);
    }
    c.end();
    await ended;
    expect(received).toBe(48 * (3 << 20) + 16 * 1000 + [3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63].reduce((a, b) => a + b, 0));
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  }, 180_000);
});

describe('exceptions in application callbacks', () => {
  it('go to uncaughtException, as net\'s do, and the stream carries on intact', async () => {
    // A 'data' listener, a write callback and an onread callback each throw once, in a child: vitest would take
    // the uncaught exceptions as its own. Before, each became an ECONNRESET and the streams never ended.
    const p = peer([`${fixtures}/throwing-callbacks.mjs`]);
    const r = await p.message<{ bytes: number; onreadBytes: number; expected: number; uncaught: string[]; errors: string[] }>('bytes', 60_000);
    expect(r.bytes).toBe(r.expected);
    expect(r.onreadBytes).toBe(r.expected);
    expect(r.uncaught).toEqual(['data listener', 'onread callback', 'write callback']);
    expect(r.errors).toEqual([]);
  }, 90_000);
});

describe('SDP sockets across processes', () => {
  it('pipes 1 GiB with backpressure and it arrives hash-identical', async () => {
    const { port, udpPort } = await sdpPeer('hash');
    const c = connect({ port, host: '127.0.0.1', udpPort, allowHalfOpen: true });
    sockets.push(c);
    await once(c, 'connect');
    const block = createHash('sha512').update('ibal').digest();
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < chunk.length; i += block.length) block.copy(chunk, i);
    const total = 1024;
    const h = createHash('sha256');
    const reply: Buffer[] = [];
    c.on('data', (d: Buffer) => reply.push(d));
    // Listening before the pipeline settles: the reply and its end may arrive before it does.
    const ended = once(c, 'end', 240_000);
    const t0 = Date.now();
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < total; i++) {
            // Vary every MiB so a dropped or repeated chunk changes the hash.
            const b = Buffer.from(chunk);
            b.writeUInt32BE(i, 0);
            b.writeUInt32BE(i, b.length - 4);
            h.update(b);
            yield b;
          }
        })(),
      ),
      c,
      { end: true },
    );
    await ended;
    const r = JSON.parse(Buffer.concat(reply).toString()) as { bytes: number; sha256: string };
    console.log(`1 GiB over SDP in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.bytes).toBe(total << 20);
    expect(r.sha256).toBe(h.digest('hex'));
  }, 300_000);

  /** A socket to an echo peer in its own process, one echo done (so a same-host pair has switched to shared memory). */
  async function echoed(env: Record<string, string> = {}) {
    const { p, port, udpPort } = await sdpPeer('echo', env);
    const c = connect({ port, host: '127.0.0.1', udpPort });
    sockets.push(c);
    await once(c, 'connect');
    c.write('ping');
    expect((await once<Buffer>(c, 'data')).toString()).toBe('ping');
    return { p, c };
  }

  it('reports ECONNRESET when the peer process dies', async () => {
    // Over UDP: only the HCA's retries can tell (over shared memory the CM hears of the exit first, below).
    const { p, c } = await echoed({ IBAL_SOFT_SHM: '0' });
    const err = errorOf(c, 60_000);
    p.kill();
    await p.exited();
    // The next write finds no one: the HCA's retries run out (RETRY_EXC_ERR).
    const writer = setInterval(() => {
      if (c.writable) c.write('anyone?');
    }, 50);
    try {
      expect((await err).code).toBe('ECONNRESET');
    } finally {
      clearInterval(writer);
    }
  }, 90_000);

  it('notices a dead idle peer through keepalive', async () => {
    // Over UDP only: over shared memory the CM notices the exit first (next test).
    const { p, port, udpPort } = await sdpPeer('echo', { IBAL_SOFT_SHM: '0' });
    const c = connect({ port, host: '127.0.0.1', udpPort, keepAlive: true, keepAliveInitialDelay: 200 });
    sockets.push(c);
    await once(c, 'connect');
    const err = errorOf(c, 60_000);
    p.kill();
    expect((await err).code).toBe('ECONNRESET');
  }, 90_000);

  it.skipIf(!sysStatus().shm.on)('hears of a same-host peer process exiting at once, as from its kernel\'s DREQ: ECONNRESET with no traffic and no keepalive', async () => {
    const { p, c } = await echoed();
    const err = errorOf(c, 30_000);
    p.kill();
    // An idle socket with no keepalive would never notice a silent peer; this one hears of it.
    expect((await err).code).toBe('ECONNRESET');
  }, 60_000);

  it('serves 500 concurrent sockets', async () => {
    const small = { IBAL_SDP_RX_BUFS: '4', IBAL_SDP_RX_BUF_SIZE: '4096', IBAL_SDP_TX_BUFS: '4' };
    const { port, udpPort } = await sdpPeer('echo', small);
    const opts = { port, host: '127.0.0.1', udpPort, rxBufs: 4, rxBufSize: 4096, txBufs: 4, connectTimeout: 120_000 };
    const all = Array.from({ length: 500 }, () => {
      const s = connect(opts);
      sockets.push(s);
      return s;
    });
    await Promise.all(all.map((s) => once(s, 'connect', 120_000)));
    const echoes = all.map(async (s, i) => {
      const want = `socket ${i}`;
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.write(want);
      for (let t = 0; t < 2400 && got.length < want.length; t++) await sleep(50);
      return got === want;
    });
    const ok = await Promise.all(echoes);
    const failed = all.map((s, i) => (ok[i] ? undefined : `${i}: destroyed=${s.destroyed} err=${(s as unknown as { errored?: Error }).errored?.message ?? ''}`)).filter(Boolean);
    expect(failed).toEqual([]);
    for (const s of all) s.end();
    await Promise.all(all.map((s) => once(s, 'close', 120_000)));
  }, 300_000);
});

describe('ref() and unref(), as net\'s', () => {
  async function exitedWithin(p: Peer, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (p.proc.exitCode === null && p.proc.signalCode === null && Date.now() < deadline) await sleep(20);
    return p.proc.exitCode !== null || p.proc.signalCode !== null;
  }

  it('a process whose only handle is an unref()d listening server exits by itself', async () => {
    const p = peer([`${fixtures}/unref.mjs`, 'server']);
    await p.message('ready');
    expect(await exitedWithin(p, 10_000)).toBe(true);
    expect(p.proc.exitCode).toBe(0);
  }, 30_000);

  it('a connected socket keeps its process alive until unref()d, over the shared-memory path too', async () => {
    const { port, udpPort } = await sdpPeer('echo');
    // Kept: still running a second after its echo.
    const kept = peer([`${fixtures}/unref.mjs`, 'client', String(port), String(udpPort), 'ref']);
    await kept.message('ready');
    expect(await exitedWithin(kept, 1000)).toBe(false);
    kept.kill();
    // Unref'd: exits by itself, connection still open.
    const let_go = peer([`${fixtures}/unref.mjs`, 'client', String(port), String(udpPort), 'unref']);
    const r = await let_go.message<{ transport: string }>('ready');
    expect(r.transport).toBe('sdp');
    expect(await exitedWithin(let_go, 10_000)).toBe(true);
    expect(let_go.proc.exitCode).toBe(0);
  }, 60_000);
});

describe('SDP in worker threads', () => {
  it('a worker terminated mid-traffic leaves its process running (shm and UDP paths)', async () => {
    const p = peer([`${fixtures}/worker-traffic.mjs`]);
    await p.message('alive', 60_000);
    const runs = p.messages.filter((m) => 'terminated' in m);
    expect(runs).toHaveLength(8);
    // Where the addon is built (as CI builds it), the shm runs used it.
    if (sysStatus().shm.on) expect(runs.filter((m) => m.shm === true)).toHaveLength(4);
    const code = await new Promise<number | null>((resolve) => (p.proc.exitCode !== null ? resolve(p.proc.exitCode) : p.proc.once('exit', resolve)));
    expect(code).toBe(0);
    expect(p.stderr).toBe('');
  });
});
