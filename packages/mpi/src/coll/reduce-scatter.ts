// Reduce-scatter. Commutative operations: a ring, p - 1 steps; in step s
// each rank passes block (rank - s - 1) to its right neighbour and folds the
// block it receives into its own copy, so after the last step every rank
// holds its own block fully reduced. Non-commutative: reduce to rank 0,
// then scatter.
import type { Op, TypedArray } from '../ops.js';
import { reduce } from './reduce.js';
import { scatterv } from './scatter.js';
import { alloc, borrow, mod, part, waitAll, type Coll, copyInto } from './util.js';

/** In place on `acc`: afterwards acc's block `rank` is the reduction of every rank's. */
export async function reduceScatterRing(c: Coll, acc: TypedArray, counts: number[], displs: number[], op: Op): Promise<void> {
  const { rank, size } = c;
  let max = 0;
  for (const n of counts) max = Math.max(max, n);
  const scratch = borrow(acc, max);
  const tmp = scratch.buf;
  const right = mod(rank + 1, size);
  const left = mod(rank - 1, size);
  // A block is never written after it was sent, so the sends' completions
  // are collected at the end, off the critical path.
  const sends = [];
  try {
    for (let s = 0; s < size - 1; s++) {
      const out = mod(rank - s - 1, size);
      const inc = mod(rank - s - 2, size);
      const t = part(tmp, 0, counts[inc]!);
      const r = c.irecv(t, left);
      sends.push(c.isend(part(acc, displs[out]!, counts[out]!), right));
      await r.wait();
      op.apply(t, part(acc, displs[inc]!, counts[inc]!));
    }
    await waitAll(sends);
  } finally {
    scratch.done();
  }
}

export async function reduceScatter(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray, counts: number[], op: Op): Promise<void> {
  const { rank, size } = c;
  const displs: number[] = [];
  let total = 0;
  for (const n of counts) {
    displs.push(total);
    total += n;
  }
  if (op.commutative) {
    const acc = sendbuf.slice(0, total);
    if (size > 1) await reduceScatterRing(c, acc, counts, displs, op);
    copyInto(recvbuf, part(acc, displs[rank]!, counts[rank]!));
    return;
  }
  const full = rank === 0 ? alloc(sendbuf, total) : undefined;
  await reduce(c, part(sendbuf, 0, total), full, op, 0);
  await scatterv(c, full, counts, displs, recvbuf, 0);
}
