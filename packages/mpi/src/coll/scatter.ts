// Scatter(v): the root sends each rank its slot straight from the source
// array; the others receive once.
import type { TypedArray } from '../ops.js';
import { part, waitAll, type Coll, copyInto } from './util.js';

export async function scatterv(c: Coll, sendbuf: TypedArray | undefined, counts: number[] | undefined, displs: number[] | undefined, recvbuf: TypedArray, root: number): Promise<void> {
  const { rank, size } = c;
  if (rank !== root) {
    await c.irecv(recvbuf, root).wait();
    return;
  }
  const reqs = [];
  for (let i = 0; i < size; i++) if (i !== root) reqs.push(c.isend(part(sendbuf!, displs![i]!, counts![i]!), i));
  copyInto(recvbuf, part(sendbuf!, displs![root]!, counts![root]!));
  await waitAll(reqs);
}
