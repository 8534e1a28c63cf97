// The MPI-lite demo (`npm run demo`): one job that passes a token round a
// ring, allreduces a million doubles, integrates pi, and reports how each
// rank reached the others and how fast.
import { SUM, finalize, init, worldInfo, wtime } from '@ibal/mpi';

const comm = await init();
const { rank, size } = comm;
const say = (line) => rank === 0 && console.log(line);
say(`MPI-lite demo: ${size} ranks, launched by ${worldInfo().launcher}; rank 0 reaches the others via ${worldInfo().transports.slice(1).join(', ')}`);

// 1. Ring: a token goes round once, each rank adding its rank.
const token = new Float64Array(1);
const next = (rank + 1) % size;
const prev = (rank - 1 + size) % size;
let t0 = wtime();
if (rank === 0) {
  await comm.Send(token, next, 0);
  await comm.Recv(token, prev, 0);
} else {
  await comm.Recv(token, prev, 0);
  token[0] += rank;
  await comm.Send(token, next, 0);
}
say(`ring:      token came back as ${token[0]} (expected ${(size * (size - 1)) / 2}) in ${((wtime() - t0) * 1e6).toFixed(0)} µs`);

// 2. Allreduce: 2^20 doubles (8 MiB) per rank, summed everywhere.
const n = 1 << 20;
const mine = new Float64Array(n).fill(rank + 1);
const sum = new Float64Array(n);
await comm.Allreduce(mine, sum, SUM); // warm-up
t0 = wtime();
const reps = 5;
for (let i = 0; i < reps; i++) await comm.Allreduce(mine, sum, SUM);
const ms = ((wtime() - t0) * 1000) / reps;
say(`allreduce: ${n} doubles, every element = ${sum[0]} (expected ${(size * (size + 1)) / 2}), ${ms.toFixed(1)} ms per call (${((8 * n) / ms / 1e3).toFixed(0)} MB/s per rank)`);

// 3. Pi by midpoint integration, partial sums reduced to rank 0.
const intervals = 20_000_000;
t0 = wtime();
let part = 0;
const h = 1 / intervals;
for (let i = rank; i < intervals; i += size) {
  const x = h * (i + 0.5);
  part += 4 / (1 + x * x);
}
const pi = new Float64Array(1);
await comm.Reduce(Float64Array.of(part * h), pi, SUM, 0);
say(`pi:        ${pi[0].toFixed(12)} (error ${Math.abs(pi[0] - Math.PI).toExponential(1)}) from ${intervals} intervals in ${((wtime() - t0) * 1000).toFixed(0)} ms`);

const ok = token[0] === (size * (size - 1)) / 2 && sum[0] === (size * (size + 1)) / 2 && Math.abs(pi[0] - Math.PI) < 1e-9;
if (rank === 0 && !ok) process.exitCode = 1;
await finalize();
