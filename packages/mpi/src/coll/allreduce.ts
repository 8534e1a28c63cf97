// Allreduce. When every member shares this host's memory: through the
// communicator's staging (allreduce-local.ts), for every size while the one
// member that folds all inputs is not a bottleneck (up to 8 members, or
// small vectors); it needs one wake-up per member where message passing
// needs several. Otherwise, small messages and non-commutative operations:
// recursive doubling (log p exchanges of the whole vector), with the MPICH
// fold for a size that is not a power of two: the first 2r ranks pair up
// and one of each pair sits out. Large commutative messages: Rabenseifner's
// algorithm when p is a power of two (reduce-scatter by recursive halving,
// allgather by recursive doubling: 2 log p steps), otherwise the ring
// (reduce-scatter then allgather, 2(p - 1) steps); both move about 2n bytes
// per rank.
import type { Op, TypedArray } from '../ops.js';
import { allgathervRing } from './allgather.js';
import { allreduceLocal } from './allreduce-local.js';
import { reduceScatterRing } from './reduce-scatter.js';
import { blocks, borrow, waitAll, type Coll, copyInto } from './util.js';

/** Staged allreduce for any number of members up to this vector size, and for any size up to this many members. */
const LOCAL_ANY_SIZE_BYTES = 65536;
const LOCAL_ANY_COUNT_MEMBERS = 8;

export async function allreduce(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray, op: Op): Promise<void> {
  const { size } = c;
  const local = c.local;
  if (local && recvbuf.length > 0 && (size <= LOCAL_ANY_COUNT_MEMBERS || recvbuf.byteLength <= LOCAL_ANY_SIZE_BYTES)) {
    // Every member makes the same choice, and false comes back to all alike.
    if (await local.exclusive(() => allreduceLocal(c, local, sendbuf, recvbuf, op))) return;
  }
  if (recvbuf !== sendbuf) copyInto(recvbuf, sendbuf);
  if (size === 1) return;
  if (op.commutative && recvbuf.byteLength >= c.large && recvbuf.length >= size) {
    const { counts, displs } = blocks(recvbuf.length, size, op.unit);
    if ((size & (size - 1)) === 0) {
      await rabenseifner(c, recvbuf, counts, displs, op);
      return;
    }
    await reduceScatterRing(c, recvbuf, counts, displs, op);
    await allgathervRing(c, recvbuf, counts, displs);
    return;
  }
  await recursiveDoubling(c, recvbuf, op);
}

async function recursiveDoubling(c: Coll, acc: TypedArray, op: Op): Promise<void> {
  const { rank, size } = c;
  let pof2 = 1;
  while (pof2 * 2 <= size) pof2 *= 2;
  const rem = size - pof2;
  const scratch = borrow(acc, acc.length);
  const tmp = scratch.buf;
  let newrank: number;
  if (rank < 2 * rem) {
    if (rank % 2 === 0) {
      await c.isend(acc, rank + 1).wait();
      newrank = -1;
    } else {
      await c.irecv(tmp, rank - 1).wait();
      op.apply(tmp, acc); // rank - 1 comes first
      newrank = rank >> 1;
    }
  } else {
    newrank = rank - rem;
  }
  if (newrank >= 0) {
    for (let mask = 1; mask < pof2; mask <<= 1) {
      const newdst = newrank ^ mask;
      const dst = newdst < rem ? newdst * 2 + 1 : newdst + rem;
      const r = c.irecv(tmp, dst);
      const s = c.isend(acc, dst);
      await r.wait();
      await s.wait();
      if (newdst < newrank) op.apply(tmp, acc);
      else {
        op.apply(acc, tmp);
        copyInto(acc, tmp);
      }
    }
  }
  if (rank < 2 * rem) {
    if (rank % 2 === 1) await c.isend(acc, rank - 1).wait();
    else await c.irecv(acc, rank + 1).wait();
  }
  scratch.done();
}

/**
 * p a power of two; in place on acc. Rank r ends the halving owning block
 * r. A send's completion is waited for only before its bytes could change
 * (the allgather overwrites what the halving sent away), so a partner's
 * late FIN is never on the critical path.
 */
async function rabenseifner(c: Coll, acc: TypedArray, counts: number[], displs: number[], op: Op): Promise<void> {
  const { rank, size } = c;
  const start = (b: number): number => (b < size ? displs[b]! : acc.length);
  const span = (from: number, to: number): TypedArray => acc.subarray(start(from), start(to));
  const scratch = borrow(acc, start(size / 2) - start(0) + (counts[0] ?? 0));
  const sends = [];
  let lo = 0;
  let hi = size;
  try {
    for (let mask = size >> 1; mask >= 1; mask >>= 1) {
      const partner = rank ^ mask;
      const mid = lo + ((hi - lo) >> 1);
      const [keepLo, keepHi, sendLo, sendHi] = (rank & mask) === 0 ? [lo, mid, mid, hi] : [mid, hi, lo, mid];
      const keep = span(keepLo, keepHi);
      const tmp = scratch.buf.subarray(0, keep.length);
      const r = c.irecv(tmp, partner);
      sends.push(c.isend(span(sendLo, sendHi), partner));
      await r.wait();
      op.apply(tmp, keep);
      lo = keepLo;
      hi = keepHi;
    }
    await waitAll(sends.splice(0));
  } finally {
    scratch.done();
  }
  for (let mask = 1; mask < size; mask <<= 1) {
    const partner = rank ^ mask;
    // This rank holds blocks [lo, hi) (mask of them); the partner the adjacent ones.
    const [pLo, pHi] = (rank & mask) === 0 ? [hi, hi + mask] : [lo - mask, lo];
    const r = c.irecv(span(pLo, pHi), partner);
    sends.push(c.isend(span(lo, hi), partner));
    await r.wait();
    lo = Math.min(lo, pLo);
    hi = Math.max(hi, pHi);
  }
  await waitAll(sends);
}
