// The typed-array collectives' entry points, as Comm's capitalised methods
// call them: each resolves its buffers to contiguous sides (a datatype's
// packed into a copy), checks its arguments as MPI states them, runs the
// algorithm in coll/ on the communicator's next collective channel, and
// unpacks what arrived. Comm keeps the methods (mpi4py's API) and their
// documentation; the work is here.
import { checkCounts, checkRank, checkSameType, prefix } from '../args.js';
import type { SendBuf } from '../comm.js';
import { IN_PLACE } from '../constants.js';
import { blockOf, copyOfSide, reductionOp, scaled, side, typedBlocks, type Buf, type Side } from '../dtype/buffer.js';
import type { Datatype } from '../dtype/datatype.js';
import { InvalidArgumentError } from '../errors.js';
import type { Op, TypedArray } from '../ops.js';
import { allgatherv } from './allgather.js';
import { allreduce } from './allreduce.js';
import { alltoallv, alltoallw } from './alltoall.js';
import { bcast } from './bcast.js';
import { gatherv } from './gather.js';
import { reduce } from './reduce.js';
import { reduceScatter } from './reduce-scatter.js';
import { scan } from './scan.js';
import { scatterv } from './scatter.js';
import type { Coll } from './util.js';

/** What an entry needs of its communicator. */
export interface Members {
  readonly rank: number;
  readonly size: number;
  /** The next collective's channel: it takes its place in the communicator's order of collectives. */
  coll(): Coll;
}

/** Whether `buf` is IN_PLACE, which only the root of a rooted collective may pass. */
function rootInPlace(m: Members, buf: unknown, root: number, what: string): boolean {
  if (buf !== IN_PLACE) return false;
  if (m.rank !== root) throw new InvalidArgumentError(`${what}: IN_PLACE is for the root only (rank ${root})`);
  return true;
}

/** Block `j` of `s` split evenly over `size` ranks (an in-place rooted or all-to-all collective's own block). */
function evenBlock(s: Side, j: number, size: number, what: string): Side {
  if (s.array.length % size !== 0) throw new InvalidArgumentError(`${what}: with IN_PLACE the buffer's ${s.array.length} elements must split evenly over ${size} ranks`);
  const n = s.array.length / size;
  return blockOf(s, j * n, n);
}

export async function typedBcast(m: Members, buf: Buf, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const s = side(buf, 'Bcast buffer', m.rank === root ? 'send' : 'recv');
  await bcast(m.coll(), s.array, root);
  s.unpack?.(s.array.byteLength);
  s.release();
}

export async function typedReduce(m: Members, sendbuf: SendBuf, recvbuf: Buf | undefined, op: Op, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const atRoot = m.rank === root;
  const inPlace = sendbuf === IN_PLACE;
  const r = atRoot || inPlace ? side(recvbuf, inPlace ? 'Reduce recvbuf (IN_PLACE)' : 'Reduce recvbuf', inPlace ? 'inout' : 'recv') : undefined;
  const s = inPlace ? r! : side(sendbuf, 'Reduce sendbuf', 'send');
  const o = reductionOp(op, s, 'Reduce');
  const send = inPlace ? s.array.slice() : s.array;
  if (atRoot) fits(send, r!, 'Reduce');
  await reduce(m.coll(), send, atRoot ? r!.array.subarray(0, send.length) : undefined, o, root);
  if (atRoot) r!.unpack?.(send.byteLength);
  s.release();
  r?.release();
}

export async function typedAllreduce(m: Members, sendbuf: SendBuf, recvbuf: Buf, op: Op): Promise<void> {
  const r = side(recvbuf, 'Allreduce recvbuf', sendbuf === IN_PLACE ? 'inout' : 'recv');
  const s = sendbuf === IN_PLACE ? r : side(sendbuf, 'Allreduce sendbuf', 'send');
  const o = reductionOp(op, s, 'Allreduce');
  fits(s.array, r, 'Allreduce');
  await allreduce(m.coll(), s.array, r.array.subarray(0, s.array.length), o);
  r.unpack?.(s.array.byteLength);
  s.release();
}

function fits(send: TypedArray, r: Side, what: string, n = send.length): void {
  checkSameType(send, r.array, what);
  if (r.array.length < n) throw new InvalidArgumentError(`${what}: recvbuf has ${r.array.length} elements, ${n} needed`);
}

export async function typedGather(m: Members, sendbuf: SendBuf, recvbuf: Buf | undefined, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const inPlace = rootInPlace(m, sendbuf, root, 'Gather');
  const r = m.rank === root ? side(recvbuf, 'Gather recvbuf', inPlace ? 'inout' : 'recv') : undefined;
  const s = inPlace ? evenBlock(r!, root, m.size, 'Gather') : side(sendbuf, 'Gather sendbuf', 'send');
  const n = s.array.length;
  if (r) fits(s.array, r, 'Gather', n * m.size);
  const counts = new Array<number>(m.size).fill(n);
  await gatherv(m.coll(), s.array, r?.array, counts, prefix(counts), root);
  r?.unpack?.(n * m.size * s.array.BYTES_PER_ELEMENT);
  s.release();
}

