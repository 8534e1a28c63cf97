// Reduce to a root. Small messages (and any non-commutative operation): a
// binomial tree over ranks counted from 0, so every combine sees its
// operands in rank order, then a hop to the root if it is not rank 0.
// Large commutative messages: a ring reduce-scatter then a gather of the
// reduced blocks to the root (Rabenseifner's scheme with a ring).
import type { Op, TypedArray } from '../ops.js';
import { reduceScatterRing } from './reduce-scatter.js';
import { blocks, borrow, copyOf, part, waitAll, type Coll, copyInto } from './util.js';

export async function reduce(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray | undefined, op: Op, root: number): Promise<void> {
  const { rank, size } = c;
  if (op.commutative && sendbuf.byteLength >= c.large && sendbuf.length >= size && size > 1) {
    const acc = copyOf(sendbuf);
    const { counts, displs } = blocks(acc.length, size, op.unit);
    await reduceScatterRing(c, acc, counts, displs, op);
    if (rank === root) {
      const reqs = [];
      for (let i = 0; i < size; i++) if (i !== rank) reqs.push(c.irecv(part(recvbuf!, displs[i]!, counts[i]!), i));
      copyInto(recvbuf!, part(acc, displs[rank]!, counts[rank]!), displs[rank]);
      await waitAll(reqs);
    } else {
      await c.isend(part(acc, displs[rank]!, counts[rank]!), root).wait();
    }
    return;
  }
  const s1 = borrow(sendbuf, sendbuf.length);
  const s2 = borrow(sendbuf, sendbuf.length);
  try {
    const acc = await binomialToZero(c, sendbuf, op, s1.buf, s2.buf);
    if (root === 0) {
      if (rank === 0) copyInto(recvbuf!, acc);
      return;
    }
    if (rank === 0) await c.isend(acc, root).wait();
    else if (rank === root) await c.irecv(recvbuf!, 0).wait();
  } finally {
    s1.done();
    s2.done();
  }
}

/** Rank 0 ends with x0 op x1 op ... op x(p-1) (in a or b); the others' results are partial. */
async function binomialToZero(c: Coll, sendbuf: TypedArray, op: Op, a: TypedArray, b: TypedArray): Promise<TypedArray> {
  const { rank, size } = c;
  let acc = a;
  let tmp = b;
  copyInto(acc, sendbuf);
  for (let mask = 1; mask < size; mask <<= 1) {
    if ((rank & mask) === 0) {
      const src = rank | mask;
      if (src < size) {
        await c.irecv(tmp, src).wait();
        // acc holds ranks [rank, src), tmp holds [src, ...): tmp = acc op tmp.
        op.apply(acc, tmp);
        [acc, tmp] = [tmp, acc];
      }
    } else {
      await c.isend(acc, rank & ~mask).wait();
      break;
    }
  }
  return acc;
}
