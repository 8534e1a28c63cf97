// A rank that dies or calls abort ends the job: every other rank gets
// JobAbortedError naming it and exits, well within the bound.
import { describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { runJob, type JobResult } from './helpers.js';

/** Runs `script` on 3 ranks and SIGKILLs rank 1 once all three have printed 'ready'. */
async function killRank1WhenReady(script: string): Promise<{ r: JobResult; killedAt: number }> {
  let ready = 0;
  let killedAt = 0;
  let children: ChildProcess[] = [];
  const r = await runJob(3, script, [], {
    timeoutMs: 30_000,
    onStart: (c) => (children = c),
    onOutput: (_rank, text) => {
      if (text.includes('ready') && ++ready === 3) {
        killedAt = Date.now();
        process.kill(children[1]!.pid!, 'SIGKILL');
      }
    },
  });
  expect(killedAt).toBeGreaterThan(0);
  return { r, killedAt };
}

describe('failure', () => {
  it('a rank killed mid-run: the others exit non-zero within 10 s, naming it', async () => {
    const { r, killedAt } = await killRank1WhenReady('spin.mjs');
    expect(r.signals[1]).toBe('SIGKILL');
    for (const rank of [0, 2]) {
      expect(r.codes[rank]).not.toBe(0);
      expect(r.stderr[rank]).toMatch(/job aborted: rank 1 /);
    }
    expect(r.abort?.rank).toBe(1);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
  });

  it('a rank killed holding a window lock: one waiting for the lock and one in Win.Free get JobAbortedError', async () => {
    const { r, killedAt } = await killRank1WhenReady('rma-wait.mjs');
    for (const rank of [0, 2]) {
      expect(r.codes[rank]).not.toBe(0);
      expect(r.stderr[rank]).toMatch(/JobAbortedError: job aborted: rank 1 /);
    }
    expect(Date.now() - killedAt).toBeLessThan(10_000);
  });

  it('abort(code) from one rank ends every rank with that code', async () => {
    const r = await runJob(3, 'abort.mjs', ['2', '3'], { timeoutMs: 30_000 });
    expect(r.codes[2]).toBe(3);
    expect(r.abort).toMatchObject({ rank: 2, errorCode: 3 });
    for (const rank of [0, 1]) {
      expect(r.codes[rank]).not.toBe(0);
      expect(r.stderr[rank]).toMatch(/rank 2 the test asked for it/);
    }
  });
});
