// pnpm bench: the soft RoCEv2 HCA against the host's own loopback, between
// two processes. Measures RC RDMA WRITE bandwidth and RC SEND latency with
// `ibal perf`, and as baselines Node TCP (streaming and ping-pong) at the
// same sizes and a plain UDP blast of 4 KiB datagrams (the wire's ceiling).
// Each measurement is repeated (BENCH_REPS, default 5) and the medians are
// reported; a failed measurement is recorded and the run goes on. The whole
// run is bounded by BENCH_BUDGET_S (default 300); what does not fit is
// recorded as skipped. Writes bench-results/bench.json and bench.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, freePort, killAll } from './bench/children.mjs';
import { markdown } from './bench/markdown.mjs';
import { Series, median } from './bench/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const cli = path.join(root, 'apps', 'ibal-utils', 'dist', 'cli.js');
const outDir = path.join(root, 'bench-results');
const REPS = Number(process.env.BENCH_REPS ?? 5);
const BUDGET_MS = Number(process.env.BENCH_BUDGET_S ?? 300) * 1000;
const started = Date.now();

const SIZES = [8, 32, 128, 512, 2048, 8192, 32768, 131072, 524288, 1 << 20, 4 << 20];

// Sizes are grouped so that one `ibal perf` pair measures several with one
// iteration count, chosen to keep each size near a few tenths of a second
// on the soft HCA.
const WRITE_BANDS = [
  { sizes: [8, 32, 128, 512], iters: 20000 },
  { sizes: [2048, 8192, 32768], iters: 5000 },
  { sizes: [131072, 524288], iters: 400 },
  // Long enough (hundreds of MiB) that the steady state is timed, not the ramp.
  { sizes: [1 << 20], iters: 200 },
  { sizes: [4 << 20], iters: 50 },
];
const LAT_BANDS = [
  { sizes: [8, 32, 128, 512, 2048], iters: 1000 },
  { sizes: [8192, 32768, 131072], iters: 300 },
  { sizes: [524288, 1 << 20, 4 << 20], iters: 30 },
];
const latIters = (size) => LAT_BANDS.find((b) => b.sizes.includes(size)).iters;
// TCP streams at least 64 MiB per size (at most 200k writes) so the fast path is timed, not the start.
const tcpBwIters = (size) => Math.min(200_000, Math.max(50, Math.ceil((64 << 20) / size)));
const UDP_SECONDS = 2;

const timeLeft = () => BUDGET_MS - (Date.now() - started);
let seq = 0;
// This bench is about the UDP wire (the same-host shared-memory path is
// measured by bench-shm.mjs), so the soft HCA is kept off shared memory.
const device = (role) => ({ IBAL_SOFT_DEVICES: `bench${role}${process.pid}x${seq++}=127.0.0.1:0`, IBAL_SOFT_SHM: '0' });

/**
 * One `ibal perf` server/client pair; returns the client's JSON document.
 * Each size first runs as many untimed iterations as timed ones: the soft
 * HCA is JavaScript, and its first thousands of packets run before the JIT
 * has compiled the hot paths.
 */
