// The rank side of `mpilite bench`, timed as the OSU micro-benchmarks time
// theirs: warm-up iterations first (for a time as well as a count, see
// DEFAULT_WARMUP_MS), then the timed loop; latency is half a
// round trip; bandwidth sends a window of 64 messages and waits for a short
// ack; collectives report the average over ranks of each rank's mean time;
// one-sided latencies (osu_put_latency, osu_get_latency, osu_acc_latency)
// time one operation and a Flush under LockAll, and put_bw a window of 64
// Puts and a Flush, rank 0 the origin and rank 1 the target. ddt_latency
// is the ping-pong of `size` bytes of doubles laid out every other one (a
// vector datatype on both sides, OSU's derived-datatype latency).
import { DOUBLE, InvalidArgumentError, SUM, Win, dimsCreate, finalize, init, wtime, type Buf, type Comm } from '@ibal/mpi';

export type BenchKind = 'latency' | 'ddt_latency' | 'bw' | 'bibw' | 'allreduce' | 'bcast' | 'alltoall' | 'neighbor_alltoall' | 'put_latency' | 'get_latency' | 'acc_latency' | 'put_bw';
export const BENCH_KINDS: BenchKind[] = ['latency', 'ddt_latency', 'bw', 'bibw', 'allreduce', 'bcast', 'alltoall', 'neighbor_alltoall', 'put_latency', 'get_latency', 'acc_latency', 'put_bw'];
const RMA_KINDS: BenchKind[] = ['put_latency', 'get_latency', 'acc_latency', 'put_bw'];
/** Kinds every rank takes part in; the others are between ranks 0 and 1. */
export const COLLECTIVE_KINDS: BenchKind[] = ['allreduce', 'bcast', 'alltoall', 'neighbor_alltoall'];

export interface BenchResult {
  bench: BenchKind;
  ranks: number;
  unit: string;
  results: { size: number; value: number }[];
}

const WINDOW = 64;

// Timed iterations: --iters when given (0 here means "not given"), else
// OSU-like defaults by kind and size.
const DEFAULT_ITERS: Record<'p2p' | 'bw' | 'coll', [small: number, large: number]> = { p2p: [10000, 100], bw: [100, 20], coll: [1000, 50] };

/**
 * Warm-up before the timed loop: at least a tenth of the iterations (2 at
 * least), as OSU's skip, and at least `warmupMs` of them. A fixed count is
 * not enough for a JIT: V8 compiles the hot path in tiers over the first
 * few hundred milliseconds, and on 2 cores with both ranks spinning its
 * compiler threads compete with them, so the first thousands of 8-byte
 * round trips measured 10-50x slower than the rest.
 */
export const DEFAULT_WARMUP_MS = 500;

function itersFor(size: number, given: number, kind: 'p2p' | 'bw' | 'coll'): { iters: number; minWarmup: number } {
  const iters = given > 0 ? given : DEFAULT_ITERS[kind][size > 65536 ? 1 : 0];
  return { iters, minWarmup: Math.max(2, Math.floor(iters / 10)) };
}

/** Runs iterations `from` to `to` (exclusive) of a benchmark's loop. */
type Loop = (from: number, to: number) => Promise<void>;

/** Tag of rank 0's warm-up decisions (the benchmarks' own messages use 1, 2 and 100+). */
const WARMUP_TAG = 7;
/** Tag of the origin's end-of-loop note to the target in one-sided benchmarks. */
const DONE_TAG = 8;

/**
 * Runs batches of iterations until rank 0 has seen both `minIters` of them
 * and `warmupMs` pass. Rank 0 tells the others after each batch, with the
 * same Send and Recv of a Uint8Array the latency test times: a collective
 * here (a bcast) left V8's feedback for the p2p path polymorphic, and the
 * timed loop ran 1.3-2x slower than after a warm-up of p2p alone.
 */
async function warmUp(comm: Comm, minIters: number, warmupMs: number, loop: Loop): Promise<void> {
  const batch = Math.max(1, Math.min(100, minIters));
  const go = new Uint8Array(1);
  const t0 = wtime();
  let done = 0;
  for (;;) {
    await loop(done, done + batch);
    done += batch;
    if (comm.rank === 0) {
      go[0] = done < minIters || (wtime() - t0) * 1000 < warmupMs ? 1 : 0;
      for (let r = 1; r < comm.size; r++) await comm.Send(go, r, WARMUP_TAG);
    } else await comm.Recv(go, 0, WARMUP_TAG);
    if (go[0] === 0) return;
  }
}

