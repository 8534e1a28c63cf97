// workqueue: dynamic load balancing with one-sided communication. Rank 0's
// window holds a task counter; every rank takes the next task with
// FetchAndOp until none are left and counts the primes in that task's range;
// Reduce adds the counts. Tasks go to whichever rank is free, so no rank
// waits for a slow one at the end, and rank 0 serves the counter while it
// computes (on one host the counter is shared memory; elsewhere an RDMA
// target or a message its progress answers).
// Usage: mpilite run -n 4 examples/workqueue.mjs [limit] [chunk]
import { SUM, Win, finalize, init, wtime } from '@ibal/mpi';

const limit = Number(process.argv[2] ?? 2_000_000);
const chunk = Number(process.argv[3] ?? 20_000);

function countPrimes(from, to) {
  let n = 0;
  for (let k = Math.max(from, 2); k < to; k++) {
    let prime = true;
    for (let d = 2; d * d <= k; d++) {
      if (k % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) n++;
  }
  return n;
}

const comm = await init();
const t0 = wtime();
const win = await Win.Allocate(comm.rank === 0 ? 8 : 0, 8, comm);
await win.LockAll();
const one = BigInt64Array.of(1n);
const ticket = new BigInt64Array(1);
let found = 0;
let tasks = 0;
for (;;) {
  win.FetchAndOp(one, ticket, 0, 0, SUM);
  await win.Flush(0);
  const start = Number(ticket[0]) * chunk;
  if (start >= limit) break;
  found += countPrimes(start, Math.min(limit, start + chunk));
  tasks++;
}
await win.UnlockAll();
const total = new Float64Array(1);
await comm.Reduce(Float64Array.of(found), total, SUM, 0);
const perRank = await comm.gather(tasks, 0);
await win.Free();
if (comm.rank === 0) {
  const ms = (wtime() - t0) * 1000;
  const serial = countPrimes(0, limit);
  console.log(`primes below ${limit}: ${total[0]} (serial count ${serial}) in ${ms.toFixed(1)} ms; tasks per rank: ${perRank.join(', ')}`);
  if (total[0] !== serial || perRank.reduce((a, b) => a + b, 0) !== Math.ceil(limit / chunk)) process.exitCode = 1;
}
await finalize();
