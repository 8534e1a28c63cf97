import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { seeded } from '@ibal/tooling/seeded';
import { InvalidArgumentError, ResourceClosedError } from '../src/errors.js';
import { SysCallError } from '../src/sys/errors.js';
import { ShmRing } from '../src/sys/ring.js';
import { sameHostKey } from '../src/sys/host.js';
import { ShmSegment, sweepStaleSegments } from '../src/sys/shm.js';
import { sys } from '../src/sys/load.js';
import { sysStatus } from '../src/sys/status.js';
import { SysChild } from './helpers/sys-child.js';

const skip = !sysStatus().shm.on && process.env.IBAL_NATIVE_REQUIRED !== '1';
const children: SysChild[] = [];
const segments: ShmSegment[] = [];
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  segments.forEach((s) => s.close());
});

const shmPath = (name: string) => `/dev/shm/${name.slice(1)}`;

describe.skipIf(skip)('ShmSegment', () => {
  it('is shared between two mappings, and the creator unlinks its name on close', () => {
    const a = ShmSegment.create(1 << 16);
    const b = ShmSegment.open(a.name);
    expect(b.size).toBe(1 << 16);
    new Uint8Array(a.buffer)[1234] = 99;
    expect(new Uint8Array(b.buffer)[1234]).toBe(99);
    expect(a.name).toMatch(new RegExp(`^/ibal-${process.pid}-`));
    expect(fs.existsSync(shmPath(a.name))).toBe(true);
    const view = new Uint8Array(a.buffer);
    a.close();
    expect(fs.existsSync(shmPath(a.name))).toBe(false);
    // Closing unmaps: old views see nothing rather than freed memory.
    expect(view.length).toBe(0);
    expect(() => a.buffer).toThrow(ResourceClosedError);
    // The other mapping still holds the memory after the name is gone.
    expect(new Uint8Array(b.buffer)[1234]).toBe(99);
    b.close();
    expect(() => ShmSegment.open(a.name)).toThrow(SysCallError);
  });

  it('gives its memory back when closed, not when a GC collects the buffer', () => {
    // Node runs an external buffer's finalizer only at collection: a closed
    // segment kept its pages, and a loop of large ones filled the machine.
    // Measured as this process's resident shared memory, which other tests'
    // processes do not move.
    const rss = () => Number(/RssShmem:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
    const size = 256 << 20;
    const slack = 64 << 20;
    const seg = ShmSegment.create(size);
    const view = new Uint8Array(seg.buffer);
    view.fill(1);
    const touched = rss();
    seg.close();
    expect(view.length).toBe(0);
    expect(touched - rss()).toBeGreaterThan(size - slack);
    // A memfd mapping (an MR's shared memory) likewise, while a view of the old buffer is still referenced.
    const m = sys().memfdMap(size);
    const keep = new Uint8Array(m.buffer);
    keep.fill(1);
    const filled = rss();
    sys().detach(m.buffer);
    expect(filled - rss()).toBeGreaterThan(size - slack);
    expect(keep.length).toBe(0);
  });

  it('refuses a mapping over 4 GiB with a typed error before allocating it (Node would free it twice and abort)', () => {
    expect(() => ShmSegment.create(2 ** 32 + 4096)).toThrow(InvalidArgumentError);
    expect(() => sys().memfdMap(2 ** 32 + 64)).toThrow(RangeError);
    const m = sys().memfdMap(4096);
    expect(m.buffer.byteLength).toBe(4096);
    sys().detach(m.buffer);
  });

  it('sweeps the segment of a creator that was killed', async () => {
    const child = new SysChild('shm-creator');
    children.push(child);
    const { name } = await child.next<{ name: string }>('ready');
    expect(name).toMatch(new RegExp(`^/ibal-${child.pid}-`));
    expect(fs.existsSync(shmPath(name))).toBe(true);
    // A live creator's segment is not touched.
    expect(sweepStaleSegments()).not.toContain(name);
    await child.kill();
    expect(sweepStaleSegments()).toContain(name);
    expect(fs.existsSync(shmPath(name))).toBe(false);
  });
});

describe.skipIf(skip)('ShmRing', () => {
  it('keeps order, framing and 8-byte alignment, and wraps', () => {
    const seg = ShmSegment.create(ShmRing.bytesFor(1024));
    segments.push(seg);
    const p = ShmRing.create(seg.buffer, 0, 1024);
    const c = ShmRing.attach(seg.buffer, 0);
    expect(p.maxMessage).toBe(504);
    for (const bad of [505, -1, 1.5, NaN, undefined, '8']) expect(() => p.reserve(bad as number)).toThrow(InvalidArgumentError);
    // Anything with a length used to go in as that many garbage bytes (a string, an array) or throw a TypeError.
    for (const bad of ['abc', [1, 2], { length: 3 }, 5, null, undefined]) expect(() => p.tryWrite(bad as Uint8Array)).toThrow(InvalidArgumentError);
    for (const bad of ['1024', 1000, -1, 1.5]) expect(() => ShmRing.bytesFor(bad as number)).toThrow(InvalidArgumentError);
    const out = new Uint8Array(600);
    for (let round = 0; round < 50; round++) {
      const sizes = [0, 1, 7, 8, 9, 100 + round, 300];
      let written = 0;
      for (const [i, n] of sizes.entries()) {
        if (!p.tryWrite(new Uint8Array(n).fill((round + i) & 0xff), round * 10 + i)) break;
        written++;
      }
      expect(written).toBeGreaterThan(0);
      for (let i = 0; i < written; i++) {
        const len = c.peek();
        expect(len).toBe(sizes[i]);
        expect(c.offset % 8).toBe(0);
        expect(c.tag).toBe(round * 10 + i);
        c.release();
      }
      expect(c.read(out)).toBe(-1);
    }
    p.close('producer');
    expect(c.peerClosed).toBe(true);
    c.close('consumer');
  });

  it('lives in a SharedArrayBuffer too (threads), and refuses memory that is not a buffer', () => {
    const sab = new SharedArrayBuffer(ShmRing.bytesFor(1024));
    const p = ShmRing.create(sab, 0, 1024);
    const c = ShmRing.attach(sab, 0);
    expect(p.tryWrite(Uint8Array.of(1, 2, 3), 9)).toBe(true);
    p.dataBell.ring();
    const out = new Uint8Array(8);
    expect([c.read(out), c.tag, ...out.subarray(0, 3)]).toEqual([3, 9, 1, 2, 3]);
    p.close('producer');
    c.close('consumer');
    for (const bad of [null, undefined, new Uint8Array(2048), 'x']) {
      expect(() => ShmRing.create(bad as unknown as ArrayBuffer, 0, 1024)).toThrow(InvalidArgumentError);
      expect(() => ShmRing.attach(bad as unknown as ArrayBuffer, 0)).toThrow(InvalidArgumentError);
    }
    for (const off of [-64, 1.5, NaN, -(2 ** 31)]) expect(() => ShmRing.attach(sab, off)).toThrow(InvalidArgumentError);
    // null options are no options, as elsewhere.
    const seg = ShmSegment.create(4096, null);
    expect(seg.size).toBe(4096);
    seg.close();
  });

  it('never takes payload bytes for a header: the consumer reads only published headers, lap after lap', () => {
    // The consumer finds messages by their stamped headers, not by the
    // producer's index. Payloads here are nothing but would-be headers
    // (stamp bit set, either lap parity, a plausible length), and the sizes
    // shift every lap so that headers land where payloads lay before.
    const cap = 1024;
    const seg = ShmSegment.create(ShmRing.bytesFor(cap));
    segments.push(seg);
    const p = ShmRing.create(seg.buffer, 0, cap);
    const c = ShmRing.attach(seg.buffer, 0);
    const forged = (n: number, k: number) => {
      const m = new Uint8Array(n);
      const v = new DataView(m.buffer);
      for (let i = 0; i + 4 <= n; i += 4) v.setUint32(i, (k + i) & 4 ? 0xc0000008 : 0x80000010, true);
      return m;
    };
    let tag = 0;
    let taken = 0;
    for (let lap = 0; lap < 200; lap++) {
      const sizes = [4 + (lap % 13) * 4, 100 + (lap % 7) * 8, 36, 252 - (lap % 5) * 4];
      const sent: Uint8Array[] = [];
      for (const n of sizes) {
        const m = forged(n, lap + n);
        if (!p.tryWrite(m, tag + sent.length)) break;
        sent.push(m);
      }
      expect(sent.length).toBeGreaterThan(0);
      // Half now, the rest after a look at the empty ring between messages.
      for (let i = 0; i < sent.length; i++) {
        expect(c.isEmpty()).toBe(false);
        const len = c.peek();
        expect(len).toBe(sent[i]!.length);
        expect(c.tag).toBe(tag + i);
        expect(Buffer.compare(c.data.subarray(c.offset, c.offset + len), sent[i]!)).toBe(0);
        c.release();
        taken++;
      }
      expect(c.peek()).toBe(-1);
      expect(c.isEmpty()).toBe(true);
      tag += sent.length;
    }
    expect(taken).toBe(tag);
    expect(taken).toBeGreaterThan(400); // many laps of a 1 KiB ring
    p.close('producer');
    c.close('consumer');
  });

  it('finds the first message whatever the buffer held before the ring was laid out', () => {
    const cap = 256;
    const seg = ShmSegment.create(ShmRing.bytesFor(cap));
    segments.push(seg);
    // Garbage that reads as a published header of lap 0 at the first slot.
    new Uint32Array(seg.buffer).fill(0x80000008);
    const p = ShmRing.create(seg.buffer, 0, cap);
    const c = ShmRing.attach(seg.buffer, 0);
    expect(c.peek()).toBe(-1);
    expect(c.isEmpty()).toBe(true);
    expect(p.tryWrite(Uint8Array.of(1, 2, 3), 7)).toBe(true);
    expect(c.peek()).toBe(3);
    expect(c.tag).toBe(7);
    c.release();
    expect(c.peek()).toBe(-1);
    p.close('producer');
    c.close('consumer');
  });

  it('moves thousands of random-sized messages to another process and back intact', async () => {
    const cap = 1 << 16;
    const ring1 = ShmRing.bytesFor(cap);
    const seg = ShmSegment.create(2 * ring1);
    segments.push(seg);
    const tx = ShmRing.create(seg.buffer, 0, cap);
    const rx = ShmRing.create(seg.buffer, ring1, cap);
    const child = new SysChild('ring-echo', { SYS_SHM: seg.name, SYS_RING1: String(ring1) });
    children.push(child);
    await child.next('ready');

    // The same messages on every run, no Math.random.
    const rand = seeded(0x1ba1);
    const N = 3000;
    const msgs: Uint8Array[] = [];
    for (let i = 0; i < N; i++) {
      const r = rand();
      const len = r < 0.1 ? 0 : r < 0.6 ? Math.floor(rand() * 64) : r < 0.95 ? Math.floor(rand() * 4096) : Math.floor(rand() * tx.maxMessage);
      const m = new Uint8Array(len);
      for (let j = 0; j < len; j++) m[j] = (rand() * 256) | 0;
      msgs.push(m);
    }
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256');
    for (const m of msgs) {
      const l = new Uint8Array(4);
      new DataView(l.buffer).setUint32(0, m.length);
      hash.update(l).update(m);
    }

    let sent = 0;
    let echoed = 0;
    const deadline = Date.now() + 50_000;
    while (echoed < N) {
      expect(Date.now()).toBeLessThan(deadline);
      let progress = false;
      while (sent < N && tx.tryWrite(msgs[sent]!, sent)) {
        sent++;
        progress = true;
      }
      for (let len = rx.peek(); len >= 0; len = rx.peek()) {
        const i = rx.tag;
        expect(i).toBe(echoed);
        expect(len).toBe(msgs[i]!.length);
        expect(Buffer.compare(rx.data.subarray(rx.offset, rx.offset + len), msgs[i]!)).toBe(0);
        rx.release();
        echoed++;
        progress = true;
      }
      if (!progress) await rx.waitData(20);
    }
    tx.close('producer');
    const done = await child.next<{ count: number; hash: string }>('done');
    expect(done.count).toBe(N);
    expect(done.hash).toBe(hash.digest('hex'));
    rx.close('consumer');
  });
});

describe('sameHostKey', () => {
  // Processes that see different /dev/shm mounts (containers on the host's network and PIDs but
  // not its IPC) cannot open each other's segments: they are not one host's to share memory.
  const unshare = typeof process.getuid === 'function' && process.getuid() === 0 && spawnSync('unshare', ['-m', 'true'], { timeout: 10_000 }).status === 0;
  it.skipIf(!unshare)('differs in a process with a /dev/shm of its own, and only there', () => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const code = `const { sameHostKey } = await import(${JSON.stringify(dist)}); console.log(sameHostKey());`;
    const key = (own: boolean): string => {
      const sh = `${own ? 'mount -t tmpfs tmpfs /dev/shm && ' : ''}exec "$0" --input-type=module -e "$1"`;
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', sh, process.execPath, code], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    expect(key(false)).toBe(sameHostKey());
    expect(key(true)).not.toBe(sameHostKey());
    expect(key(true).split('/').slice(0, 3)).toEqual(sameHostKey()!.split('/').slice(0, 3));
  });
});