/** Warm-up, then `iters` timed steps; the seconds they took on this rank. */
async function timed(comm: Comm, size: number, base: number, kind: 'p2p' | 'bw' | 'coll', warmupMs: number, loop: Loop): Promise<{ secs: number; iters: number }> {
  const { iters, minWarmup } = itersFor(size, base, kind);
  await warmUp(comm, minWarmup, warmupMs, loop);
  // The last decision already lined up ranks 0 and 1; collectives start together.
  if (kind === 'coll') await comm.Barrier();
  const t0 = wtime();
  await loop(0, iters);
  return { secs: wtime() - t0, iters };
}

async function latency(comm: Comm, size: number, base: number, warmupMs: number, strided: boolean): Promise<number> {
  const n = Math.floor(size / 8);
  const vector = strided ? DOUBLE.createVector(n, 1, 2).commit() : undefined;
  const buf: Buf = vector ? [new Float64Array(2 * n), 1, vector] : new Uint8Array(size);
  const loop = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      if (comm.rank === 0) {
        await comm.Send(buf, 1, 1);
        await comm.Recv(buf, 1, 1);
      } else if (comm.rank === 1) {
        await comm.Recv(buf, 0, 1);
        await comm.Send(buf, 0, 1);
      }
    }
  };
  const { secs, iters } = await timed(comm, size, base, 'p2p', warmupMs, loop);
  vector?.free();
  return (secs * 1e6) / (2 * iters);
}

async function bandwidth(comm: Comm, size: number, base: number, bidirectional: boolean, warmupMs: number): Promise<number> {
  // One send and one receive buffer for the whole window, as osu_bw does.
  const sbuf = new Uint8Array(size);
  const rbuf = new Uint8Array(size);
  const ack = new Uint8Array(4);
  const loop = async (from: number, to: number): Promise<void> => {
    if (comm.rank > 1) return;
    const peer = 1 - comm.rank;
    for (let i = from; i < to; i++) {
      const reqs = [];
      if (comm.rank === 0 || bidirectional) for (let w = 0; w < WINDOW; w++) reqs.push(comm.Isend(sbuf, peer, 100 + w));
      if (comm.rank === 1 || bidirectional) for (let w = 0; w < WINDOW; w++) reqs.push(comm.Irecv(rbuf, peer, 100 + w));
      for (const r of reqs) await r.wait();
      if (comm.rank === 0) await comm.Recv(ack, 1, 2);
      else await comm.Send(ack, 0, 2);
    }
  };
  const { secs, iters } = await timed(comm, size, base, 'bw', warmupMs, loop);
  return ((bidirectional ? 2 : 1) * size * WINDOW * iters) / secs / 1e6;
}

async function oneSided(comm: Comm, kind: BenchKind, size: number, base: number, warmupMs: number): Promise<number> {
  const win = await Win.Allocate(size, comm);
  // Accumulates move doubles: a size under 8 bytes still moves one.
  const origin = kind === 'acc_latency' ? new Float64Array(Math.max(1, Math.floor(size / 8))) : new Uint8Array(size);
  await win.LockAll();
  const loop = async (from: number, to: number): Promise<void> => {
    if (comm.rank !== 0) return;
    for (let i = from; i < to; i++) {
      if (kind === 'put_bw') for (let w = 0; w < WINDOW; w++) win.Put(origin, 1);
      else if (kind === 'put_latency') win.Put(origin, 1);
      else if (kind === 'get_latency') win.Get(origin, 1);
      else win.Accumulate(origin, 1, 0, SUM);
      await win.Flush(1);
    }
  };
  const { secs, iters } = await timed(comm, size, base, kind === 'put_bw' ? 'bw' : 'p2p', warmupMs, loop);
  // The target sends nothing until the origin's timed loop is over: its
  // unlock (or a barrier's message) arriving in the middle of it was a kind
  // of message the warm-up had not shown the origin's progress path, and V8
  // deoptimized it there: the first size measured 3-7x slower than the rest.
  const over = new Uint8Array(1);
  if (comm.rank === 0) await comm.Send(over, 1, DONE_TAG);
  else if (comm.rank === 1) await comm.Recv(over, 0, DONE_TAG);
  await win.UnlockAll();
  await win.Free();
  return kind === 'put_bw' ? (size * WINDOW * iters) / secs / 1e6 : (secs * 1e6) / iters;
}

