// The run-wide bounded wait of ibal perf and the ping-pong tools: progress
// keeps it open, silence for its time ends it with a named error, stop()
// disarms it.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { IdleTimeoutError, IdleTimer } from '../src/lib/idle-timer.js';

const MS = 120;

describe('IdleTimer', () => {
  it('stays open while progress comes more often than its time', async () => {
    const idle = new IdleTimer(MS, () => 'for nothing');
    try {
      for (let i = 0; i < 12; i++) {
        await sleep(MS / 3);
        idle.progress();
        idle.check();
      }
      expect(idle.signal.aborted).toBe(false);
    } finally {
      idle.stop();
    }
  });

  it('ends with IdleTimeoutError between its time and a quarter more after the last progress', async () => {
    const idle = new IdleTimer(MS, () => 'waiting for completions');
    try {
      await sleep(MS / 2);
      idle.progress();
      const last = performance.now();
      await new Promise((resolve) => idle.signal.addEventListener('abort', resolve, { once: true }));
      const quiet = performance.now() - last;
      expect(quiet).toBeGreaterThanOrEqual(MS - 5); // timers may fire a hair early
      expect(quiet).toBeLessThan(MS * 1.25 + 200); // a loaded machine runs timers late
      expect(() => idle.check()).toThrow(IdleTimeoutError);
      expect(() => idle.check()).toThrow('timed out after 0.12 s waiting for completions');
    } finally {
      idle.stop();
    }
  });

  it('never fires once stopped', async () => {
    const idle = new IdleTimer(MS / 4, () => 'for nothing');
    idle.stop();
    await sleep(MS);
    expect(idle.signal.aborted).toBe(false);
  });
});
