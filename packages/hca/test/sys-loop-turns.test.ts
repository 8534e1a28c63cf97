import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LoopTurns } from '../src/sys/loop-turns.js';
import { trySys } from '../src/sys/load.js';

const hasNative = typeof trySys()?.LoopSpin === 'function';
const nativeRequired = process.env.IBAL_NATIVE_REQUIRED === '1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const addon = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'native', 'sys', 'build', 'Release', 'ibal_sys.node');

describe('LoopTurns', () => {
  it('the addon has LoopSpin wherever it is required', () => {
    if (nativeRequired) expect(hasNative).toBe(true);
  });

  for (const native of [true, false]) {
    describe.skipIf(native && !hasNative)(native ? 'libuv idle handle' : 'setImmediate fallback', () => {
      it('runs on every turn without starving timers and I/O, until stopped', async () => {
        let calls = 0;
        let immediates = 0;
        const t = new LoopTurns(() => calls++, { native });
        expect(t.native).toBe(native);
        t.start();
        t.start(); // idempotent: still one call per turn
        expect(calls).toBe(0); // from the next turn on, never synchronously
        // Count turns with a setImmediate chain alongside: one call per turn at most.
        let chain = true;
        const tick = () => {
          immediates++;
          if (chain) setImmediate(tick);
        };
        setImmediate(tick);
        await sleep(30); // a timer still fires while it turns
        chain = false;
        expect(t.running).toBe(true);
        expect(calls).toBeGreaterThan(10);
        expect(Math.abs(calls - immediates)).toBeLessThanOrEqual(2);
        t.stop();
        const stoppedAt = calls;
        await sleep(20);
        expect(calls).toBe(stoppedAt);
        t.start();
        await sleep(10);
        expect(calls).toBeGreaterThan(stoppedAt);
        t.close();
        const closedAt = calls;
        t.start(); // after close: nothing
        await sleep(20);
        expect(calls).toBe(closedAt);
        expect(t.running).toBe(false);
      });

      it('may stop itself from inside its function', async () => {
        let calls = 0;
        const t = new LoopTurns(() => {
          if (++calls === 5) t.stop();
        }, { native });
        t.start();
        await sleep(20);
        expect(calls).toBe(5);
        t.close();
      });
    });
  }

  it.skipIf(!hasNative)('a started LoopSpin keeps its process alive and survives GC of its wrapper', () => {
    // Nothing but the spinner holds the loop or the wrapper (the GC timer is
    // unref'd): the process ends only because the spinner stopped itself.
    const script = `
      const a = require(${JSON.stringify(addon)});
      const t0 = Date.now();
      setTimeout(() => { gc(); gc(); }, 20).unref();
      // The callback does not capture the wrapper, so only the started handle can keep it.
      new a.LoopSpin(() => { if (Date.now() - t0 > 150) { console.log('done'); process.exit(0); } }).start();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('done');
    expect(r.status).toBe(0);
  });

  it.skipIf(!hasNative)("an exception thrown by onTurn is the process's uncaught exception, as from any callback", () => {
    const script = `
      const a = require(${JSON.stringify(addon)});
      const s = new a.LoopSpin(() => { throw new Error('thrown by onTurn'); });
      process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message); s.close(); });
      s.start();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout.trim()).toBe('uncaught: thrown by onTurn');
    expect(r.status).toBe(0);
  });
});
