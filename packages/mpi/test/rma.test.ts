// One-sided communication (MPI windows) checked by fixtures/rma-check.mjs,
// over shared memory for 1 to 4 ranks (windows in place and process_vm_*),
// with every operation by message, and over verbs RC on the soft HCA (RDMA
// WRITE and READ).
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const seed = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

describe(`one-sided communication against a sequential reference (seed ${seed})`, () => {
  for (const n of [1, 2, 3, 4]) {
    it(`${n} rank${n > 1 ? 's' : ''}, shared memory`, async () => {
      const r = await runJob(n, 'rma-check.mjs', [String(seed)], { timeoutMs: 120_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toMatch(/^OK \d+/m);
    }, 150_000);
  }

  it('3 ranks, shared memory, every operation by message (MPILITE_OSC=pt2pt)', async () => {
    const r = await runJob(3, 'rma-check.mjs', [String(seed + 2)], { env: { MPILITE_OSC: 'pt2pt' }, timeoutMs: 120_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toMatch(/^OK \d+/m);
  }, 150_000);

  it('3 ranks, verbs RC over the soft HCA', async () => {
    const r = await runJob(3, 'rma-check.mjs', [String(seed + 1)], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 120_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toMatch(/^OK \d+/m);
  }, 150_000);
});
