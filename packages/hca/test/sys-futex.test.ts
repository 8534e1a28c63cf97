import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ResourceClosedError } from '../src/errors.js';
import { Doorbell } from '../src/sys/doorbell.js';
import { ShmSegment } from '../src/sys/shm.js';
import { sysStatus } from '../src/sys/status.js';
import { SysChild } from './helpers/sys-child.js';

const skip = !sysStatus().futex.on && process.env.IBAL_NATIVE_REQUIRED !== '1';
const children: SysChild[] = [];
const cleanup: { close(): void }[] = [];
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  cleanup.reverse().forEach((c) => c.close());
});

function segment(): ShmSegment {
  const s = ShmSegment.create(4096);
  cleanup.push(s);
  return s;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(skip)('Doorbell (futex)', () => {
  it.each(['pipe', 'futex'])('is woken by another process while the event loop keeps running (%s)', async (mode) => {
    const saved = process.env.IBAL_WAKE;
    process.env.IBAL_WAKE = mode;
    try {
      await wokenAcrossProcesses();
    } finally {
      if (saved === undefined) delete process.env.IBAL_WAKE;
      else process.env.IBAL_WAKE = saved;
    }
  });

  async function wokenAcrossProcesses(): Promise<void> {
    const seg = segment();
    const bell = new Doorbell(seg.buffer, 64);
    cleanup.push(bell);
    const child = new SysChild('waker', { SYS_SHM: seg.name, SYS_OFFSET: '64' });
    children.push(child);
    await child.next('ready');
    const seen = bell.seq();
    let settled = false;
    const wait = bell.wait(seen, 30_000).finally(() => (settled = true));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    try {
      // The wait sleeps in the kernel (the loop's pipe, or a futex thread); timers still fire here.
      await until(() => ticks >= 10, 20_000);
      expect(settled).toBe(false);
      child.send({ ring: true });
      expect(await wait).toBe('ok');
      expect(bell.seq()).not.toBe(seen);
    } finally {
      clearInterval(timer);
    }
    // A second wait on the same doorbell, woken again.
    const again = bell.wait(bell.seq(), 30_000);
    child.send({ ring: true });
    expect(await again).toBe('ok');
  }

  // A waker process on the doorbell at byte 128 of `seg`; `bell` (there too)
  // waits for three of its rings with waitSync.
  async function wakerRingsThrice(seg: ShmSegment, bell: Doorbell): Promise<SysChild> {
    const child = new SysChild('waker', { SYS_SHM: seg.name, SYS_OFFSET: '128' });
    children.push(child);
    await child.next('ready');
    for (let i = 0; i < 3; i++) {
      const seen = bell.seq();
      child.send({ ring: true });
      expect(bell.waitSync(seen, 20_000)).toBe('ok');
      expect(bell.seq()).not.toBe(seen);
      await child.next('rang');
    }
    return child;
  }

  it('blocking waitSync returns when another process rings', async () => {
    const seg = segment();
    const bell = new Doorbell(seg.buffer, 128);
    cleanup.push(bell);
    await wakerRingsThrice(seg, bell);
  });

  it('waitSync with yieldNs: a ring from another process during the yield, one after it (asleep), and a timeout inside it', async () => {
    const seg = segment();
    // No spin: every wait starts yielding the CPU.
    const bell = new Doorbell(seg.buffer, 128, { maxSpinNs: 0, yieldNs: 50_000_000 });
    cleanup.push(bell);
    const child = await wakerRingsThrice(seg, bell);
    // The timeout bounds the yielding too.
    const t0 = performance.now();
    expect(bell.waitSync(bell.seq(), 30)).toBe('timed-out');
    expect(performance.now() - t0).toBeLessThan(10_000);
    // A short yield, then the sleep, which the ring ends.
    const brief = new Doorbell(seg.buffer, 128, { maxSpinNs: 0, yieldNs: 1000 });
    cleanup.push(brief);
    const seen = brief.seq();
    child.send({ ring: true, delayMs: 50 });
    expect(brief.waitSync(seen, 20_000)).toBe('ok');
    await child.next('rang');
  });

  it('times out, returns at once when already rung, and cancels', async () => {
    const seg = segment();
    const bell = new Doorbell(seg.buffer, 0, { maxSpinNs: 10_000 });
    cleanup.push(bell);
    expect(await bell.wait(bell.seq(), 30)).toBe('timed-out');
    expect(bell.waitSync(bell.seq(), 30)).toBe('timed-out');
    const seen = bell.seq();
    bell.ring();
    expect(await bell.wait(seen, 30_000)).toBe('ok');
    expect(bell.waitSync(seen, 30_000)).toBe('ok');
    const p = bell.wait(bell.seq(), 30_000);
    expect(() => bell.wait(bell.seq(), 10)).toThrow(InvalidArgumentError);
    bell.cancel();
    expect(await p).toBe('cancelled');
    const q = bell.wait(bell.seq(), 30_000);
    bell.close();
    expect(await q).toBe('cancelled');
    expect(() => bell.wait(0, 10)).toThrow(ResourceClosedError);
  });

  it('a process that exits while its asynchronous waits finish exits cleanly (no std::terminate)', async () => {
    for (let i = 0; i < 24; i++) {
      const c = new SysChild('exit-racer', { SYS_SPIN_MS: String(i % 4) });
      children.push(c);
      const code = await Promise.race([c.exited, new Promise<string>((r) => setTimeout(() => r('hung'), 20_000))]);
      expect(c.stderr).not.toMatch(/terminate|Napi::Error|Abort/);
      expect(code).toBe(0);
    }
  });

  it('kicks only a pipe: a sleeper slot naming another kind of file (a dead sleeper whose pid was reused) gets nothing written', () => {
    const seg = segment();
    const bell = new Doorbell(seg.buffer, 64);
    cleanup.push(bell);
    const file = path.join(os.tmpdir(), `ibal-kick-${process.pid}-${Date.now()}`);
    const fd = fs.openSync(file, 'w+');
    try {
      // The words a pipe sleeper publishes (a sleeper waits, its pid, its pipe's write end), here naming a regular file.
      const w = new Int32Array(seg.buffer, 64, 5);
      Atomics.store(w, 3, process.pid);
      Atomics.store(w, 4, fd);
      Atomics.store(w, 2, 1);
      bell.ring();
      expect(Atomics.load(w, 2)).toBe(0); // the ringer took the kick
      expect(fs.fstatSync(fd).size).toBe(0);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    }
  });

  it.each(['pipe', 'futex'])('an unref()d asynchronous wait does not keep the process alive; a ref()d one does (%s)', (mode) => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const run = (ref: boolean) => {
      const code = `const { Doorbell } = await import(${JSON.stringify(dist)}); const bell = new Doorbell(new ArrayBuffer(4096), 64); bell.ref = ${ref}; bell.wait(bell.seq(), -1).then((o) => console.log('woken', o)); console.log('waiting');`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { timeout: 3000, killSignal: 'SIGKILL', encoding: 'utf8', env: { ...process.env, IBAL_WAKE: mode } });
      return { status: r.status, signal: r.signal, stdout: r.stdout };
    };
    const kept = run(true);
    expect(kept.stdout).toContain('waiting');
    expect(kept.signal).toBe('SIGKILL');
    const let_go = run(false);
    expect(let_go.stdout).toContain('waiting');
    expect([let_go.status, let_go.signal]).toEqual([0, null]);
  });

  it('an asynchronous wait in a process out of descriptors polls instead of ending the process; the addon names EMFILE', () => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const addonPath = new URL('../native/sys/build/Release/ibal_sys.node', import.meta.url).pathname;
    // Every descriptor taken, then: a ring from a timer ends a wait, a wait nobody rings times
    // out, a cancelled one is cancelled, and once descriptors are back a wait gets its pipe again.
    const code = `
      import fs from 'node:fs';
      import { createRequire } from 'node:module';
      const { Doorbell } = await import(${JSON.stringify(dist)});
      const addon = createRequire(import.meta.url)(${JSON.stringify(addonPath)});
      const held = [];
      for (let i = 0; i < 100000; i++) { try { held.push(fs.openSync('/dev/null', 'r')); } catch { break; } }
      let code;
      try { new addon.WakePipe(() => {}); } catch (e) { code = e.code; }
      const bell = new Doorbell(new ArrayBuffer(4096), 64);
      const out = [code];
      setTimeout(() => bell.ring(), 30);
      out.push(await bell.wait(bell.seq(), 5000));
      out.push(await bell.wait(bell.seq(), 30));
      const c = bell.wait(bell.seq(), -1);
      setTimeout(() => bell.cancel(), 10);
      out.push(await c);
      for (const fd of held) fs.closeSync(fd);
      setTimeout(() => bell.ring(), 30);
      out.push(await bell.wait(bell.seq(), 5000));
      bell.close();
      console.log(JSON.stringify(out));`;
    const r = spawnSync('bash', ['-c', `ulimit -n 64 && exec "${process.execPath}" --input-type=module -e "$0"`, code], { timeout: 20_000, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual(['EMFILE', 'ok', 'timed-out', 'cancelled', 'ok']);
  });

  it('rejects a misaligned or out-of-range word, and memory that is not a buffer', () => {
    const seg = segment();
    expect(() => new Doorbell(seg.buffer, 2)).toThrow(InvalidArgumentError);
    expect(() => new Doorbell(seg.buffer, 4092)).toThrow(InvalidArgumentError);
    for (const bad of [null, undefined, new Uint8Array(64), 'x', 5]) expect(() => new Doorbell(bad as unknown as ArrayBuffer, 0)).toThrow(InvalidArgumentError);
  });

  it('works over a SharedArrayBuffer between worker threads (the addon refused it: "Invalid argument")', async () => {
    const sab = new SharedArrayBuffer(64);
    const bell = new Doorbell(sab, 0);
    cleanup.push(bell);
    expect(bell.waitSync(bell.seq(), 20)).toBe('timed-out');
    const here = path.dirname(fileURLToPath(import.meta.url));
    const doorbell = pathToFileURL(path.resolve(here, '../dist/index.js')).href;
    const worker = new Worker(`const { workerData } = require('node:worker_threads'); import(workerData.doorbell).then((h) => setTimeout(() => new h.Doorbell(workerData.sab, 0).ring(), 50));`, { eval: true, workerData: { sab, doorbell } });
    try {
      expect(await bell.wait(bell.seq(), 10_000)).toBe('ok');
    } finally {
      await worker.terminate();
    }
  });
});