export async function typedGatherv(m: Members, sendbuf: SendBuf, recvbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const inPlace = rootInPlace(m, sendbuf, root, 'Gatherv');
  if (m.rank !== root) {
    const s = side(sendbuf, 'Gatherv sendbuf', 'send');
    await gatherv(m.coll(), s.array, undefined, undefined, undefined, root);
    s.release();
    return;
  }
  const r = side(recvbuf, 'Gatherv recvbuf', 'inout');
  const [c, d] = scaled(counts, displs, r, m.size, 'Gatherv');
  const s = inPlace ? blockOf(r, d[root]!, c[root]!) : side(sendbuf, 'Gatherv sendbuf', 'send');
  fits(s.array, r, 'Gatherv', 0);
  if (s.array.length < c[root]!) throw new InvalidArgumentError('Gatherv: the root sendbuf is shorter than its count');
  await gatherv(m.coll(), s.array, r.array, c, d, root);
  r.unpack?.(r.array.byteLength);
  s.release();
}

export async function typedScatter(m: Members, sendbuf: Buf | undefined, recvbuf: Buf | typeof IN_PLACE, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const inPlace = rootInPlace(m, recvbuf, root, 'Scatter');
  const s = m.rank === root ? side(sendbuf, 'Scatter sendbuf', 'send') : undefined;
  const r = inPlace ? evenBlock(s!, root, m.size, 'Scatter') : side(recvbuf, 'Scatter recvbuf', 'recv');
  const n = r.array.length;
  if (s) {
    checkSameType(s.array, r.array, 'Scatter');
    if (s.array.length < n * m.size) throw new InvalidArgumentError(`Scatter: sendbuf needs ${n * m.size} elements`);
  }
  const counts = new Array<number>(m.size).fill(n);
  await scatterv(m.coll(), s?.array, counts, prefix(counts), r.array, root);
  r.unpack?.(r.array.byteLength);
  s?.release();
}

export async function typedScatterv(m: Members, sendbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, recvbuf: Buf | typeof IN_PLACE, root: number): Promise<void> {
  checkRank(root, m.size, 'root');
  const inPlace = rootInPlace(m, recvbuf, root, 'Scatterv');
  let c: number[] | undefined;
  let d: number[] | undefined;
  let s: Side | undefined;
  if (m.rank === root) {
    s = side(sendbuf, 'Scatterv sendbuf', 'send');
    [c, d] = scaled(counts, displs, s, m.size, 'Scatterv');
  }
  // inout: a count smaller than recvbuf leaves its tail as it was.
  const r = inPlace ? blockOf(s!, d![root]!, c![root]!) : side(recvbuf, 'Scatterv recvbuf', 'inout');
  if (s) checkSameType(s.array, r.array, 'Scatterv');
  await scatterv(m.coll(), s?.array, c, d, r.array, root);
  r.unpack?.(r.array.byteLength);
  s?.release();
}

export async function typedAllgather(m: Members, sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, 'Allgather recvbuf', inPlace ? 'inout' : 'recv');
  const s = inPlace ? evenBlock(r, m.rank, m.size, 'Allgather') : side(sendbuf, 'Allgather sendbuf', 'send');
  const n = s.array.length;
  fits(s.array, r, 'Allgather', n * m.size);
  const counts = new Array<number>(m.size).fill(n);
  await allgatherv(m.coll(), s.array, r.array, counts, prefix(counts));
  r.unpack?.(n * m.size * s.array.BYTES_PER_ELEMENT);
  s.release();
}

export async function typedAllgatherv(m: Members, sendbuf: SendBuf, recvbuf: Buf, counts: number[], displs?: number[]): Promise<void> {
  const r = side(recvbuf, 'Allgatherv recvbuf', 'inout');
  const [c, d] = scaled(counts, displs, r, m.size, 'Allgatherv');
  const s = sendbuf === IN_PLACE ? blockOf(r, d[m.rank]!, c[m.rank]!) : side(sendbuf, 'Allgatherv sendbuf', 'send');
  fits(s.array, r, 'Allgatherv', 0);
  await allgatherv(m.coll(), s.array, r.array, c, d);
  r.unpack?.(r.array.byteLength);
  s.release();
}

