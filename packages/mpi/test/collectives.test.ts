// Every collective checked against a sequential reference, for 1 to 5
// ranks, over shared memory and (3 ranks) over verbs on the soft HCA. One
// job per rank count runs every check (see fixtures/coll-check.mjs).
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const seed = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

describe(`collectives against a sequential reference (seed ${seed})`, () => {
  for (const n of [1, 2, 3, 4, 5]) {
    it(`${n} rank${n > 1 ? 's' : ''}, shared memory`, async () => {
      const r = await runJob(n, 'coll-check.mjs', [String(seed)], { timeoutMs: 150_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toMatch(/^OK \d+/m);
    }, 180_000);
  }

  it('3 ranks, verbs RC over the soft HCA', async () => {
    // IBAL_SOFT_SHM=0: the soft HCA's own same-host shortcut is the HCA's
    // business; here the RoCEv2 packets go over UDP as between hosts.
    const r = await runJob(3, 'coll-check.mjs', [String(seed + 1)], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, timeoutMs: 150_000 });
    expectClean(r);
    for (const out of r.stdout) expect(out).toMatch(/^OK \d+/m);
  }, 180_000);
});