async function collective(comm: Comm, kind: BenchKind, size: number, base: number, warmupMs: number): Promise<number> {
  const n = Math.max(1, Math.floor(size / 8));
  // neighbor_alltoall: a halo exchange on a periodic 2-d grid, `size` bytes to each of its four neighbor slots.
  const grid = kind === 'neighbor_alltoall' ? (await comm.createCart(dimsCreate(comm.size, 2), [true, true]))! : undefined;
  const blocks = kind === 'alltoall' ? comm.size : grid ? grid.outdegree : 1;
  const a = new Float64Array(n * blocks).fill(comm.rank + 1);
  const b = new Float64Array(a.length);
  const loop = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      if (kind === 'allreduce') await comm.Allreduce(a, b, SUM);
      else if (kind === 'bcast') await comm.Bcast(a, i % comm.size);
      else if (grid) await grid.NeighborAlltoall(a, b);
      else await comm.Alltoall(a, b);
    }
  };
  const { secs, iters } = await timed(comm, size, base, 'coll', warmupMs, loop);
  grid?.free();
  const mine = Float64Array.of((secs * 1e6) / iters);
  const sum = new Float64Array(1);
  await comm.Allreduce(mine, sum, SUM);
  return sum[0]! / comm.size;
}

export function defaultSizes(kind: BenchKind): number[] {
  const out: number[] = [];
  const first = kind === 'latency' || kind === 'put_latency' || kind === 'get_latency' ? 0 : kind === 'ddt_latency' ? 8 : kind === 'bw' || kind === 'bibw' || kind === 'put_bw' ? 1 : 8;
  if (first === 0) out.push(0);
  for (let s = Math.max(1, first); s <= (kind === 'alltoall' || kind === 'neighbor_alltoall' ? 1 << 18 : 1 << 22); s *= 2) out.push(s);
  return out;
}

export async function benchRank(kind: BenchKind, sizes: number[], base: number, json: boolean, warmupMs = DEFAULT_WARMUP_MS): Promise<void> {
  const comm = await init();
  if (!COLLECTIVE_KINDS.includes(kind) && comm.size < 2) throw new InvalidArgumentError(`${kind} needs 2 ranks or more`);
  const results: { size: number; value: number }[] = [];
  const unit = kind === 'bw' || kind === 'bibw' || kind === 'put_bw' ? 'MB/s' : 'us';
  if (comm.rank === 0 && !json) {
    const title = {
      latency: 'Latency',
      ddt_latency: 'Latency (vector datatype, every other double)',
      bw: 'Bandwidth',
      bibw: 'Bi-Directional Bandwidth',
      allreduce: 'Allreduce Latency',
      bcast: 'Broadcast Latency',
      alltoall: 'All-to-All Latency',
      neighbor_alltoall: 'Neighborhood All-to-All Latency (periodic 2-d grid)',
      put_latency: 'One Sided MPI_Put Latency',
      get_latency: 'One Sided MPI_Get Latency',
      acc_latency: 'One Sided Accumulate Latency',
      put_bw: 'One Sided MPI_Put Bandwidth',
    }[kind];
    process.stdout.write(`# MPI-lite ${title} Test (OSU style), ${comm.size} ranks\n# ${'Size'.padEnd(10)} ${unit === 'MB/s' ? 'Bandwidth (MB/s)' : 'Avg Latency(us)'}\n`);
  }
  for (const size of sizes) {
    let v: number;
    if (kind === 'latency' || kind === 'ddt_latency') v = await latency(comm, size, base, warmupMs, kind === 'ddt_latency');
    else if (kind === 'bw' || kind === 'bibw') v = await bandwidth(comm, size, base, kind === 'bibw', warmupMs);
    else if (RMA_KINDS.includes(kind)) v = await oneSided(comm, kind, size, base, warmupMs);
    else v = await collective(comm, kind, size, base, warmupMs);
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
