// stencil: 2-D heat diffusion (a 5-point Jacobi stencil) on a Cartesian
// process grid. dimsCreate picks the grid, createCart numbers it, and each
// step's halo exchange is one persistent NeighborAlltoallw: every rank sends
// its four edge strips, described by row and column datatypes over its own
// array (no packing by hand), to the neighbors above, below, left and right
// (open edges are PROC_NULL, their ghost cells stay 0). Rank 0 checks the result against the
// same computation done serially.
// Usage: mpilite run -n 4 examples/stencil.mjs [rows] [cols] [steps]
import { DOUBLE, dimsCreate, finalize, init } from '@ibal/mpi';

const ROWS = Number(process.argv[2] ?? 240);
const COLS = Number(process.argv[3] ?? 320);
const STEPS = Number(process.argv[4] ?? 200);
const ALPHA = 0.2;
const initial = (i, j) => (Math.abs(i - ROWS / 2) < ROWS / 6 && Math.abs(j - COLS / 3) < COLS / 8 ? 100 : 0);

const world = await init();
const dims = dimsCreate(world.size, 2);
const grid = await world.createCart(dims, [false, false]);
const [pr, pc] = grid.coords;
const r0 = Math.floor((pr * ROWS) / dims[0]);
const nr = Math.floor(((pr + 1) * ROWS) / dims[0]) - r0;
const c0 = Math.floor((pc * COLS) / dims[1]);
const nc = Math.floor(((pc + 1) * COLS) / dims[1]) - c0;

// (nr + 2) x (nc + 2) cells, row-major, with a ring of ghost cells.
const W = nc + 2;
let u = new Float64Array((nr + 2) * W);
let v = new Float64Array((nr + 2) * W);
for (let i = 1; i <= nr; i++) for (let j = 1; j <= nc; j++) u[i * W + j] = initial(r0 + i - 1, c0 + j - 1);

// The four faces as datatypes over u itself: a row is nc contiguous cells,
// a column nr cells W apart. Neighbor order on a 2-d grid: up, down
// (dimension 0), left, right (dimension 1); displacements in bytes.
const row = DOUBLE.createContiguous(nc).commit();
const column = DOUBLE.createVector(nr, 1, W).commit();
const types = [row, row, column, column];
const ones = [1, 1, 1, 1];
const at = (i, j) => 8 * (i * W + j);
const sendFaces = [at(1, 1), at(nr, 1), at(1, 1), at(1, nc)];
const ghostFaces = [at(0, 1), at(nr + 1, 1), at(1, 0), at(1, nc + 1)];
// The exchange is the same every step, on u and v in turn: two persistent
// requests (MPI-4's MPI_Neighbor_alltoallw_init), bound once, started each step.
const halo = new Map([u, v].map((a) => [a, grid.NeighborAlltoallwInit(a, ones, sendFaces, types, a, ones, ghostFaces, types)]));
for (let step = 0; step < STEPS; step++) {
  const exchange = halo.get(u);
  exchange.start();
  await exchange.wait();
  for (let i = 1; i <= nr; i++) {
    for (let j = 1; j <= nc; j++) {
      const k = i * W + j;
      v[k] = u[k] + ALPHA * (u[k - W] + u[k + W] + u[k - 1] + u[k + 1] - 4 * u[k]);
    }
  }
  [u, v] = [v, u];
}

const mine = new Float64Array(nr * nc);
for (let i = 0; i < nr; i++) mine.set(u.subarray((i + 1) * W + 1, (i + 1) * W + 1 + nc), i * nc);
const parts = await grid.gather({ r0, c0, nr, nc, data: mine }, 0);
if (grid.rank === 0) {
  const SW = COLS + 2;
  let a = new Float64Array((ROWS + 2) * SW);
  let b = new Float64Array((ROWS + 2) * SW);
  for (let i = 1; i <= ROWS; i++) for (let j = 1; j <= COLS; j++) a[i * SW + j] = initial(i - 1, j - 1);
  for (let s = 0; s < STEPS; s++) {
    for (let i = 1; i <= ROWS; i++) {
      for (let j = 1; j <= COLS; j++) {
        const k = i * SW + j;
        b[k] = a[k] + ALPHA * (a[k - SW] + a[k + SW] + a[k - 1] + a[k + 1] - 4 * a[k]);
      }
    }
    [a, b] = [b, a];
  }
  let maxDiff = 0;
  let heat = 0;
  for (const p of parts) {
    for (let i = 0; i < p.nr; i++) {
      for (let j = 0; j < p.nc; j++) {
        const x = p.data[i * p.nc + j];
        maxDiff = Math.max(maxDiff, Math.abs(x - a[(p.r0 + i + 1) * SW + p.c0 + j + 1]));
        heat += x;
      }
    }
  }
  console.log(`stencil: ${ROWS}x${COLS} cells, ${STEPS} steps on ${world.size} ranks as a ${dims.join('x')} grid; total heat ${heat.toFixed(3)}, max |parallel - serial| = ${maxDiff}`);
  if (maxDiff !== 0) process.exitCode = 1;
}
row.free();
column.free();
grid.free();
await finalize();
