// pi: integrate 4 / (1 + x^2) over [0, 1] with the midpoint rule, each rank
// taking every size-th interval, then Reduce the partial sums to rank 0.
// Usage: mpilite run -n 4 examples/pi.mjs [intervals]
import { SUM, finalize, init, wtime } from '@ibal/mpi';

const n = Number(process.argv[2] ?? 10_000_000);
const comm = await init();
const t0 = wtime();
const h = 1 / n;
let sum = 0;
for (let i = comm.rank; i < n; i += comm.size) {
  const x = h * (i + 0.5);
  sum += 4 / (1 + x * x);
}
const part = Float64Array.of(sum * h);
const pi = new Float64Array(1);
await comm.Reduce(part, pi, SUM, 0);
if (comm.rank === 0) {
  const err = Math.abs(pi[0] - Math.PI);
  console.log(`pi ≈ ${pi[0].toFixed(12)} (error ${err.toExponential(2)}) from ${n} intervals on ${comm.size} ranks in ${((wtime() - t0) * 1000).toFixed(1)} ms`);
  if (err > 1e-6) process.exitCode = 1;
}
await finalize();
