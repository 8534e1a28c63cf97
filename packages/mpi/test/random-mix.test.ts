// Random MPI programs against a model (fixtures/random-mix.mjs): point to
// point with every matching mode and way of waiting, collectives, and
// communicators made and freed, over each transport and protocol setting.
// MPI_TEST_SEED picks the seeds; a failure names its seed and round.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const base = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

const runs: [string, number, number, Record<string, string>][] = [
  ['shared memory', 2, 60, {}],
  ['shared memory, more ranks than cores', 4, 40, {}],
  ['shared memory, 4 KiB rings, everything rendezvous, large collectives', 3, 40, { MPILITE_SHM_RING_BYTES: '4096', MPILITE_SHM_EAGER_LIMIT: '0', MPILITE_COLL_LARGE: '0' }],
  ['verbs RC over UDP, smallest credit window', 3, 30, { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0', MPILITE_VERBS_CREDITS: '4' }],
  ["verbs RC, the soft HCA's same-host path, everything rendezvous", 3, 30, { MPILITE_TRANSPORTS: 'verbs', MPILITE_VERBS_EAGER_LIMIT: '0' }],
];

describe(`random MPI programs against a model (seeds from ${base})`, () => {
  runs.forEach(([name, n, rounds, env], i) => {
    it(`${n} ranks, ${name}`, async () => {
      const seed = base + i;
      const r = await runJob(n, 'random-mix.mjs', [String(seed), String(rounds)], { env, timeoutMs: 100_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain(`mix ok seed ${seed}`);
    }, 120_000);
  });
});
