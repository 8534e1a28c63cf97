// Random MPI programs against a model (fixtures/random-mix.mjs): point to
// point with every matching mode and way of waiting, collectives, and
// communicators made and freed, over each transport and protocol setting.
// MPI_TEST_SEED picks the seeds; a failure names its seed and round.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const base = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

// [what, ranks, rounds, environment, mode]: `nosync` leaves out the barrier
// between rounds, so senders run ahead while receivers still match.
const runs: [string, number, number, Record<string, string>, string][] = [
  ['shared memory', 2, 60, {}, 'sync'],
  ['shared memory, more ranks than cores', 4, 40, {}, 'sync'],
  ['shared memory, senders running ahead', 3, 60, {}, 'nosync'],
  ['shared memory, 4 KiB rings, everything rendezvous, large collectives', 3, 40, { MPILITE_SHM_RING_BYTES: '4096', MPILITE_SHM_EAGER_LIMIT: '0', MPILITE_COLL_LARGE: '0' }, 'sync'],
  ['verbs RC over UDP, smallest credit window', 3, 30, { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0', MPILITE_VERBS_CREDITS: '4' }, 'sync'],
  ['verbs RC over UDP, senders running ahead', 3, 30, { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }, 'nosync'],
  ["verbs RC, the soft HCA's same-host path, everything rendezvous", 3, 30, { MPILITE_TRANSPORTS: 'verbs', MPILITE_VERBS_EAGER_LIMIT: '0' }, 'sync'],
];

describe(`random MPI programs against a model (seeds from ${base})`, () => {
  runs.forEach(([name, n, rounds, env, mode], i) => {
    it(`${n} ranks, ${name}`, async () => {
      const seed = base + i;
      const r = await runJob(n, 'random-mix.mjs', [String(seed), String(rounds), '300000', mode], { env, timeoutMs: 100_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain(`mix ok seed ${seed}`);
    }, 120_000);
  });
});
