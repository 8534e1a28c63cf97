// The rank side of `mpilite bench`, timed as the OSU micro-benchmarks time
// theirs: warm-up iterations first, then the timed loop; latency is half a
// round trip; bandwidth sends a window of 64 messages and waits for a short
// ack; collectives report the average over ranks of each rank's mean time.
import { MAX, SUM, finalize, init, wtime, type Comm } from '@ibal/mpi';

export type BenchKind = 'latency' | 'bw' | 'bibw' | 'allreduce' | 'bcast' | 'alltoall';
export const BENCH_KINDS: BenchKind[] = ['latency', 'bw', 'bibw', 'allreduce', 'bcast', 'alltoall'];

export interface BenchResult {
  bench: BenchKind;
  ranks: number;
  unit: string;
  results: { size: number; value: number }[];
}

const WINDOW = 64;

// Timed iterations: --iters when given (0 here means "not given"), else
// OSU-like defaults by kind and size; warm-up is a tenth of them (at least 2).
const DEFAULT_ITERS: Record<'p2p' | 'bw' | 'coll', [small: number, large: number]> = { p2p: [10000, 100], bw: [100, 20], coll: [1000, 50] };

function itersFor(size: number, given: number, kind: 'p2p' | 'bw' | 'coll'): { iters: number; warmup: number } {
  const iters = given > 0 ? given : DEFAULT_ITERS[kind][size > 65536 ? 1 : 0];
  return { iters, warmup: Math.max(2, Math.floor(iters / 10)) };
}

async function latency(comm: Comm, size: number, base: number): Promise<number> {
  const { iters, warmup } = itersFor(size, base, 'p2p');
  const buf = new Uint8Array(size);
  let t0 = 0;
  for (let i = 0; i < iters + warmup; i++) {
    if (i === warmup) t0 = wtime();
    if (comm.rank === 0) {
      await comm.Send(buf, 1, 1);
      await comm.Recv(buf, 1, 1);
    } else if (comm.rank === 1) {
      await comm.Recv(buf, 0, 1);
      await comm.Send(buf, 0, 1);
    }
  }
  return ((wtime() - t0) * 1e6) / (2 * iters);
}

async function bandwidth(comm: Comm, size: number, base: number, bidirectional: boolean): Promise<number> {
  const { iters, warmup } = itersFor(size, base, 'bw');
  // One send and one receive buffer for the whole window, as osu_bw does.
  const sbuf = new Uint8Array(size);
  const rbuf = new Uint8Array(size);
  const ack = new Uint8Array(4);
  let t0 = 0;
  for (let i = 0; i < iters + warmup; i++) {
    if (i === warmup) t0 = wtime();
    if (comm.rank > 1) continue;
    const peer = 1 - comm.rank;
    const reqs = [];
    if (comm.rank === 0 || bidirectional) for (let w = 0; w < WINDOW; w++) reqs.push(comm.Isend(sbuf, peer, 100 + w));
    if (comm.rank === 1 || bidirectional) for (let w = 0; w < WINDOW; w++) reqs.push(comm.Irecv(rbuf, peer, 100 + w));
    for (const r of reqs) await r.wait();
    if (comm.rank === 0) await comm.Recv(ack, 1, 2);
    else await comm.Send(ack, 0, 2);
  }
  const secs = wtime() - t0;
  return ((bidirectional ? 2 : 1) * size * WINDOW * iters) / secs / 1e6;
}

async function collective(comm: Comm, kind: BenchKind, size: number, base: number): Promise<number> {
  const { iters, warmup } = itersFor(size, base, 'coll');
  const n = Math.max(1, Math.floor(size / 8));
  const a = new Float64Array(kind === 'alltoall' ? n * comm.size : n).fill(comm.rank + 1);
  const b = new Float64Array(a.length);
  let t0 = 0;
  for (let i = 0; i < iters + warmup; i++) {
    if (i === warmup) {
      await comm.Barrier();
      t0 = wtime();
    }
    if (kind === 'allreduce') await comm.Allreduce(a, b, SUM);
    else if (kind === 'bcast') await comm.Bcast(a, i % comm.size);
    else await comm.Alltoall(a, b);
  }
  const mine = Float64Array.of(((wtime() - t0) * 1e6) / iters);
  const sum = new Float64Array(1);
  await comm.Allreduce(mine, sum, SUM);
  const max = new Float64Array(1);
  await comm.Allreduce(mine, max, MAX);
  return sum[0]! / comm.size;
}

export function defaultSizes(kind: BenchKind): number[] {
  const out: number[] = [];
  const first = kind === 'latency' ? 0 : kind === 'bw' || kind === 'bibw' ? 1 : 8;
  if (first === 0) out.push(0);
  for (let s = Math.max(1, first); s <= (kind === 'alltoall' ? 1 << 18 : 1 << 22); s *= 2) out.push(s);
  return out;
}

export async function benchRank(kind: BenchKind, sizes: number[], base: number, json: boolean): Promise<void> {
  const comm = await init();
  if (kind !== 'allreduce' && kind !== 'bcast' && kind !== 'alltoall' && comm.size < 2) throw new Error(`${kind} needs 2 ranks`);
  const results: { size: number; value: number }[] = [];
  const unit = kind === 'bw' || kind === 'bibw' ? 'MB/s' : 'us';
  if (comm.rank === 0 && !json) {
    const title = { latency: 'Latency', bw: 'Bandwidth', bibw: 'Bi-Directional Bandwidth', allreduce: 'Allreduce Latency', bcast: 'Broadcast Latency', alltoall: 'All-to-All Latency' }[kind];
    process.stdout.write(`# MPI-lite ${title} Test (OSU style), ${comm.size} ranks\n# ${'Size'.padEnd(10)} ${unit === 'MB/s' ? 'Bandwidth (MB/s)' : 'Avg Latency(us)'}\n`);
  }
  for (const size of sizes) {
    let v: number;
    if (kind === 'latency') v = await latency(comm, size, base);
    else if (kind === 'bw' || kind === 'bibw') v = await bandwidth(comm, size, base, kind === 'bibw');
    else v = await collective(comm, kind, size, base);
    await comm.Barrier();
    results.push({ size, value: v });
    if (comm.rank === 0 && !json) process.stdout.write(`${String(size).padEnd(12)} ${v.toFixed(2)}\n`);
  }
  if (comm.rank === 0 && json) {
    const r: BenchResult = { bench: kind, ranks: comm.size, unit, results };
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
  await finalize();
}