async function perfPair(test, mode, sizes, iters) {
  const port = String(await freePort());
  const budget = Math.min(120_000, Math.max(5_000, timeLeft()));
  const args = ['perf', test, `--${mode}`, '-p', port, '--json', '--timeout', '30'];
  const server = new Child(cli, args, device('s'));
  try {
    await server.output(/Waiting for client to connect/, 15_000);
    const client = new Child(cli, [...args, '127.0.0.1', '--sizes', sizes.join(','), '-n', String(iters), '--warmup', String(iters)], device('c'));
    try {
      const [c, s] = await Promise.all([client.exit(budget), server.exit(budget)]);
      if (c !== 0) throw new Error(`client exited ${c}: ${client.stderr.trim()}`);
      if (s !== 0) throw new Error(`server exited ${s}: ${server.stderr.trim()}`);
      return JSON.parse(client.stdout);
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

async function tcpRun() {
  const server = new Child(path.join(here, 'bench', 'tcp-server.mjs'), []);
  try {
    const { port } = await server.message('port', 10_000);
    const plan = { lat: SIZES.map((s) => [s, latIters(s)]), bw: SIZES.map((s) => [s, tcpBwIters(s)]) };
    const client = new Child(path.join(here, 'bench', 'tcp-client.mjs'), [String(port), JSON.stringify(plan)]);
    try {
      const budget = Math.min(120_000, Math.max(5_000, timeLeft()));
      const { result } = await client.message('result', budget);
      return result;
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

async function udpRun() {
  const receiver = new Child(path.join(here, 'bench', 'udp-receiver.mjs'), []);
  try {
    const { port } = await receiver.message('port', 10_000);
    const sender = new Child(path.join(here, 'bench', 'udp-sender.mjs'), [String(port), String(UDP_SECONDS), '4096']);
    try {
      const { sent } = await sender.message('sent', UDP_SECONDS * 1000 + 15_000);
      // Let the receiver take what is still in its socket buffer.
      await new Promise((resolve) => setTimeout(resolve, 200));
      receiver.send('report');
      const { result } = await receiver.message('result', 10_000);
      return { ...result, sent };
    } finally {
      sender.kill();
    }
  } finally {
    receiver.kill();
  }
}

/** Runs `fn` unless the budget is spent; failures go into `series`. */
async function attempt(what, series, fn) {
  if (timeLeft() <= 0) {
    series.fail(what, new Error('skipped: time budget spent'));
    return;
  }
  try {
    await fn();
  } catch (err) {
    series.fail(what, err);
    process.stderr.write(`bench: ${what} failed: ${err.message}\n`);
  }
}

async function main() {
  if (!fs.existsSync(cli)) {
    process.stderr.write(`bench: ${path.relative(root, cli)} is missing; run pnpm build first\n`);
    process.exit(1);
  }
  const writeBw = new Series(SIZES);
  const sendLat = new Series(SIZES);
  const tcpBw = new Series(SIZES);
  const tcpLat = new Series(SIZES);
  const udp = { samples: [], errors: [] };
  const udpSeries = { fail: (what, err) => udp.errors.push(`${what}: ${err.message}`) };

  // Repetitions are the outer loop so that a slow spell of the machine
  // spreads over all measurements instead of skewing one of them.
  for (let rep = 1; rep <= REPS; rep++) {
    process.stderr.write(`bench: run ${rep}/${REPS} (${Math.round((Date.now() - started) / 1000)} s)\n`);
    for (const band of WRITE_BANDS) {
      await attempt(`run ${rep} sizes ${band.sizes.join(',')}`, writeBw, async () => {
        const doc = await perfPair('write', 'bw', band.sizes, band.iters);
        for (const row of doc.results) writeBw.add(row.MsgSize, row.BW_average);
      });
    }
    for (const band of LAT_BANDS) {
      await attempt(`run ${rep} sizes ${band.sizes.join(',')}`, sendLat, async () => {
        const doc = await perfPair('send', 'lat', band.sizes, band.iters);
        for (const row of doc.results) sendLat.add(row.MsgSize, row.t_typical);
      });
    }
    await attempt(`run ${rep}`, tcpBw, async () => {
      const r = await tcpRun();
      for (const s of SIZES) {
        tcpBw.add(s, r.bwMBps[s]);
        tcpLat.add(s, r.latUs[s]);
      }
    });
    await attempt(`run ${rep}`, udpSeries, async () => {
      udp.samples.push(await udpRun());
    });
  }
  killAll();

  const results = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      reps: REPS,
      seconds: Math.round((Date.now() - started) / 1000),
      sizes: SIZES,
      units: { bw: 'MB/s, MB = 2^20 bytes', lat: 'microseconds' },
      iterations: { write: WRITE_BANDS, sendLat: LAT_BANDS, tcpBw: Object.fromEntries(SIZES.map((s) => [s, tcpBwIters(s)])) },
    },
    writeBw: writeBw.toJSON(),
    sendLat: sendLat.toJSON(),
    tcpBw: tcpBw.toJSON(),
    tcpLat: tcpLat.toJSON(),
    udpBlast: {
      median: {
        MBps: median(udp.samples.map((s) => s.MBps)),
        datagramsPerSec: median(udp.samples.map((s) => s.datagramsPerSec)),
      },
      samples: udp.samples,
      errors: udp.errors,
    },
  };
  const ratio = (a, b) => (a !== null && b !== null && b > 0 ? a / b : null);
  results.headline = {
    writeVsUdp: ratio(results.writeBw.median[1 << 20], results.udpBlast.median.MBps),
    sendVsTcpLatency: ratio(results.sendLat.median[8], results.tcpLat.median[8]),
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'bench.json'), JSON.stringify(results, null, 2) + '\n');
  const md = markdown(results);
  fs.writeFileSync(path.join(outDir, 'bench.md'), md);
  process.stdout.write(md);
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
try {
  await main();
} finally {
  killAll();
}
