// Synchronous-mode sends and persistent requests (fixtures/modes-check.mjs)
// over shared memory and over verbs RC: the eager path answers a
// synchronous send's match with FIN, which each transport carries its own way.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

describe('send modes and persistent requests', () => {
  it('2 ranks over shared memory', async () => {
    const r = await runJob(2, 'modes-check.mjs', [], { timeoutMs: 60_000 });
    expectClean(r);
    expect(r.stdout[0]).toContain('ssend ok');
    for (const out of r.stdout) expect(out).toContain('modes ok 2');
  }, 90_000);

  it('3 ranks over verbs RC (soft HCA)', async () => {
    const r = await runJob(3, 'modes-check.mjs', [], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 60_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('modes ok 3');
  }, 90_000);
});
