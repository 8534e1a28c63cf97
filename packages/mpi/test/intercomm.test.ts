// Intercommunicators (fixtures/intercomm-check.mjs): even and odd world
// ranks as two groups, over shared memory (groups of equal and unequal
// size) and over verbs RC.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

describe('intercommunicators', () => {
  for (const n of [2, 5]) {
    it(`${n} ranks over shared memory`, async () => {
      const r = await runJob(n, 'intercomm-check.mjs', [], { timeoutMs: 60_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain(`inter ok ${n}`);
    }, 90_000);
  }

  it('4 ranks over verbs RC (soft HCA)', async () => {
    const r = await runJob(4, 'intercomm-check.mjs', [], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 60_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('inter ok 4');
  }, 90_000);
});
