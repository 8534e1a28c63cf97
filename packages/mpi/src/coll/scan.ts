// Inclusive and exclusive prefix reductions by recursive doubling (log p
// exchanges): each rank keeps the reduction of its partner group so far
// and folds in what lower ranks send, in rank order.
import type { Op, TypedArray } from '../ops.js';
import { borrow, type Coll, copyInto } from './util.js';

export async function scan(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray, op: Op, exclusive: boolean): Promise<void> {
  const { rank, size } = c;
  const s1 = borrow(sendbuf, sendbuf.length);
  const s2 = borrow(sendbuf, sendbuf.length);
  const partial = s1.buf;
  const tmp = s2.buf;
  copyInto(partial, sendbuf);
  if (!exclusive) copyInto(recvbuf, sendbuf);
  let have = false;
  for (let mask = 1; mask < size; mask <<= 1) {
    const dst = rank ^ mask;
    if (dst >= size) continue;
    const r = c.irecv(tmp, dst);
    const s = c.isend(partial, dst);
    await r.wait();
    await s.wait();
    if (rank > dst) {
      // tmp holds lower ranks: they come first.
      op.apply(tmp, partial);
      if (exclusive && !have) copyInto(recvbuf, tmp);
      else op.apply(tmp, recvbuf);
      have = true;
    } else {
      // tmp holds higher ranks: partial = partial op tmp.
      op.apply(partial, tmp);
      copyInto(partial, tmp);
    }
  }
  s1.done();
  s2.done();
}
