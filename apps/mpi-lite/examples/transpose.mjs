// transpose: a distributed matrix transpose in one Alltoall, the layout
// work done by datatypes. An N x N matrix of doubles is split by rows, b = N
// / p rows a rank, row-major. Rank r sends rank s the b x b block of its
// rows in s's columns (a subarray type, resized so consecutive instances
// are consecutive column blocks) and receives, from each s, a block that a
// second type lays down transposed: row i of the incoming block becomes
// column i of the result. No rank transposes anything by hand; every rank
// checks its rows of the transpose against the formula of the matrix.
// Usage: mpilite run -n 4 examples/transpose.mjs [N]
import { performance } from 'node:perf_hooks';
import { DOUBLE, finalize, init } from '@ibal/mpi';

const world = await init();
const p = world.size;
const N = Number(process.argv[2] ?? 1024);
if (N % p !== 0) throw new Error(`N (${N}) must be a multiple of the ${p} ranks`);
const b = N / p;
const r0 = world.rank * b;
const value = (i, j) => i * N + j + 0.5; // A[i][j]

const A = new Float64Array(b * N);
for (let i = 0; i < b; i++) for (let j = 0; j < N; j++) A[i * N + j] = value(r0 + i, j);

// Send side: block s is this rank's b rows, columns s*b .. s*b+b-1.
const block = DOUBLE.createSubarray([b, N], [b, b], [0, 0]).createResized(0, 8 * b).commit();
// Receive side: element (i, k) of the block from rank s goes to T[k][s*b + i]:
// a column of T (b elements N apart) per incoming row, the next row one
// element over, the next block b elements over.
const column = DOUBLE.createVector(b, 1, N).createResized(0, 8);
const landing = column.createContiguous(b).createResized(0, 8 * b).commit();
column.free();

const T = new Float64Array(b * N);
const t0 = performance.now();
await world.Alltoall([A, p, block], [T, p, landing]);
const ms = performance.now() - t0;

let wrong = 0;
for (let i = 0; i < b; i++) for (let j = 0; j < N; j++) if (T[i * N + j] !== value(j, r0 + i)) wrong++;
const bad = await world.allreduce(wrong);
if (world.rank === 0) console.log(`transpose: ${N}x${N} doubles on ${p} ranks in one Alltoall with datatypes, ${ms.toFixed(2)} ms on rank 0; elements wrong: ${bad}`);
if (bad !== 0) process.exitCode = 1;
block.free();
landing.free();
await finalize();
