// Gather(v): the root posts a receive per rank straight into its slot of
// the result (no intermediate copies); the others send once.
import type { TypedArray } from '../ops.js';
import { part, waitAll, type Coll, copyInto } from './util.js';

export async function gatherv(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray | undefined, counts: number[] | undefined, displs: number[] | undefined, root: number): Promise<void> {
  const { rank, size } = c;
  if (rank !== root) {
    await c.isend(sendbuf, root).wait();
    return;
  }
  const reqs = [];
  for (let i = 0; i < size; i++) if (i !== root) reqs.push(c.irecv(part(recvbuf!, displs![i]!, counts![i]!), i));
  copyInto(recvbuf!, part(sendbuf, 0, counts![root]!), displs![root]);
  await waitAll(reqs);
}