export async function typedAlltoall(m: Members, sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, 'Alltoall recvbuf', inPlace ? 'inout' : 'recv');
  const s = inPlace ? copyOfSide(r) : side(sendbuf, 'Alltoall sendbuf', 'send');
  const total = s.array.length;
  if (total % m.size !== 0) throw new InvalidArgumentError(`Alltoall: sendbuf length ${total} is not a multiple of ${m.size}`);
  fits(s.array, r, 'Alltoall', total);
  const counts = new Array<number>(m.size).fill(total / m.size);
  const displs = prefix(counts);
  await alltoallv(m.coll(), s.array, counts, displs, r.array, counts, displs);
  r.unpack?.(s.array.byteLength);
  s.release();
}

export async function typedAlltoallv(m: Members, sendbuf: SendBuf, scounts: number[] | undefined, sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Promise<void> {
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, 'Alltoallv recvbuf', 'inout');
  const s = inPlace ? copyOfSide(r) : side(sendbuf, 'Alltoallv sendbuf', 'send');
  checkSameType(s.array, r.array, 'Alltoallv');
  const [rc, rd] = scaled(rcounts, rdispls, r, m.size, 'Alltoallv (receive)');
  const [sc, sd] = inPlace ? [rc, rd] : scaled(scounts, sdispls, s, m.size, 'Alltoallv (send)');
  await alltoallv(m.coll(), s.array, sc, sd, r.array, rc, rd);
  r.unpack?.(r.array.byteLength);
  s.release();
}

export async function typedAlltoallw(m: Members, sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Promise<void> {
  const s = typedBlocks(sendbuf, scounts, sdispls, stypes, m.size, 'Alltoallw (send)', 'send');
  const r = typedBlocks(recvbuf, rcounts, rdispls, rtypes, m.size, 'Alltoallw (receive)', 'recv');
  await alltoallw(m.coll(), s.map((b) => b.array), r.map((b) => b.array));
  for (const b of r) b.unpack?.(b.array.byteLength);
  for (const b of s) b.release();
}

export async function typedScan(m: Members, sendbuf: SendBuf, recvbuf: Buf, op: Op, exclusive: boolean): Promise<void> {
  const what = exclusive ? 'Exscan' : 'Scan';
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, `${what} recvbuf`, inPlace ? 'inout' : 'recv');
  const s = inPlace ? r : side(sendbuf, `${what} sendbuf`, 'send');
  const o = reductionOp(op, s, what);
  const send = inPlace ? s.array.slice() : s.array;
  fits(send, r, what);
  await scan(m.coll(), send, r.array.subarray(0, send.length), o, exclusive);
  if (!(exclusive && m.rank === 0)) r.unpack?.(send.byteLength);
  s.release();
  r.release();
}

export async function typedReduceScatter(m: Members, sendbuf: SendBuf, recvbuf: Buf, counts: number[], op: Op): Promise<void> {
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, 'ReduceScatter recvbuf', inPlace ? 'inout' : 'recv');
  return reduceScatterSides(m, inPlace ? copyOfSide(r) : side(sendbuf, 'ReduceScatter sendbuf', 'send'), r, counts, op, 'ReduceScatter');
}

export async function typedReduceScatterBlock(m: Members, sendbuf: SendBuf, recvbuf: Buf, op: Op): Promise<void> {
  const inPlace = sendbuf === IN_PLACE;
  const r = side(recvbuf, 'ReduceScatterBlock recvbuf', inPlace ? 'inout' : 'recv');
  const s = inPlace ? copyOfSide(r) : side(sendbuf, 'ReduceScatterBlock sendbuf', 'send');
  if (inPlace && r.count % m.size !== 0) throw new InvalidArgumentError(`ReduceScatterBlock: with IN_PLACE, recvbuf's count ${r.count} must be a multiple of ${m.size}`);
  return reduceScatterSides(m, s, r, new Array<number>(m.size).fill(inPlace ? r.count / m.size : r.count), op, 'ReduceScatterBlock');
}

async function reduceScatterSides(m: Members, s: Side, r: Side, counts: number[], op: Op, what: string): Promise<void> {
  checkSameType(s.array, r.array, what);
  checkCounts(counts, undefined, m.size, what);
  const c = counts.map((n) => n * r.per);
  const total = c.reduce((a, b) => a + b, 0);
  if (s.array.length < total) throw new InvalidArgumentError(`${what}: sendbuf needs ${total} elements`);
  if (r.array.length < c[m.rank]!) throw new InvalidArgumentError(`${what}: recvbuf needs ${c[m.rank]} elements`);
  const o = reductionOp(op, s, what);
  if (c.some((n) => n % o.unit !== 0)) throw new InvalidArgumentError(`${what}: ${o.name} needs counts in whole groups of ${o.unit} elements`);
  await reduceScatter(m.coll(), s.array, r.array, c, o);
  r.unpack?.(c[m.rank]! * r.array.BYTES_PER_ELEMENT);
  s.release();
}
