import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SdpConnection, type ConnectionOptions } from '../src/connection.js';
import { Collector } from './helpers/collector.js';
import { qpPair, type QpPair } from './helpers/qp-pair.js';
import { seeded } from '@ibal/tooling/seeded';

const OPTS: ConnectionOptions = { rxBufs: 8, rxBufSize: 4096, txBufs: 8, zcopyThreshold: 32 * 1024 };

let pair: QpPair | undefined;
const conns: SdpConnection[] = [];

afterEach(() => {
  for (const c of conns) c.close();
  pair?.destroy();
  for (const c of conns.splice(0)) c.releaseMemory();
  pair?.dealloc();
  pair = undefined;
});

async function setup(opts = OPTS) {
  pair = await qpPair();
  const sa = new Collector();
  const sb = new Collector();
  const a = new SdpConnection(pair.a, sa, opts);
  const b = new SdpConnection(pair.b, sb, opts);
  conns.push(a, b);
  a.start({ bufs: b.postedReceives, rcvSz: opts.rxBufSize });
  b.start({ bufs: a.postedReceives, rcvSz: opts.rxBufSize });
  return { a, b, sa, sb };
}

describe('SDP data path over a QP pair', () => {
  it('moves small writes buffer-copy and large ones zero-copy, in order, byte-exact', async () => {
    const { a, b, sa, sb } = await setup();
    const parts = [randomBytes(1), randomBytes(100), randomBytes(5000), randomBytes(200_000), randomBytes(3), randomBytes(40_000), randomBytes(4080)];
    const all = Buffer.concat(parts);
    let done = 0;
    for (const p of parts) a.write(p, () => done++);
    await sb.until(() => sb.bytes === all.length);
    expect(Buffer.concat(sb.chunks).equals(all)).toBe(true);
    expect(done).toBe(parts.length);
    // A write taken by SrcAvail + RDMA READ arrives as one buffer (in-line bytes and READ together).
    expect(sb.chunks.some((c) => c.length === 200_000)).toBe(true);
    b.write(Buffer.from('back'));
    await sa.until(() => sa.bytes === 4);
    expect(a.bytesWritten).toBe(all.length);
    expect(b.bytesRead).toBe(all.length);
  });

  it('pipelines writes larger than the send window through several SrcAvails, byte-exact', async () => {
    const { a, sb } = await setup();
    // 24 MiB in 1.5 MiB writes: three times the 8 MiB window, so RdmaRdCompl must free it as the sink reads.
    const parts = Array.from({ length: 16 }, () => randomBytes(3 << 19));
    const want = createHash('sha256');
    for (const p of parts) want.update(p);
    let done = 0;
    for (const p of parts) a.write(p, () => done++);
    // A write completes once copied into the window, before the peer has read it.
    expect(done).toBeGreaterThan(0);
    const total = parts.length * (3 << 19);
    await sb.until(() => sb.bytes === total, 60_000);
    expect(createHash('sha256').update(Buffer.concat(sb.chunks)).digest('hex')).toBe(want.digest('hex'));
    expect(done).toBe(parts.length);
    // Each READ lands in a buffer that goes up as it is: large chunks, not TCP's 64 KiB, and at
    // most a READ piece of 1 MiB with a short tail (a quarter more) and a SrcAvail's in-line bytes.
    const largest = Math.max(...sb.chunks.map((c) => c.length));
    expect(largest).toBeGreaterThan(1 << 19);
    expect(largest).toBeLessThanOrEqual((1 << 20) + (1 << 18) + 512);
  });

  it('keeps the stream in order across window wraps, with small writes between large ones', async () => {
    const { a, sb } = await setup();
    // Sizes chosen so the window wraps at odd offsets (its skipped tail included) many times.
    const sizes = [70_001, 3_000_017, 5, 2_500_003, 1_048_577, 4096, 3_999_999, 65_536, 17, 2_222_223, 1_234_567, 3_333_331, 900, 2_000_000];
    // The first write stops 1000 bytes short of the 8 MiB window's end: too short a tail for the next.
    const parts: Buffer[] = [randomBytes((8 << 20) - 1000)];
    for (let round = 0; round < 3; round++) for (const n of sizes) parts.push(randomBytes(n));
    const total = parts.reduce((n, p) => n + p.length, 0);
    for (const p of parts) a.write(p);
    await sb.until(() => sb.bytes === total, 60_000);
    expect(Buffer.concat(sb.chunks).equals(Buffer.concat(parts))).toBe(true);
  });

  it('stops READing while the reader is paused and delivers everything on resume', async () => {
    const { a, b, sb } = await setup();
    sb.accept = false;
    const parts = Array.from({ length: 6 }, () => randomBytes(1 << 20));
    for (const p of parts) a.write(p);
    await sb.until(() => sb.chunks.length > 0);
    await new Promise((r) => setTimeout(r, 300));
    // One buffer handed up before the pause; the rest waits in the window and in READs already landed.
    expect(sb.chunks.length).toBe(1);
    expect(sb.bytes).toBeLessThan(6 << 20);
    sb.accept = true;
    b.resume();
    await sb.until(() => sb.bytes === 6 << 20);
    expect(Buffer.concat(sb.chunks).equals(Buffer.concat(parts))).toBe(true);
  });

  it('half-closes with DisConn in each direction and finishes when both are sent', async () => {
    const { a, b, sa, sb } = await setup();
    a.write(Buffer.from('last words'));
    a.end();
    await sb.until(() => sb.ended);
    expect(Buffer.concat(sb.chunks).toString()).toBe('last words');
    // b can still send after a's half-close.
    b.write(Buffer.from('reply after DisConn'));
    await sa.until(() => sa.bytes > 0);
    expect(sa.ended).toBe(false);
    b.end();
    await sa.until(() => sa.ended && sa.finishedFlag);
    await sb.until(() => sb.finishedFlag);
  });

  it('keeps returning credits after its own DisConn: the peer\'s many small writes all arrive', async () => {
    const { a, b, sa, sb } = await setup();
    a.end();
    await sb.until(() => sb.ended);
    // Far more Data messages than a's 8 receive buffers: each credit b spends must come back from a.
    const chunk = randomBytes(1000);
    for (let i = 0; i < 2000; i++) b.write(chunk);
    b.end();
    await sa.until(() => (sa.bytes === 2_000_000 && sa.ended && sa.finishedFlag) || sa.error !== undefined, 20_000);
    expect(sa.error).toBeUndefined();
    expect(Buffer.concat(sa.chunks).equals(Buffer.concat(Array.from({ length: 2000 }, () => chunk)))).toBe(true);
  });

  it('finishes when its last send is an RdmaRdCompl that follows its own DisConn', async () => {
    const { a, b, sa, sb } = await setup();
    a.end();
    await sb.until(() => sb.ended);
    // b's large reply goes zero-copy: a READs it and owes an RdmaRdCompl after its DisConn.
    const reply = randomBytes(100_000);
    b.write(reply);
    b.end();
    await sa.until(() => sa.ended && sa.finishedFlag);
    await sb.until(() => sb.finishedFlag);
    expect(Buffer.concat(sa.chunks).equals(reply)).toBe(true);
    expect(await a.settle(60_000)).toBe(true);
  });

  it('settles for a graceful close with only the end of stream unread, and refuses with bytes unread (TCP resets then)', async () => {
    const { a, b, sa, sb } = await setup();
    // Each receiver stops at its first chunk: what follows stays queued.
    sa.accept = false;
    sb.accept = false;
    a.write(Buffer.from('one'));
    await sb.until(() => sb.chunks.length === 1);
    a.end(); // b: only the end of stream is left unread
    b.write(Buffer.from('x'));
    b.write(Buffer.from('y'));
    await sa.until(() => sa.chunks.length === 1);
    b.end(); // a: a byte and the end of stream unread
    expect(await b.settle(60_000)).toBe(true);
    expect(sb.ended).toBe(false);
    expect(await a.settle(60_000)).toBe(false);
  });

  it('stops the sender through credits when the receiver stops taking data, and loses nothing', async () => {
    const { a, b, sb } = await setup();
    sb.accept = false;
    const chunk = randomBytes(3000);
    // 12 MB: more than the sender's 8 MiB window can take while the receiver takes nothing.
    const n = 4000;
    let acked = 0;
    for (let i = 0; i < n; i++) a.write(chunk, () => acked++);
    await sb.until(() => sb.chunks.length > 0);
    await new Promise((r) => setTimeout(r, 300));
    // The receiver holds the one chunk it was handed plus a ring of 8; the sender's window holds what
    // it could take (those writes completed), and the rest of the writes wait.
    expect(sb.chunks.length).toBe(1);
    expect(acked).toBeGreaterThan(0);
    expect(acked).toBeLessThan(n);
    sb.accept = true;
    const h = createHash('sha256');
    for (let i = 0; i < n; i++) h.update(chunk);
    b.resume();
    await sb.until(() => sb.bytes === n * chunk.length, 60_000);
    expect(createHash('sha256').update(Buffer.concat(sb.chunks)).digest('hex')).toBe(h.digest('hex'));
    expect(acked).toBe(n);
  });

  it('streams both ways at once without a credit deadlock', async () => {
    const { a, b, sa, sb } = await setup({ ...OPTS, rxBufs: 4, txBufs: 2 });
    const x = randomBytes(1000);
    for (let i = 0; i < 500; i++) {
      a.write(x);
      b.write(x);
    }
    await sa.until(() => sa.bytes === 500_000);
    await sb.until(() => sb.bytes === 500_000);
  });

  it.each([1, 2, 3, 118])('keeps both streams whole, and half-closes both, under random write sizes and readers that pause at random (seed %i)', async (seed) => {
    const r = seeded(seed);
    const { a, b, sa, sb } = await setup();
    // Sizes on every path: tiny Data messages, around the zero-copy threshold and an SrcAvail's
    // in-line bytes, around the 64 KiB direct READ size, and several MiB (window wraps).
    const size = () => {
      const k = r();
      if (k < 0.35) return 1 + Math.floor(r() * 200);
      if (k < 0.6) return 32 * 1024 - 100 + Math.floor(r() * 200);
      if (k < 0.85) return 64 * 1024 - 50 + Math.floor(r() * 200);
      return 1 + Math.floor(r() * 3_500_000);
    };
    const streams = [
      { from: a, to: b, sink: sb, parts: [] as Buffer[] },
      { from: b, to: a, sink: sa, parts: [] as Buffer[] },
    ];
    for (const s of streams) {
      let total = 0;
      while (total < 24 << 20) {
        const p = randomBytes(size());
        s.parts.push(p);
        total += p.length;
      }
    }
    // Each reader refuses at random moments and is resumed a little later.
    const timers = new Set<NodeJS.Timeout>();
    for (const s of streams) {
      const sink = s.sink;
      const take = sink.data.bind(sink);
      sink.data = (c: Buffer) => {
        take(c);
        if (r() > 0.02) return true;
        const t = setTimeout(() => {
          timers.delete(t);
          s.to.resume();
        }, 1 + Math.floor(r() * 5));
        timers.add(t);
        return false;
      };
    }
    // Writers interleave, in random runs, while both readers read; each half-closes (DisConn) after
    // its last write, while the other direction may still be sending, READing and owing RdmaRdCompls.
    const next = streams.map(() => 0);
    while (next.some((n, i) => n < streams[i]!.parts.length)) {
      const i = r() < 0.5 ? 0 : 1;
      const s = streams[i]!;
      if (next[i]! === s.parts.length) continue;
      for (let k = 1 + Math.floor(r() * 4); k > 0 && next[i]! < s.parts.length; k--) s.from.write(s.parts[next[i]!++]!);
      if (next[i]! === s.parts.length) s.from.end();
      if (r() < 0.2) await new Promise((res) => setImmediate(res));
    }
    try {
      for (const s of streams) {
        const want = Buffer.concat(s.parts);
        const failed = () => streams.some((x) => x.sink.error);
        await s.sink.until(() => (s.sink.bytes === want.length && s.sink.ended && s.sink.finishedFlag) || failed(), 30_000);
        expect(streams.map((x) => x.sink.error?.message)).toEqual([undefined, undefined]);
        expect(Buffer.concat(s.sink.chunks).equals(want)).toBe(true);
      }
      // Both DisConns went and came back: each side finished, with nothing unread and nothing unsent.
      expect([sa.finishedFlag, sb.finishedFlag]).toEqual([true, true]);
    } finally {
      for (const t of timers) clearTimeout(t);
    }
  });

  it('reports AbortConn as ECONNRESET', async () => {
    const { a, sb } = await setup();
    await a.abort();
    await sb.until(() => sb.error !== undefined);
    expect((sb.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
  });
});
