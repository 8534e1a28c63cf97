// pnpm bench (second part): the native system primitives between two
// processes on this host, beside their floors measured in the same run:
//  - a C shared-memory ping-pong (compiled here with gcc into a temp dir),
//    waiting the way ibal's Doorbell does (spin, then futex);
//  - a 1 MiB memcpy in C and in Node (Uint8Array.set);
//  - Node net TCP loopback, 8-byte ping-pong;
//  - ibal ShmRing + Doorbell, 8-byte ping-pong between two Node processes;
//  - 1 MiB transfers: through a ShmRing (copy in, copy out) and with one
//    process_vm_writev into the peer's buffer;
//  - the soft HCA between two processes (`ibal perf`): 8-byte RC SEND and
//    RDMA WRITE latency, 1 MiB RDMA WRITE bandwidth, 64 KiB RDMA READ
//    latency and 1 MiB RDMA READ bandwidth over its same-host
//    shared-memory path (IBAL_SOFT_SHM=1), its batched UDP wire
//    (sendmmsg/recvmmsg) and Node's dgram socket (IBAL_SOFT_MMSG=0).
// Each is repeated BENCH_REPS times (default 5); medians are reported.
// Writes bench-results/shm.json and shm.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Child, freePort, killAll } from './bench/children.mjs';
import { median } from './bench/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const outDir = path.join(root, 'bench-results');
const REPS = Number(process.env.BENCH_REPS ?? 5);
const LAT_ITERS = Number(process.env.BENCH_SHM_LAT_ITERS ?? 100000);
const MIB = 1 << 20;
const BW_MIB = 256; // MiB moved per bandwidth sample
const SPIN_NS = 50_000; // Doorbell's default adaptive-spin ceiling
const hca = await import(path.join(root, 'packages', 'hca', 'dist', 'index.js'));
const { ShmRing, ShmSegment, sysStatus, vmWrite } = hca;

const results = {
  meta: {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    reps: REPS,
    latIters: LAT_ITERS,
    sys: sysStatus(),
  },
  samples: {},
  errors: [],
};
const add = (key, v) => (results.samples[key] ??= []).push(v);

