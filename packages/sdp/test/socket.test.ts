// Sockets and servers in one process, connected through @ibal/cm.

import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SdpServer, SdpSocket, connect, createServer } from '../src/index.js';
import { errorOf, once, sleep } from './helpers/wait.js';
import { seeded } from '@ibal/tooling/seeded';

const open: (SdpSocket | SdpServer)[] = [];

afterEach(async () => {
  for (const x of open.splice(0).reverse()) {
    if (x instanceof SdpSocket) x.destroy();
    else if (x.listening) await new Promise((r) => x.close(() => r(undefined)));
  }
});

async function listening(server: SdpServer): Promise<number> {
  open.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address()!.port;
}

/** A server whose accepted sockets are handed out in order by next(). */
async function serve(opts: { allowHalfOpen?: boolean } = {}) {
  const queue: SdpSocket[] = [];
  const waiting: ((s: SdpSocket) => void)[] = [];
  const server = createServer(opts, (s) => {
    track(s).on('error', () => {});
    const w = waiting.shift();
    if (w) w(s);
    else queue.push(s);
  });
  const port = await listening(server);
  const next = (): Promise<SdpSocket> => {
    const s = queue.shift();
    return s ? Promise.resolve(s) : new Promise((r) => waiting.push(r));
  };
  return { server, port, next };
}

/** A client connected to a new server, and the server's side of it. */
async function connected(opts: { allowHalfOpen?: boolean } = {}) {
  const { server, port, next } = await serve(opts);
  const c = track(connect({ port, host: '127.0.0.1', ...opts }));
  await once(c, 'connect');
  return { server, port, c, s: await next() };
}

function track<T extends SdpSocket>(s: T): T {
  open.push(s);
  return s;
}

function collect(s: SdpSocket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return once(s, 'end').then(() => Buffer.concat(parts));
}

