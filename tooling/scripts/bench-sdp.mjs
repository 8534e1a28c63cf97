// pnpm bench (SDP part): @ibal/sdp against Node net TCP loopback, in the
// same run, between two local processes:
//  - 64 B request/response latency: the mean round trip over many exchanges,
//    and the median (perftest's t_typical), 90th and 99th percentile of the
//    round trips timed one by one;
//  - 1 MiB write throughput (a 1 GiB stream of 1 MiB writes, with
//    backpressure, until the sink has counted every byte);
//  - the same the other way (the server writes, the client reads), read
//    with 'data' events and with net's onread into a reused 64 KiB buffer;
//  - HTTP requests/s: Node's http server and client, unchanged, keep-alive,
//    8 requests in flight, 64-byte bodies.
// Each first warms up on its own measured loop until it stops getting faster
// (packages/sdp/bench/worker.mjs, warmUp).
// Each is repeated BENCH_REPS times (default 5); medians are reported.
// Writes bench-results/sdp.json and sdp.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, killAll } from './bench/children.mjs';
import { median } from './bench/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const outDir = path.join(root, 'bench-results');
const worker = path.join(root, 'packages', 'sdp', 'bench', 'worker.mjs');
const REPS = Number(process.env.BENCH_REPS ?? 5);
const MIB = Number(process.env.BENCH_SDP_MIB ?? 1024);
const COUNTS = {
  latency: Number(process.env.BENCH_SDP_LAT_ITERS ?? 5000),
  throughput: MIB,
  pull: MIB,
  onread: MIB,
  http: Number(process.env.BENCH_SDP_HTTP_REQS ?? 10000),
};
const SERVER_KIND = { latency: 'echo', throughput: 'sink', pull: 'source', onread: 'source', http: 'http' };
const FIELD = { latency: 'rttUs', throughput: 'mibPerSec', pull: 'mibPerSec', onread: 'mibPerSec', http: 'requestsPerSec' };

const results = {
  meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', reps: REPS, counts: COUNTS, softShm: process.env.IBAL_SOFT_SHM ?? 'default' },
  samples: {},
  errors: [],
};

async function measure(transport, test) {
  const server = new Child(worker, ['server', transport, SERVER_KIND[test]]);
  try {
    const { port, udpPort } = await server.message('port', 30_000);
    const client = new Child(worker, ['client', transport, test, String(port), String(udpPort), String(COUNTS[test])]);
    try {
      const r = await client.message(FIELD[test], 300_000);
      await client.exit(10_000);
      return r;
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

try {
  for (let rep = 0; rep < REPS; rep++) {
    for (const test of ['latency', 'throughput', 'pull', 'onread', 'http']) {
      for (const transport of ['tcp', 'sdp']) {
        const key = `${transport}.${test}`;
        try {
          const r = await measure(transport, test);
          (results.samples[key] ??= []).push(r[FIELD[test]]);
          if (test === 'latency') {
            for (const [field, name] of [['rttMedianUs', 'latencyMedian'], ['rttP90Us', 'latencyP90'], ['rttP99Us', 'latencyP99']]) {
              if (typeof r[field] === 'number') (results.samples[`${transport}.${name}`] ??= []).push(r[field]);
            }
          }
        } catch (err) {
          results.errors.push(`${key} (run ${rep + 1}): ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  }
} finally {
  killAll();
}

const med = Object.fromEntries(Object.entries(results.samples).map(([k, v]) => [k, median(v)]));
results.medians = med;
const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : null);
results.headline = {
  latencySdpOverTcp: ratio(med['sdp.latency'], med['tcp.latency']),
  latencyMedianSdpOverTcp: ratio(med['sdp.latencyMedian'], med['tcp.latencyMedian']),
  throughputSdpOverTcp: ratio(med['sdp.throughput'], med['tcp.throughput']),
  onreadSdpOverTcp: ratio(med['sdp.onread'], med['tcp.onread']),
  httpSdpOverTcp: ratio(med['sdp.http'], med['tcp.http']),
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'sdp.json'), JSON.stringify(results, null, 2) + '\n');

const f = (v, d = 1) => (typeof v === 'number' ? v.toFixed(d) : 'n/a');
const md = [
  `# ibal SDP vs TCP (${results.meta.date})`,
  '',
  `Two processes on 127.0.0.1; Node ${results.meta.node}, ${results.meta.cpus} CPUs (${results.meta.cpuModel}); medians of ${REPS} runs.`,
  `SDP: @ibal/sdp over the soft RoCEv2 HCA (connection set up by @ibal/cm); TCP: Node net on loopback, same worker code.`,
  '',
  '| measurement | TCP | SDP |',
  '|---|---:|---:|',
  `| 64 B request/response, mean round trip µs (${COUNTS.latency} exchanges) | ${f(med['tcp.latency'])} | ${f(med['sdp.latency'])} |`,
  `| 64 B request/response, median round trip µs (t_typical) | ${f(med['tcp.latencyMedian'])} | ${f(med['sdp.latencyMedian'])} |`,
  `| 64 B request/response, 90th / 99th percentile µs | ${f(med['tcp.latencyP90'])} / ${f(med['tcp.latencyP99'])} | ${f(med['sdp.latencyP90'])} / ${f(med['sdp.latencyP99'])} |`,
  `| 1 MiB writes, MiB/s (${COUNTS.throughput} MiB) | ${f(med['tcp.throughput'])} | ${f(med['sdp.throughput'])} |`,
  `| 1 MiB writes server → client, read with 'data', MiB/s | ${f(med['tcp.pull'])} | ${f(med['sdp.pull'])} |`,
  `| 1 MiB writes server → client, read with onread (64 KiB buffer), MiB/s | ${f(med['tcp.onread'])} | ${f(med['sdp.onread'])} |`,
  `| HTTP keep-alive requests/s (${COUNTS.http} requests, 8 in flight) | ${f(med['tcp.http'], 0)} | ${f(med['sdp.http'], 0)} |`,
  '',
  '| headline | value | aim |',
  '|---|---:|---|',
  `| SDP latency / TCP latency (mean round trip) | ${f(results.headline.latencySdpOverTcp, 3)} | ≤ 0.5 |`,
  `| SDP latency / TCP latency (median round trip) | ${f(results.headline.latencyMedianSdpOverTcp, 3)} | ≤ 0.5 |`,
  `| SDP 1 MiB throughput / TCP | ${f(results.headline.throughputSdpOverTcp, 3)} | ≥ 1.5 |`,
  `| SDP 1 MiB throughput / TCP, both read with onread | ${f(results.headline.onreadSdpOverTcp, 3)} | (no aim) |`,
  `| SDP HTTP requests/s / TCP | ${f(results.headline.httpSdpOverTcp, 3)} | ≥ 1 |`,
  ...(results.errors.length ? ['', '## Errors', '', ...results.errors.map((e) => `- ${e}`)] : []),
  '',
].join('\n');
fs.writeFileSync(path.join(outDir, 'sdp.md'), md);
process.stdout.write(md);
