// train: data-parallel training of a linear model y = w·x + b by SGD. Every
// rank holds a shard of the data, computes the gradient on it, and one
// Allreduce per step sums the gradients, as data-parallel training does.
// All ranks end with identical weights, close to the true ones.
// Usage: mpilite run -n 4 examples/train.mjs [steps]
import { MAX, SUM, finalize, init } from '@ibal/mpi';

const STEPS = Number(process.argv[2] ?? 200);
const FEATURES = 64;
const PER_RANK = 2000;
const LR = 0.5;

const comm = await init();
const { rank, size } = comm;

// A seeded generator, so the data (and result) do not depend on timing.
let s = 12345 + rank * 7919;
const rand = () => {
  s = (s * 1103515245 + 12345) % 2147483648;
  return s / 2147483648 - 0.5;
};
const trueW = Float64Array.from({ length: FEATURES }, (_, i) => Math.sin(i + 1));
const trueB = 0.5;
const X = Float64Array.from({ length: PER_RANK * FEATURES }, rand);
const Y = new Float64Array(PER_RANK);
for (let k = 0; k < PER_RANK; k++) {
  let y = trueB;
  for (let j = 0; j < FEATURES; j++) y += trueW[j] * X[k * FEATURES + j];
  Y[k] = y + 0.01 * rand();
}

// params = [w..., b]; grads are summed over all ranks' samples.
const params = new Float64Array(FEATURES + 1);
const grad = new Float64Array(FEATURES + 2); // last slot: the loss
const total = new Float64Array(FEATURES + 2);
let loss = 0;
for (let step = 0; step < STEPS; step++) {
  grad.fill(0);
  for (let k = 0; k < PER_RANK; k++) {
    let pred = params[FEATURES];
    for (let j = 0; j < FEATURES; j++) pred += params[j] * X[k * FEATURES + j];
    const err = pred - Y[k];
    for (let j = 0; j < FEATURES; j++) grad[j] += err * X[k * FEATURES + j];
    grad[FEATURES] += err;
    grad[FEATURES + 1] += err * err;
  }
  await comm.Allreduce(grad, total, SUM);
  const m = PER_RANK * size;
  for (let j = 0; j <= FEATURES; j++) params[j] -= (LR * 2 * total[j]) / m;
  loss = total[FEATURES + 1] / m;
}

// Every rank must hold the same weights: the max of |w - w0| over ranks is 0.
const ref = params.slice();
await comm.Bcast(ref, 0);
let drift = 0;
for (let j = 0; j <= FEATURES; j++) drift = Math.max(drift, Math.abs(ref[j] - params[j]));
const worst = new Float64Array(1);
await comm.Allreduce(Float64Array.of(drift), worst, MAX);
if (rank === 0) {
  let werr = 0;
  for (let j = 0; j < FEATURES; j++) werr = Math.max(werr, Math.abs(params[j] - trueW[j]));
  console.log(`train: ${STEPS} steps on ${size} ranks x ${PER_RANK} samples; mse ${loss.toExponential(3)}, max |w - w*| ${werr.toExponential(2)}, weights identical on every rank: ${worst[0] === 0}`);
  if (worst[0] !== 0 || werr > 0.05) process.exitCode = 1;
}
await finalize();