describe('SdpSocket and SdpServer', () => {
  it('echoes, reports addresses and byte counts like net.Socket', async () => {
    let accepted: SdpSocket | undefined;
    const server = createServer((s) => {
      accepted = track(s);
      s.pipe(s);
    });
    const port = await listening(server);
    const c = track(connect(port, '127.0.0.1'));
    await once(c, 'connect');
    expect(c.remoteAddress).toBe('127.0.0.1');
    expect(c.remotePort).toBe(port);
    expect(c.remoteFamily).toBe('IPv4');
    expect(c.localPort).toBeGreaterThan(0);
    expect(c.address()).toMatchObject({ address: '127.0.0.1', family: 'IPv4', port: c.localPort });
    expect(c.transport).toBe('sdp');
    const payload = randomBytes(300_000); // crosses the zero-copy threshold
    const got = collect(c);
    c.write(payload.subarray(0, 10));
    c.end(payload.subarray(10));
    expect((await got).equals(payload)).toBe(true);
    expect(accepted!.remoteAddress).toBe('127.0.0.1');
    expect(accepted!.remotePort).toBe(c.localPort);
    expect(accepted!.localPort).toBe(port);
    await once(c, 'close');
    expect(c.bytesWritten).toBe(payload.length);
    expect(c.bytesRead).toBe(payload.length);
  });

  it('half-closes in both directions with allowHalfOpen', async () => {
    const { c, s } = await connected({ allowHalfOpen: true });
    // Client → server closes first; the server still talks.
    const atServer = collect(s);
    c.end('client done');
    expect((await atServer).toString()).toBe('client done');
    expect(s.writable).toBe(true);
    const atClient = collect(c);
    s.write('server still ');
    s.end('talking');
    expect((await atClient).toString()).toBe('server still talking');
    await Promise.all([once(c, 'close'), once(s, 'close')]);
  });

  it('answers at length after the client half-closed: end(request), then a reply of many small writes', async () => {
    const { c, s } = await connected({ allowHalfOpen: true });
    const request = collect(s);
    c.end('GET');
    expect((await request).toString()).toBe('GET');
    // Thousands of Data messages: the half-closed client must keep returning credits for them.
    const line = Buffer.alloc(700, 'x');
    const reply = collect(c);
    for (let i = 0; i < 3000; i++) if (!s.write(line)) await once(s, 'drain');
    s.end();
    expect((await reply).length).toBe(3000 * line.length);
    await Promise.all([once(c, 'close'), once(s, 'close')]);
  });

  it('half-closes server → client first', async () => {
    const server = createServer({ allowHalfOpen: true }, (s) => {
      track(s);
      s.end('bye');
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('end', () => server.emit('got', Buffer.concat(parts).toString()));
    });
    const port = await listening(server);
    const c = track(connect({ port, host: '127.0.0.1', allowHalfOpen: true }));
    expect((await collect(c)).toString()).toBe('bye');
    c.end('still here');
    expect(await once(server, 'got')).toBe('still here');
  });

  it("closes a socket nobody reads once both sides ended, as net.Socket does (a writer's process can then exit)", async () => {
    const { c, s } = await connected();
    const got = collect(s);
    // The client never listens for data: only its writable side is used.
    c.end(Buffer.alloc(300_000, 7));
    expect((await got).length).toBe(300_000);
    s.end();
    await once(c, 'close');
    expect(c.destroyed).toBe(true);
  });

  it("emits 'close' with net's hadError: false after a clean close, true after an error (and after 'error')", async () => {
    const { port, next } = await serve();
    const c = track(connect(port, '127.0.0.1'));
    const closed = new Promise<unknown[]>((r) => c.once('close', (...a: unknown[]) => r(a)));
    await once(c, 'connect');
    (await next()).end();
    c.resume();
    c.end();
    expect(await closed).toEqual([false]);
    const server = createServer();
    const gone = await listening(server);
    await new Promise((r) => server.close(r));
    const r = track(connect(gone, '127.0.0.1'));
    const order: string[] = [];
    r.on('error', () => order.push('error'));
    const refused = new Promise<unknown[]>((res) => r.once('close', (...a: unknown[]) => res(a)));
    expect(await refused).toEqual([true]);
    expect(order).toEqual(['error']);
  });

  it('a peer that ends and then destroys closes cleanly, as a TCP peer closing after shutdown: no error, the bytes and the end still arrive', async () => {
    const events: string[] = [];
    let accepted: SdpSocket | undefined;
    const server = createServer((s) => {
      accepted = track(s);
      s.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
      s.on('close', (hadError: boolean) => events.push(`close ${hadError}`));
      s.on('end', () => events.push('end'));
    });
    const port = await listening(server);
    const c = track(connect(port, '127.0.0.1'));
    await once(c, 'connect');
    c.end('bye');
    await once(c, 'finish');
    c.destroy();
    await once(c, 'close');
    // The server's socket has not read a byte yet: nothing is lost.
    await sleep(100);
    expect(events).toEqual([]);
    const got = collect(accepted!);
    expect((await got).toString()).toBe('bye');
    await once(accepted!, 'close');
    expect(events).toEqual(['end', 'close false']);
  });

  it("bad ports throw net's RangeError ERR_SOCKET_BAD_PORT; null options are no options, as net takes them", async () => {
    for (const p of [-1, 65536, 1.5, Number.NaN, 'x']) {
      expect(() => connect(p as number), String(p)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' }) as unknown as Error);
      expect(() => createServer().listen(p as number), String(p)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' }) as unknown as Error);
    }
    const s = new SdpSocket(null);
    expect(s.pending).toBe(true);
    s.destroy();
  });

  it('refuses a port with no listener with ECONNREFUSED', async () => {
    const server = createServer();
    const port = await listening(server);
    await new Promise((r) => server.close(r));
    const c = track(connect(port, '127.0.0.1'));
    const err = await errorOf(c);
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.syscall).toBe('connect');
    expect((err as NodeJS.ErrnoException & { port?: number }).port).toBe(port);
  });

  it("refuses connections beyond maxConnections, with net's 'drop' event", async () => {
    const { server, port } = await serve();
    server.maxConnections = 1;
    const a = track(connect(port, '127.0.0.1'));
    await once(a, 'connect');
    const drop = once(server, 'drop');
    const b = track(connect(port, '127.0.0.1'));
    expect((await errorOf(b)).code).toBe('ECONNREFUSED');
    expect(await drop).toEqual({ localAddress: '127.0.0.1', localPort: port, localFamily: 'IPv4', remoteAddress: '127.0.0.1', remotePort: expect.any(Number), remoteFamily: 'IPv4' });
  });

  it("takes net's pauseOnConnect and highWaterMark", async () => {
    const accepted: SdpSocket[] = [];
    const server = createServer({ pauseOnConnect: true, highWaterMark: 1024 }, (s) => {
      accepted.push(track(s));
      // A 'data' listener does not start a paused socket: nothing is read until resume().
      s.on('data', () => accepted.push(s));
    });
    const port = await listening(server);
    const c = track(connect({ port, host: '127.0.0.1', highWaterMark: 2048 }));
    expect([c.readableHighWaterMark, c.writableHighWaterMark]).toEqual([2048, 2048]);
    c.write('early');
    await once(c, 'connect');
    await sleep(100);
    expect(accepted.length).toBe(1);
    const s = accepted[0]!;
    expect([s.isPaused(), s.readableHighWaterMark, s.writableHighWaterMark]).toEqual([true, 1024, 1024]);
    const data = once<Buffer>(s, 'data');
    s.resume();
    expect((await data).toString()).toBe('early');
  });

  it('server.close() waits for its sockets before close', async () => {
    const { server, port, next } = await serve();
    const c = track(connect(port, '127.0.0.1'));
    await once(c, 'connect');
    void next().then((s) => s.pipe(s));
    let closed = false;
    server.close(() => (closed = true));
    await sleep(300);
    expect(closed).toBe(false);
    expect(server.listening).toBe(false);
    // New connections are refused while the old one lives on.
    const late = track(connect(port, '127.0.0.1'));
    expect((await errorOf(late)).code).toBe('ECONNREFUSED');
    c.write('still works');
    expect((await once<Buffer>(c, 'data')).toString()).toBe('still works');
    c.end();
    await once(server, 'close');
    expect(closed).toBe(true);
  });

  it("emits 'timeout' after idle time; destroy() then closes as TCP's close does (the peer sees the end), resetAndDestroy() resets (ECONNRESET there, no error here)", async () => {
    const { c, s } = await connected();
    c.setTimeout(150);
    await once(c, 'timeout', 5000);
    c.setTimeout(0);
    const got = collect(s);
    c.destroy();
    expect((await got).length).toBe(0);
    await once(s, 'close');

    const second = await connected();
    const err = errorOf(second.s);
    let localError: Error | undefined;
    second.c.on('error', (e: Error) => (localError = e));
    second.c.resetAndDestroy();
    expect((await err).code).toBe('ECONNRESET');
    await once(second.c, 'close');
    expect(localError).toBeUndefined();
  });

  it('destroy() with bytes received and never read resets the peer (ECONNRESET), as TCP sends RST for a close with unread data', async () => {
    const { c, s } = await connected();
    s.pause();
    const err = errorOf(c);
    c.write(Buffer.alloc(100_000, 3));
    await sleep(100);
    s.destroy();
    expect((await err).code).toBe('ECONNRESET');
  });

  it('connects from the localPort asked for, and reports EADDRINUSE when it is taken', async () => {
    const { port, next } = await serve();
    const localPort = 40000 + Math.floor(Math.random() * 20000);
    const c = track(connect({ port, host: '127.0.0.1', localPort }));
    await once(c, 'connect');
    expect(c.localPort).toBe(localPort);
    expect((await next()).remotePort).toBe(localPort);
    const d = track(connect({ port, host: '127.0.0.1', localPort }));
    expect(await errorOf(d)).toMatchObject({ code: 'EADDRINUSE' });
    expect(() => connect({ port, host: '127.0.0.1', localPort: 70000 })).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_BAD_PORT' }) as unknown as Error);
  });

  it('says EADDRNOTAVAIL, as net does, for a local or listen address no RDMA device has; transparent mode takes TCP then', async () => {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: net and SDP must fail alike.
    const nowhere = '192.0.2.1';
    const { port } = await serve();
    const how = (e: NodeJS.ErrnoException & { address?: string }) => ({ code: e.code, syscall: e.syscall, address: e.address });
    const tcpConnect = net.connect({ port, host: '127.0.0.1', localAddress: nowhere }).on('error', () => {});
    const c = track(connect({ port, host: '127.0.0.1', localAddress: nowhere }));
    const [tcpErr, err] = await Promise.all([errorOf(tcpConnect), errorOf(c)]);
    expect(how(err)).toEqual({ code: 'EADDRNOTAVAIL', syscall: 'bind', address: nowhere });
    expect(how(err)).toEqual(how(tcpErr));
    const tcpServer = net.createServer().listen(0, nowhere);
    const server = createServer();
    open.push(server);
    server.listen(0, nowhere);
    const [tcpListenErr, listenErr] = await Promise.all([errorOf(tcpServer), errorOf(server)]);
    expect(how(listenErr)).toEqual({ code: 'EADDRNOTAVAIL', syscall: 'listen', address: nowhere });
    expect(how(listenErr)).toEqual(how(tcpListenErr));
    // 127.0.0.2 is this host's (all of 127/8 is), but the soft device is on
    // 127.0.0.1 alone: the register hook's connect goes over TCP from it.
    const plain = net.createServer((s) => s.end('over tcp'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const f = track(new SdpSocket());
      f.connect({ port: (plain.address() as net.AddressInfo).port, host: '127.0.0.1', localAddress: '127.0.0.2', fallbackToTcp: true });
      const body = await collect(f);
      expect(body.toString()).toBe('over tcp');
      expect([f.transport, f.localAddress]).toEqual(['tcp', '127.0.0.2']);
    } finally {
      plain.close();
    }
  });

  it('times out over a TCP fallback as the net socket under it does: once per idle period', async () => {
    const plain = net.createServer((s) => s.resume());
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const f = track(new SdpSocket());
      let timeouts = 0;
      f.on('timeout', () => timeouts++);
      f.setTimeout(30);
      // No SDP listener on that port (the REJ comes at once): TCP takes it.
      f.connect({ port: (plain.address() as net.AddressInfo).port, host: '127.0.0.1', fallbackToTcp: true });
      await once(f, 'connect');
      expect(f.transport).toBe('tcp');
      await sleep(200);
      expect(timeouts).toBe(1);
      f.write('x');
      await sleep(200);
      expect(timeouts).toBe(2);
    } finally {
      plain.close();
    }
  });

  it('destroys the socket with an AbortError when its signal aborts, as net.Socket does', async () => {
    const { port, next } = await serve();
    const ac = new AbortController();
    const c = track(connect({ port, host: '127.0.0.1', signal: ac.signal }));
    await once(c, 'connect');
    const peer = await next();
    const peerEnd = collect(peer);
    const err = errorOf(c);
    ac.abort();
    expect(await err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(c.destroyed).toBe(true);
    // The peer sees a close, not a reset, as a TCP peer sees the FIN of net's destroy.
    expect((await peerEnd).length).toBe(0);
    // Already aborted: the socket never connects.
    const d = track(connect({ port, host: '127.0.0.1', signal: AbortSignal.abort() }));
    expect(await errorOf(d)).toMatchObject({ name: 'AbortError' });
    expect(d.connecting).toBe(false);
  });

  it('applies backpressure: write() returns false and drain follows when the reader resumes', async () => {
    const { c, s } = await connected();
    s.pause();
    const chunk = Buffer.alloc(8000, 1);
    let sent = 0;
    // Until the receiver's ring and readable buffer are full, credits keep coming back.
    for (let round = 0; round < 100; round++) {
      while (c.write(chunk)) sent += chunk.length;
      sent += chunk.length;
      await sleep(100);
      if (c.writableLength > 0) break;
    }
    expect(c.writableLength).toBeGreaterThan(0);
    // Taken from the writer: at most the receiver's ring (16 × 16 KiB), its readable buffer, and the
    // sending connection's 8 MiB send window.
    expect(sent - c.writableLength).toBeLessThanOrEqual(16 * 16384 + s.readableHighWaterMark + chunk.length + (8 << 20));
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    s.resume();
    await once(c, 'drain');
    c.end();
    await once(s, 'end');
    expect(received).toBe(sent);
  });
});

describe('SdpSocket under a random mix of stream calls', () => {
  it.each([1, 2])('echoes writes, corked batches and writes with callbacks intact while the reader pauses at random (seed %i)', async (seed) => {
    const r = seeded(seed * 0x9e3779b9);
    const size = () => (r() < 0.5 ? 1 + Math.floor(r() * 300) : r() < 0.7 ? 60_000 + Math.floor(r() * 10_000) : 1 + Math.floor(r() * 2_000_000));
    const server = createServer((s) => {
      track(s).on('error', () => {});
      s.pipe(s);
    });
    const port = await listening(server);
    const c = track(connect(port, '127.0.0.1'));
    await once(c, 'connect');
    // The reader stops now and then, and starts again a moment later.
    const parts: Buffer[] = [];
    let received = 0;
    c.on('data', (d: Buffer) => {
      parts.push(d);
      received += d.length;
      if (r() < 0.05) {
        c.pause();
        setTimeout(() => c.resume(), 1 + Math.floor(r() * 4));
      }
    });
    const sent: Buffer[] = [];
    let callbacks = 0;
    let writes = 0;
    let total = 0;
    while (total < 40 << 20) {
      const k = r();
      if (k < 0.2) {
        // A corked batch leaves as one: an HTTP head and body.
        c.cork();
        for (let i = 1 + Math.floor(r() * 5); i > 0; i--) {
          const b = randomBytes(size());
          sent.push(b);
          total += b.length;
          writes++;
          c.write(b, () => callbacks++);
        }
        process.nextTick(() => c.uncork());
      } else {
        const b = randomBytes(size());
        sent.push(b);
        total += b.length;
        writes++;
        if (!c.write(b, () => callbacks++)) await once(c, 'drain');
      }
      if (r() < 0.1) await new Promise((res) => setImmediate(res));
    }
    const ended = once(c, 'end');
    c.end();
    await ended;
    expect(received).toBe(total);
    expect(Buffer.concat(parts).equals(Buffer.concat(sent))).toBe(true);
    expect(callbacks).toBe(writes);
    expect(c.bytesWritten).toBe(total);
  });
});

describe('SdpSocket destroyed mid-stream', () => {
  it.each([1, 2, 3, 4, 5, 6])('either end destroyed at a random moment of a two-way stream: the other closes, with ECONNRESET or cleanly, and nothing hangs (seed %i)', async (seed) => {
    const r = seeded(seed * 7919);
    const { c, s } = await connected();
    s.pipe(s);
    const errors: NodeJS.ErrnoException[] = [];
    for (const x of [c, s]) {
      x.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
      x.on('data', () => {});
    }
    // 'close' whatever came before it ('error' included), within 20 s.
    const closeOf = (x: SdpSocket) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no close within 20 s')), 20_000);
        x.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
    const cClosed = closeOf(c);
    const closed = Promise.all([cClosed, closeOf(s)]);
    const victim = r() < 0.5 ? c : s;
    const after = Math.floor(r() * 40);
    for (let i = 0; i < 60 && !victim.destroyed; i++) {
      const size = r() < 0.5 ? 1 + Math.floor(r() * 2000) : 1 + Math.floor(r() * 1_500_000);
      if (i === after) victim.destroy();
      else if (!c.destroyed && !c.write(Buffer.alloc(size, i))) await Promise.race([once(c, 'drain').catch(() => {}), cClosed]);
      if (r() < 0.3) await sleep(0);
    }
    if (!victim.destroyed) victim.destroy();
    await closed;
    // Only the survivor may see an error, and only a reset.
    for (const e of errors) expect(e.code).toBe('ECONNRESET');
    expect(errors.length).toBeLessThanOrEqual(1);
  });
});

describe("Node's http over SdpSocket", () => {
  it('carries random request and response bodies (empty to 3 MB, sized or chunked) on keep-alive sockets, hash-identical', async () => {
    const r = seeded(4242);
    const bodyOf = (n: number, tag: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4096) b.fill((tag + i / 4096) & 0xff, i, Math.min(n, i + 4096));
      return b;
    };
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const hs = http.createServer((req, res) => {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on('end', () => {
        const size = Number(req.headers['x-want']);
        const body = bodyOf(size, size);
        res.setHeader('x-got', `${n}:${h.digest('hex')}`);
        // Half the responses sized, half chunked in pieces.
        if (req.headers['x-chunked']) {
          for (let at = 0; at < body.length; at += 300_001) res.write(body.subarray(at, at + 300_001));
          res.end();
        } else {
          res.setHeader('content-length', body.length);
          res.end(body);
        }
      });
    });
    const server = createServer((s) => {
      track(s).on('error', () => {});
      hs.emit('connection', s);
    });
    const port = await listening(server);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 3 });
    // The agent's sockets are SDP sockets too.
    (agent as unknown as { createConnection: (o: { port: number; host: string }) => SdpSocket }).createConnection = (o) => track(connect(o.port, o.host));
    try {
      const one = (i: number) =>
        new Promise<void>((resolve, reject) => {
          const up = r() < 0.3 ? 0 : Math.floor(r() * 3_000_000);
          const down = r() < 0.3 ? 0 : Math.floor(r() * 3_000_000);
          const body = bodyOf(up, i);
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: `/${i}`, agent, headers: { 'x-want': String(down), ...(r() < 0.5 ? { 'x-chunked': '1' } : {}) } }, (res) => {
            // Taken now: a keep-alive socket leaves the response when it ends.
            const transport = (res.socket as unknown as SdpSocket | null)?.transport;
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('end', () => {
              try {
                expect(transport).toBe('sdp');
                expect(res.headers['x-got']).toBe(`${up}:${sha(body)}`);
                expect(sha(Buffer.concat(parts))).toBe(sha(bodyOf(down, down)));
                resolve();
              } catch (e) {
                reject(e);
              }
            });
          });
          req.on('error', reject);
          // Half the request bodies in several writes.
          if (r() < 0.5) {
            for (let at = 0; at < body.length; at += 250_003) req.write(body.subarray(at, at + 250_003));
            req.end();
          } else req.end(body);
        });
      const all: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) all.push(one(i));
      await Promise.all(all);
    } finally {
      agent.destroy();
    }
  });
});

