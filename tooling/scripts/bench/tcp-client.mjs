// Baseline TCP client: for each size, a ping-pong of ITERS messages
// (median half round trip, as perftest reports SEND latency) and a stream
// of SIZE-byte writes (bytes over the time until the server has them all).
// Usage: tcp-client.mjs PORT '{"lat":[[size,iters],...],"bw":[[size,iters],...]}'
// Prints one {"result": ...} line.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const port = Number(process.argv[2]);
const plan = JSON.parse(process.argv[3]);
const TIMEOUT_MS = 60_000;

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.setNoDelay(true);
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function bounded(promise, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(t));
}

async function latency(size, iters) {
  const s = await connect();
  s.write(`lat ${size} ${iters}\n`);
  const msg = Buffer.alloc(size, 7);
  const halves = new Float64Array(iters);
  let got = 0;
  let wake;
  s.on('data', (d) => {
    got += d.length;
    wake?.();
  });
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const want = (i + 1) * size;
    s.write(msg);
    await bounded(
      new Promise((resolve) => {
        wake = () => {
          if (got >= want) resolve();
        };
        wake();
      }),
      `echo of message ${i}`,
    );
    halves[i] = ((performance.now() - t0) * 1000) / 2;
  }
  s.destroy();
  halves.sort();
  return halves[halves.length >> 1];
}

async function bandwidth(size, iters) {
  const s = await connect();
  s.write(`bw ${size} ${iters}\n`);
  const msg = Buffer.alloc(size, 7);
  const acked = new Promise((resolve) => s.once('data', resolve));
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) {
    if (!s.write(msg)) await bounded(new Promise((resolve) => s.once('drain', resolve)), 'drain');
  }
  await bounded(acked, 'the sink');
  const seconds = (performance.now() - t0) / 1000;
  s.destroy();
  return (size * iters) / seconds / 2 ** 20;
}

const result = { latUs: {}, bwMBps: {} };
for (const [size, iters] of plan.lat ?? []) result.latUs[size] = await latency(size, iters);
for (const [size, iters] of plan.bw ?? []) result.bwMBps[size] = await bandwidth(size, iters);
process.stdout.write(JSON.stringify({ result }) + '\n');