async function attempt(what, fn) {
  try {
    await fn();
  } catch (err) {
    results.errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---- C floor --------------------------------------------------------------

let floorBin;
function compileFloor() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-bench-'));
  floorBin = path.join(dir, 'shm-floor');
  const r = spawnSync('gcc', ['-O2', '-o', floorBin, path.join(here, 'bench', 'shm-floor.c')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`gcc failed: ${r.error ?? r.stderr}`);
  return dir;
}

function runFloor(args) {
  const r = spawnSync(floorBin, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`shm-floor ${args.join(' ')}: ${r.error ?? r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---- Node memcpy ----------------------------------------------------------

function nodeMemcpy(iters) {
  const a = new Uint8Array(MIB).fill(1);
  const b = new Uint8Array(MIB);
  for (let i = 0; i < 10; i++) b.set(a);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) {
    a[i & 4095] = i;
    b.set(a);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return iters / s;
}

// ---- TCP ------------------------------------------------------------------

async function tcpLatency() {
  const server = new Child(path.join(here, 'bench', 'tcp-server.mjs'), []);
  try {
    const { port } = await server.message('port', 15_000);
    const client = new Child(path.join(here, 'bench', 'tcp-client.mjs'), [String(port), JSON.stringify({ lat: [[8, 5000]], bw: [] })]);
    try {
      const { result } = await client.message('result', 120_000);
      return result.latUs[8];
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

// ---- ShmRing --------------------------------------------------------------

function ringPair(capacity) {
  const r1 = ShmRing.bytesFor(capacity);
  const seg = ShmSegment.create(2 * r1);
  const tx = ShmRing.create(seg.buffer, 0, capacity);
  const rx = ShmRing.create(seg.buffer, r1, capacity);
  return { seg, tx, rx, r1 };
}

function waitOrThrow(outcome, what) {
  if (outcome === 'timed-out') throw new Error(`${what}: peer silent for 10 s`);
}

async function ringLatency() {
  const { seg, tx, rx, r1 } = ringPair(1 << 16);
  const peer = new Child(path.join(here, 'bench', 'shm-peer.mjs'), ['echo', seg.name, String(r1)]);
  try {
    await peer.message('ready', 15_000);
    seg.unlink(); // both have it mapped: nothing is left behind if either dies
    const msg = new Uint8Array(8);
    const warm = Math.floor(LAT_ITERS / 10) + 100;
    const rtt = new Float64Array(LAT_ITERS);
    let t0 = 0n;
    for (let i = 0; i < warm + LAT_ITERS; i++) {
      if (i === warm) t0 = process.hrtime.bigint();
      const ts = performance.now();
      msg[0] = i;
      if (!tx.tryWrite(msg, i)) throw new Error('ring full');
      let len;
      while ((len = rx.peek()) < 0) waitOrThrow(rx.waitDataSync(10_000), 'echo');
      if (len !== 8 || rx.tag !== i) throw new Error(`echo ${i}: got tag ${rx.tag}`);
      rx.release();
      if (i >= warm) rtt[i - warm] = performance.now() - ts;
    }
    const mean = Number(process.hrtime.bigint() - t0) / 1e3 / LAT_ITERS / 2;
    rtt.sort();
    return { mean, median: (rtt[LAT_ITERS >> 1] * 1000) / 2 };
  } finally {
    tx.close('producer');
    rx.close('consumer');
    peer.kill();
    seg.close();
  }
}

async function ringBandwidth(chunk, capacity) {
  const { seg, tx, rx, r1 } = ringPair(capacity);
  const n = (BW_MIB * MIB) / chunk;
  const peer = new Child(path.join(here, 'bench', 'shm-peer.mjs'), ['sink', seg.name, String(r1), String(n)]);
  try {
    await peer.message('ready', 15_000);
    seg.unlink();
    const src = new Uint8Array(chunk).fill(7);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      let at;
      while ((at = tx.reserve(chunk)) < 0) waitOrThrow(tx.waitSpaceSync(10_000), 'sink');
      tx.data.set(src, at);
      tx.commit(i);
    }
    while (rx.peek() < 0) waitOrThrow(rx.waitDataSync(10_000), 'sink ack');
    rx.release();
    return BW_MIB / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    tx.close('producer');
    rx.close('consumer');
    peer.kill();
    seg.close();
  }
}

async function vmBandwidth() {
  const peer = new Child(path.join(here, 'bench', 'shm-peer.mjs'), ['vm-target', String(MIB)]);
  try {
    const { pid, addr } = await peer.message('ready', 15_000);
    const remote = BigInt(addr);
    const src = new Uint8Array(MIB).fill(9);
    for (let i = 0; i < 10; i++) vmWrite(pid, remote, src);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BW_MIB; i++) vmWrite(pid, remote, src);
    return BW_MIB / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    peer.kill();
  }
}

// ---- the soft HCA over each path -------------------------------------------

const cli = path.join(root, 'apps', 'ibal-utils', 'dist', 'cli.js');
const SOFT_PATHS = {
  shm: { IBAL_SOFT_SHM: '1' },
  udpBatched: { IBAL_SOFT_SHM: '0', IBAL_SOFT_MMSG: '1' },
  udpDgram: { IBAL_SOFT_SHM: '0', IBAL_SOFT_MMSG: '0' },
};
const SOFT_TESTS = [
  { key: 'sendLat8', test: 'send', mode: 'lat', size: 8, iters: 5000, field: 't_typical' },
  { key: 'writeLat8', test: 'write', mode: 'lat', size: 8, iters: 5000, field: 't_typical' },
  // perftest's default of 5000 iterations on the shared-memory path, where a
  // short run measures mostly its own start; fewer on the slower UDP wires.
  { key: 'writeBw1MiB', test: 'write', mode: 'bw', size: MIB, iters: 1000, itersShm: 5000, field: 'BW_average' },
  // READ, which on the shared-memory path the requester completes alone from the responder's published memory.
  { key: 'readLat64K', test: 'read', mode: 'lat', size: 64 << 10, iters: 1000, field: 't_typical' },
  { key: 'readBw1MiB', test: 'read', mode: 'bw', size: MIB, iters: 1000, itersShm: 5000, field: 'BW_average' },
];
let devSeq = 0;

/** One `ibal perf` pair; the client's result row for `size`. */
async function perfPair(env, t) {
  const port = String(await freePort());
  const dev = (role) => ({ ...env, IBAL_SOFT_DEVICES: `shmb${role}${process.pid}x${devSeq++}=127.0.0.1:0` });
  const args = ['perf', t.test, `--${t.mode}`, '-p', port, '--json', '--timeout', '30'];
  const server = new Child(cli, args, dev('s'));
  try {
    await server.output(/Waiting for client to connect/, 15_000);
    const client = new Child(cli, [...args, '127.0.0.1', '--sizes', String(t.size), '-n', String(t.iters), '--warmup', String(t.iters)], dev('c'));
    try {
      const [c, sv] = await Promise.all([client.exit(120_000), server.exit(120_000)]);
      if (c !== 0) throw new Error(`client exited ${c}: ${client.stderr.trim().slice(-300)}`);
      if (sv !== 0) throw new Error(`server exited ${sv}: ${server.stderr.trim().slice(-300)}`);
      const row = JSON.parse(client.stdout).results.find((r) => r.MsgSize === t.size);
      return row[t.field];
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

// ---- run ------------------------------------------------------------------

const fmt = (v, d) => (v === null || v === undefined ? 'n/a' : v.toFixed(d));

async function main() {
  let tmp;
  await attempt('compile C floor', () => {
    tmp = compileFloor();
  });
  const haveSys = results.meta.sys.shm.on && results.meta.sys.futex.on;
  if (!haveSys) results.errors.push(`ibal_sys unavailable: ${results.meta.sys.addon.reason ?? results.meta.sys.shm.reason}`);
  for (let rep = 0; rep < REPS; rep++) {
    if (floorBin) {
      await attempt(`C ping-pong run ${rep}`, () => {
        const r = runFloor(['pingpong', String(LAT_ITERS * 5), String(SPIN_NS)]);
        add('cPingPongUs', r.medianHalfRttUs);
        add('cPingPongMeanUs', r.halfRttUs);
      });
      await attempt(`C memcpy run ${rep}`, () => add('cMemcpyMiBps', runFloor(['memcpy', '4000']).MiBps));
    }
    add('nodeMemcpyMiBps', nodeMemcpy(2000));
    await attempt(`TCP run ${rep}`, async () => add('tcpPingPongUs', await tcpLatency()));
    if (haveSys) {
      await attempt(`ring ping-pong run ${rep}`, async () => {
        const r = await ringLatency();
        add('ringPingPongUs', r.median);
        add('ringPingPongMeanUs', r.mean);
      });
      await attempt(`ring 1 MiB run ${rep}`, async () => add('ring1MiBMiBps', await ringBandwidth(MIB, 4 * MIB)));
      await attempt(`ring 64 KiB run ${rep}`, async () => add('ring64KiBMiBps', await ringBandwidth(64 << 10, 4 * MIB)));
      if (results.meta.sys.vm.on) await attempt(`vm run ${rep}`, async () => add('vmWrite1MiBMiBps', await vmBandwidth()));
    }
    if (fs.existsSync(cli)) {
      for (const [name, env] of Object.entries(SOFT_PATHS)) {
        if (name !== 'udpDgram' && !haveSys) continue;
        for (const t of SOFT_TESTS) {
          const run = name === 'shm' && t.itersShm ? { ...t, iters: t.itersShm } : t;
          await attempt(`soft ${name} ${t.key} run ${rep}`, async () => add(`soft_${name}_${t.key}`, await perfPair(env, run)));
        }
      }
    } else if (rep === 0) {
      results.errors.push(`soft HCA cases skipped: ${cli} is not built`);
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  const m = Object.fromEntries(Object.entries(results.samples).map(([k, v]) => [k, median(v)]));
  results.median = m;
  const ratio = (a, b) => (a && b ? a / b : null);
  results.headline = {
    ringLatencyVsC: ratio(m.ringPingPongUs, m.cPingPongUs),
    ring1MiBVsCMemcpy: ratio(m.ring1MiBMiBps, m.cMemcpyMiBps),
    vmWriteVsCMemcpy: ratio(m.vmWrite1MiBMiBps, m.cMemcpyMiBps),
    tcpLatencyVsRing: ratio(m.tcpPingPongUs, m.ringPingPongUs),
    softShmSendLatVsC: ratio(m.soft_shm_sendLat8, m.cPingPongUs),
    softShmWriteLatVsC: ratio(m.soft_shm_writeLat8, m.cPingPongUs),
    softShmWriteBwVsCMemcpy: ratio(m.soft_shm_writeBw1MiB, m.cMemcpyMiBps),
    softShmSendLatVsUdp: ratio(m.soft_shm_sendLat8, m.soft_udpBatched_sendLat8),
    softShmWriteBwVsUdp: ratio(m.soft_shm_writeBw1MiB, m.soft_udpBatched_writeBw1MiB),
    softShmReadBwVsCMemcpy: ratio(m.soft_shm_readBw1MiB, m.cMemcpyMiBps),
    softShmReadBwVsUdp: ratio(m.soft_shm_readBw1MiB, m.soft_udpBatched_readBw1MiB),
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'shm.json'), JSON.stringify(results, null, 2) + '\n');
  const lines = [
    `# ibal shared-memory primitives (${results.meta.date})`,
    '',
    `Two processes on one host; Node ${results.meta.node}, ${results.meta.cpus} CPUs (${results.meta.cpuModel}); medians of ${REPS} runs.`,
    `Latency: median half round trip of an 8-byte ping-pong, as perftest's t_typical (${LAT_ITERS} round trips per run, C: ${LAT_ITERS * 5}; means in shm.json); waits spin up to ${SPIN_NS / 1000} µs, then futex.`,
    `Bandwidth: MiB/s moving ${BW_MIB} MiB; the ring copies in and out, process_vm_writev copies once.`,
    '',
    '| measurement | median |',
    '|---|---:|',
    `| C shared-memory ping-pong (floor), half RTT µs | ${fmt(m.cPingPongUs, 3)} |`,
    `| ibal ShmRing + Doorbell ping-pong (Node), half RTT µs | ${fmt(m.ringPingPongUs, 3)} |`,
    `| Node net TCP loopback ping-pong, half RTT µs | ${fmt(m.tcpPingPongUs, 2)} |`,
    `| C memcpy 1 MiB, MiB/s | ${fmt(m.cMemcpyMiBps, 0)} |`,
    `| Node Uint8Array.set 1 MiB, MiB/s | ${fmt(m.nodeMemcpyMiBps, 0)} |`,
    `| ShmRing, 1 MiB messages, MiB/s | ${fmt(m.ring1MiBMiBps, 0)} |`,
    `| ShmRing, 1 MiB as 64 KiB messages, MiB/s | ${fmt(m.ring64KiBMiBps, 0)} |`,
    `| process_vm_writev 1 MiB, MiB/s | ${fmt(m.vmWrite1MiBMiBps, 0)} |`,
    '',
    'The soft HCA between two processes (`ibal perf`, RC; latency: t_typical half round trip in µs; bandwidth: BW average in MB/s, 2^20 bytes):',
    '',
    '| path | SEND 8 B µs | WRITE 8 B µs | WRITE 1 MiB MB/s | READ 64 KiB µs (round trip) | READ 1 MiB MB/s |',
    '|---|---:|---:|---:|---:|---:|',
    ...Object.keys(SOFT_PATHS).map(
      (n) =>
        `| ${n} | ${fmt(m[`soft_${n}_sendLat8`], 2)} | ${fmt(m[`soft_${n}_writeLat8`], 2)} | ${fmt(m[`soft_${n}_writeBw1MiB`], 0)} | ${fmt(m[`soft_${n}_readLat64K`], 2)} | ${fmt(m[`soft_${n}_readBw1MiB`], 0)} |`,
    ),
    '',
    '| headline | value |',
    '|---|---:|',
    `| soft HCA shm SEND 8 B latency / C floor (issue aim ≤ 5) | ${fmt(results.headline.softShmSendLatVsC, 1)} |`,
    `| soft HCA shm WRITE 8 B latency / C floor (issue aim ≤ 5) | ${fmt(results.headline.softShmWriteLatVsC, 1)} |`,
    `| soft HCA shm WRITE 1 MiB bw / C memcpy (issue aim ≥ 0.4) | ${fmt(results.headline.softShmWriteBwVsCMemcpy, 3)} |`,
    `| soft HCA shm / batched UDP, SEND 8 B latency | ${fmt(results.headline.softShmSendLatVsUdp, 2)} |`,
    `| soft HCA shm / batched UDP, WRITE 1 MiB bw | ${fmt(results.headline.softShmWriteBwVsUdp, 2)} |`,
    `| soft HCA shm READ 1 MiB bw / C memcpy | ${fmt(results.headline.softShmReadBwVsCMemcpy, 3)} |`,
    `| soft HCA shm / batched UDP, READ 1 MiB bw | ${fmt(results.headline.softShmReadBwVsUdp, 2)} |`,
    `| ring latency / C floor | ${fmt(results.headline.ringLatencyVsC, 2)} |`,
    `| ring 1 MiB bw / C memcpy | ${fmt(results.headline.ring1MiBVsCMemcpy, 3)} |`,
    `| process_vm_writev 1 MiB bw / C memcpy | ${fmt(results.headline.vmWriteVsCMemcpy, 3)} |`,
    `| TCP latency / ring latency | ${fmt(results.headline.tcpLatencyVsRing, 1)} |`,
  ];
  if (results.errors.length) lines.push('', '## Errors', '', ...results.errors.map((e) => `- ${e.replace(/\n/g, ' ')}`));
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(outDir, 'shm.md'), md);
  process.stdout.write(md);
}

try {
  await main();
} finally {
  killAll();
}