describe('SdpServer lifecycle', () => {
  it('close() during listen() leaves nothing listening', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    const closed = new Promise<void>((r) => server.close(() => r()));
    let listened = false;
    server.on('listening', () => (listened = true));
    await closed;
    await sleep(200);
    expect(listened).toBe(false);
    expect(server.listening).toBe(false);
    expect(server.address()).toBeNull();
  });
});

describe('connect errors', () => {
  const someLoopback = () => `127.0.${1 + Math.floor(Math.random() * 254)}.${2 + Math.floor(Math.random() * 250)}`;

  it('times out with ETIMEDOUT when no CM answers', async () => {
    // Something takes the datagrams at the RDMA port but never answers (as a firewall's drop looks): the REQ goes unanswered.
    const host = someLoopback();
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(4791, host, r));
    try {
      const c = track(connect({ port: 9, host, connectTimeout: 1500 }));
      const err = await errorOf(c, 20_000);
      expect(err.code).toBe('ETIMEDOUT');
      expect(err.syscall).toBe('connect');
      expect(c.destroyed).toBe(true);
    } finally {
      silent.close();
    }
  });

  it('refuses with ECONNREFUSED at once when nothing listens at the address\'s RDMA port (ICMP port unreachable), as TCP does for a closed port', async () => {
    const host = someLoopback();
    // A connect timeout far beyond the test's: only the port's refusal can end it in time.
    const c = track(connect({ port: 9, host, connectTimeout: 600_000 }));
    const err = await errorOf(c, 20_000);
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.message).toMatch(/ICMP port unreachable/);
  });
});

