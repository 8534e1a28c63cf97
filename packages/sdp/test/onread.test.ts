// net.Socket's onread option on SdpSocket: bytes land in the caller's buffer
// and go to its callback, with no 'data' events, in order, whatever mix of
// buffer-copy (Data) and zero-copy (SrcAvail + RDMA READ) carried them.

import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SdpServer, SdpSocket, connect, createServer, type SdpOnread } from '../src/index.js';
import { seeded } from '@ibal/tooling/seeded';
import { once, sleep } from './helpers/wait.js';

const open: (SdpSocket | SdpServer)[] = [];

afterEach(async () => {
  for (const x of open.splice(0).reverse()) {
    if (x instanceof SdpSocket) x.destroy();
    else if (x.listening) await new Promise((r) => x.close(() => r(undefined)));
  }
});

/** A server that writes `chunks` to each client, in order, then ends. */
async function source(chunks: Buffer[]): Promise<number> {
  const server = createServer((s) => {
    open.push(s);
    s.on('error', () => {});
    void (async () => {
      for (const c of chunks) if (!s.write(c)) await once(s, 'drain');
      s.end();
    })();
  });
  open.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address()!.port;
}

/** Small writes (Data messages) and large ones (SrcAvail + READ) in one stream. */
function mixed(): Buffer[] {
  const sizes = [100, 3000, 64 << 10, 7, 1 << 20, 300 << 10, 1, 5 << 20, 40_000, 2 << 20];
  return sizes.map((n) => randomBytes(n));
}

function sha(b: Buffer | Buffer[]): string {
  const h = createHash('sha256');
  for (const x of Array.isArray(b) ? b : [b]) h.update(x);
  return h.digest('hex');
}

describe('onread', () => {
  it.each([1, 2, 3])('takes a random stream (sizes on every path) into buffers of random sizes, pausing at random, in order (seed %i)', async (seed) => {
    const r = seeded(seed * 104729);
    const sizes = Array.from({ length: 120 }, () => {
      const k = r();
      return k < 0.4 ? 1 + Math.floor(r() * 300) : k < 0.7 ? 64 * 1024 - 100 + Math.floor(r() * 200) : 1 + Math.floor(r() * 2_500_000);
    });
    const chunks = sizes.map((n) => randomBytes(n));
    const port = await source(chunks);
    const buffer = Buffer.alloc(1 + Math.floor(r() * 200_000));
    const got: Buffer[] = [];
    let s: SdpSocket | undefined = undefined;
    s = connect({
      port,
      host: '127.0.0.1',
      onread: {
        buffer,
        callback: (n, buf) => {
          got.push(Buffer.from(buf.subarray(0, n)));
          if (r() > 0.03) return true;
          setTimeout(() => s!.resume(), 1 + Math.floor(r() * 3));
          return false;
        },
      },
    });
    open.push(s);
    await once(s, 'end', 60_000);
    expect(sha(got)).toBe(sha(chunks));
    expect(s.bytesRead).toBe(sizes.reduce((a, n) => a + n, 0));
  }, 90_000);


  it('copies every byte into the caller’s buffer, a buffer-full per callback, with no data events', async () => {
    const chunks = mixed();
    const port = await source(chunks);
    const buffer = Buffer.alloc(64 << 10);
    const got: Buffer[] = [];
    let largest = 0;
    let sameBuffer = true;
    const s = connect({
      port,
      host: '127.0.0.1',
      onread: {
        buffer,
        callback: (n, buf) => {
          sameBuffer &&= buf === buffer;
          largest = Math.max(largest, n);
          got.push(Buffer.from(buf.subarray(0, n)));
        },
      },
    });
    open.push(s);
    let dataEvents = 0;
    s.on('data', () => dataEvents++);
    await once(s, 'end');
    expect(dataEvents).toBe(0);
    expect(sameBuffer).toBe(true);
    expect(largest).toBe(buffer.length);
    expect(Buffer.concat(got).length).toBe(chunks.reduce((a, c) => a + c.length, 0));
    expect(sha(got)).toBe(sha(chunks));
    expect(s.bytesRead).toBe(Buffer.concat(got).length);
  }, 60_000);

  it('pauses when the callback returns false and goes on, in order, at resume()', async () => {
    const chunks = mixed();
    const port = await source(chunks);
    const got: Buffer[] = [];
    let calls = 0;
    const s = connect({
      port,
      host: '127.0.0.1',
      onread: {
        buffer: Buffer.alloc(1 << 20),
        callback: (n, buf) => {
          calls++;
          got.push(Buffer.from(buf.subarray(0, n)));
          // Stop after the first and the fifth chunk.
          return calls !== 1 && calls !== 5;
        },
      },
    });
    open.push(s);
    const ended = once(s, 'end');
    for (const stopAt of [1, 5]) {
      const t0 = Date.now();
      while (calls < stopAt && Date.now() - t0 < 10_000) await sleep(5);
      expect(calls).toBe(stopAt);
      // Stopped: nothing more arrives while nobody resumes.
      await sleep(150);
      expect(calls).toBe(stopAt);
      s.resume();
    }
    await ended;
    expect(sha(got)).toBe(sha(chunks));
  }, 60_000);

  it('takes each next buffer from a function, and pause() stops the callback', async () => {
    const chunks = mixed();
    const port = await source(chunks);
    const pool = [Buffer.alloc(4096), Buffer.alloc(300 << 10), Buffer.alloc(1 << 20)];
    let k = 0;
    const handed: Uint8Array[] = [];
    const got: Buffer[] = [];
    const onread: SdpOnread = {
      buffer: () => pool[k++ % pool.length]!,
      callback: (n, buf) => {
        handed.push(buf);
        got.push(Buffer.from(buf.subarray(0, n)));
      },
    };
    const s = connect({ port, host: '127.0.0.1', onread });
    open.push(s);
    const ended = once(s, 'end');
    s.pause();
    await sleep(200);
    expect(got.length).toBe(0);
    s.resume();
    await ended;
    expect(sha(got)).toBe(sha(chunks));
    // The buffers came from the function, in turn.
    expect(handed.length).toBeGreaterThanOrEqual(6);
    for (let i = 0; i < 6; i++) expect(handed[i]).toBe(pool[i % pool.length]);
  }, 60_000);

  it('rejects a malformed onread as net.Socket does', () => {
    const bad = [{ buffer: 'x', callback: () => {} }, { buffer: Buffer.alloc(8) }, { buffer: Buffer.alloc(0), callback: () => {} }, { buffer: () => 'x', callback: () => {} }];
    for (const onread of bad) {
      expect(() => new SdpSocket({ onread: onread as unknown as SdpOnread })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }) as unknown as Error);
    }
  });
});
