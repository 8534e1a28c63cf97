// heat: 1-D heat diffusion by explicit finite differences. The rod is split
// into one slab per rank; each step exchanges one ghost cell with each
// neighbour (halo exchange with Sendrecv), then updates the interior. Rank
// 0 checks the result against the same computation done serially.
// Usage: mpilite run -n 4 examples/heat.mjs [cells] [steps]
import { PROC_NULL, finalize, init } from '@ibal/mpi';

const N = Number(process.argv[2] ?? 4000);
const STEPS = Number(process.argv[3] ?? 500);
const ALPHA = 0.25;
const initial = (i) => (i > N / 3 && i < (2 * N) / 3 ? 100 : 0);

const comm = await init();
const { rank, size } = comm;
const lo = Math.floor((rank * N) / size);
const hi = Math.floor(((rank + 1) * N) / size);
const n = hi - lo;
// u[0] and u[n + 1] are ghost cells; the rod's ends are held at 0.
let u = new Float64Array(n + 2);
let v = new Float64Array(n + 2);
for (let i = 0; i < n; i++) u[i + 1] = initial(lo + i);
const left = rank > 0 ? rank - 1 : PROC_NULL;
const right = rank < size - 1 ? rank + 1 : PROC_NULL;

for (let step = 0; step < STEPS; step++) {
  // Send my first cell left while receiving my right ghost, and the reverse.
  await comm.Sendrecv(u.subarray(1, 2), left, 0, u.subarray(n + 1, n + 2), right, 0);
  await comm.Sendrecv(u.subarray(n, n + 1), right, 1, u.subarray(0, 1), left, 1);
  if (left === PROC_NULL) u[0] = 0;
  if (right === PROC_NULL) u[n + 1] = 0;
  for (let i = 1; i <= n; i++) v[i] = u[i] + ALPHA * (u[i - 1] - 2 * u[i] + u[i + 1]);
  [u, v] = [v, u];
}

const counts = await comm.allgather(n);
const whole = rank === 0 ? new Float64Array(N) : undefined;
await comm.Gatherv(u.subarray(1, n + 1), whole, counts, undefined, 0);
if (rank === 0) {
  let a = Float64Array.from({ length: N + 2 }, (_, i) => (i === 0 || i === N + 1 ? 0 : initial(i - 1)));
  let b = new Float64Array(N + 2);
  for (let s = 0; s < STEPS; s++) {
    for (let i = 1; i <= N; i++) b[i] = a[i] + ALPHA * (a[i - 1] - 2 * a[i] + a[i + 1]);
    [a, b] = [b, a];
  }
  let maxDiff = 0;
  let heat = 0;
  for (let i = 0; i < N; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(whole[i] - a[i + 1]));
    heat += whole[i];
  }
  console.log(`heat: ${N} cells, ${STEPS} steps on ${size} ranks; total heat ${heat.toFixed(3)}, max |parallel - serial| = ${maxDiff}`);
  if (maxDiff !== 0) process.exitCode = 1;
}
await finalize();