describe('host names, as net.connect resolves them', () => {
  type Lookup = NonNullable<Parameters<typeof connect>[0] extends infer O ? (O extends { lookup?: infer L } ? L : never) : never>;
  /** A lookup that knows one name (answering in net's `all` form or its single-address form, as asked). */
  function lookupOf(name: string, addresses: { address: string; family: number }[], asked: unknown[] = []): Lookup {
    return ((host: string, o: { all?: boolean; family?: number }, cb: (...a: unknown[]) => void) => {
      asked.push({ host, family: o.family, all: o.all });
      if (host !== name) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host }));
      if (o.all) cb(null, addresses);
      else cb(null, addresses[0]!.address, addresses[0]!.family);
    }) as unknown as Lookup;
  }

  it("connects to 'localhost' (127.0.0.1, where the soft device is)", async () => {
    const { port, next } = await serve();
    const c = track(connect(port, 'localhost'));
    await once(c, 'connect');
    expect(c.remoteAddress).toBe('127.0.0.1');
    const s = await next();
    s.end('over sdp');
    expect((await collect(c)).toString()).toBe('over sdp');
  });

  it("resolves a name with the caller's lookup, emits 'lookup' for each address and tries them in turn", async () => {
    const { port, next } = await serve();
    const asked: unknown[] = [];
    // ::1 first: no IPv6 device here, so that attempt fails at once and 127.0.0.1 is tried next.
    const c = track(connect({ port, host: 'db.example.test', family: 0, lookup: lookupOf('db.example.test', [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }], asked) }));
    const lookups: unknown[][] = [];
    c.on('lookup', (...a: unknown[]) => lookups.push(a));
    await once(c, 'connect');
    expect(asked).toEqual([{ host: 'db.example.test', family: 0, all: true }]);
    expect(lookups).toEqual([
      [null, '::1', 6, 'db.example.test'],
      [null, '127.0.0.1', 4, 'db.example.test'],
    ]);
    expect(c.transport).toBe('sdp');
    expect(c.remoteAddress).toBe('127.0.0.1');
    const s = await next();
    c.end('named');
    expect((await collect(s)).toString()).toBe('named');
  });

  it('takes a lookup that answers in the single-address form', async () => {
    const { port } = await serve();
    const single = ((host: string, _o: unknown, cb: (err: null, a: string, f: number) => void) => cb(null, '127.0.0.1', 4)) as unknown as Lookup;
    const c = track(connect({ port, host: 'one.example.test', lookup: single }));
    await once(c, 'connect');
    expect(c.remoteAddress).toBe('127.0.0.1');
  });

  it("fails with the lookup's error (ENOTFOUND) and a 'lookup' event carrying it", async () => {
    const c = track(connect({ port: 9, host: 'nowhere.example.test', lookup: lookupOf('elsewhere.example.test', []) }));
    const seen = new Promise<unknown[]>((r) => c.once('lookup', (...a: unknown[]) => r(a)));
    const err = await errorOf(c);
    expect(err.code).toBe('ENOTFOUND');
    const [lerr, address, family, host] = await seen;
    expect(lerr).toBe(err);
    expect([address, family, host]).toEqual([undefined, undefined, 'nowhere.example.test']);
  });

  it('fails at once with EHOSTUNREACH for an address of a family no device has', async () => {
    const t0 = Date.now();
    const c = track(connect({ port: 9, host: '::1' }));
    const err = await errorOf(c);
    expect(err.code).toBe('EHOSTUNREACH');
    // Not the connect timeout (10 s): the CM knows there is no route.
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('rejects a lookup that is not a function and a family other than 0, 4 or 6, as net does', () => {
    expect(() => connect({ port: 9, host: 'x.test', lookup: 'dns' as unknown as Lookup })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => connect({ port: 9, host: 'x.test', family: 5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  it('throws what net throws for bad setTimeout and listen arguments, and has bufferSize', async () => {
    const thrown = (f: () => unknown) => {
      try {
        f();
        return 'no throw';
      } catch (e) {
        return `${(e as Error).constructor.name} ${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}`;
      }
    };
    for (const v of ['x', '10', null, undefined, -1, Infinity, NaN]) {
      expect(thrown(() => new SdpSocket().setTimeout(v as number)), String(v)).toBe(thrown(() => new net.Socket().setTimeout(v as number)));
    }
    for (const o of [{}, { host: '127.0.0.1' }, { backlog: 5 }]) {
      expect(thrown(() => createServer().listen(o)), JSON.stringify(o)).toBe(thrown(() => net.createServer().listen(o)));
    }
    const { c } = await connected();
    expect([new SdpSocket().bufferSize, c.bufferSize]).toEqual([new net.Socket().bufferSize, 0]);
  });

  it('fails a socket connected again while connecting with EALREADY, later, as net does (it threw at the call)', async () => {
    const { port } = await serve();
    const tcp = net.createServer((c) => c.resume());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    try {
      const outcome = async (s: net.Socket | SdpSocket, p: number) => {
        s.connect(p, '127.0.0.1');
        return (await errorOf(s)).code;
      };
      const t = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
      const c = track(connect(port, '127.0.0.1'));
      expect(await outcome(c, port)).toBe(await outcome(t, (tcp.address() as net.AddressInfo).port));
      expect(c.destroyed).toBe(true);
      t.destroy();
    } finally {
      tcp.close();
    }
  });

  it("counts bytes write() took before the connection is up, and emits 'lookup' for localhost, as net does", async () => {
    const { port, next } = await serve();
    const events: string[] = [];
    const c = track(connect({ port, host: 'localhost' }, () => events.push('callback')));
    c.on('lookup', (err: Error | null, address: string, family: number, host: string) => events.push(`lookup ${String(err)} ${address} ${family} ${host}`));
    c.write('abc');
    c.write(Buffer.alloc(10));
    expect(c.bytesWritten).toBe(13);
    await once(c, 'connect');
    const s = await next();
    const got = collect(s);
    c.end('é');
    expect((await got).length).toBe(15);
    expect(c.bytesWritten).toBe(15);
    expect(events).toEqual(['lookup null 127.0.0.1 4 localhost', 'callback']);
  });

  it("listens on 'localhost'", async () => {
    const server = createServer((s) => track(s).on('error', () => {}).end('hi'));
    open.push(server);
    server.listen(0, 'localhost');
    await once(server, 'listening');
    expect(server.address()!.address).toBe('127.0.0.1');
    const c = track(connect(server.address()!.port, 'localhost'));
    expect((await collect(c)).toString()).toBe('hi');
  });
});
