// Process topologies (Cartesian grids, distributed graphs), neighbor
// collectives and groups, checked by fixtures/topo-check.mjs against
// arithmetic of its own, on 1 to 6 ranks over shared memory and on 3 over
// verbs RC.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const seed = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

describe(`process topologies, neighbor collectives and groups (seed ${seed})`, () => {
  for (const n of [1, 2, 4, 6]) {
    it(`${n} rank${n > 1 ? 's' : ''}, shared memory`, async () => {
      const r = await runJob(n, 'topo-check.mjs', [String(seed + n)], { timeoutMs: 60_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain(`topo ok ${n}`);
    }, 90_000);
  }

  it('3 ranks over verbs RC (soft HCA)', async () => {
    const r = await runJob(3, 'topo-check.mjs', [String(seed)], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 60_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('topo ok 3');
  }, 90_000);
});
