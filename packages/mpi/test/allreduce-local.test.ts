// Allreduce through the communicator's shared-memory staging, when every
// rank is on this host (fixtures/allreduce-local.mjs), for 2 to 5 ranks;
// and nothing of it left in /dev/shm once the job is over.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

const seed = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

describe(`shared-memory allreduce (seed ${seed})`, () => {
  for (const n of [2, 3, 4, 5]) {
    it(`${n} ranks: multi-round vectors, IN_PLACE, pair and non-commutative ops, overlapping calls, split and freed communicators; mismatched arrays and throwing operations refused on every rank`, async () => {
      const r = await runJob(n, 'allreduce-local.mjs', [String(seed)], { timeoutMs: 150_000 });
      expectClean(r);
      const pids: string[] = [];
      for (const out of r.stdout) {
        const m = /^OK (\d+) (\d+)$/m.exec(out);
        expect(m, out).not.toBeNull();
        pids.push(m![2]!);
      }
      const left = fs.readdirSync('/dev/shm').filter((f) => pids.some((p) => f.startsWith(`ibal-${p}-`)));
      expect(left).toEqual([]);
    }, 180_000);
  }
});
