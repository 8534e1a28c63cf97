// Allgather(v): a ring; in step s each rank forwards the block it received
// in step s - 1 (its own first) to the right, p - 1 steps in all.
import type { TypedArray } from '../ops.js';
import { mod, part, waitAll, type Coll, copyInto } from './util.js';

/** In place: `buf` holds this rank's block at displs[rank]; afterwards every block. */
export async function allgathervRing(c: Coll, buf: TypedArray, counts: number[], displs: number[]): Promise<void> {
  const { rank, size } = c;
  const right = mod(rank + 1, size);
  const left = mod(rank - 1, size);
  // Blocks only arrive into slots never sent before, so sends complete at the end.
  const sends = [];
  for (let s = 0; s < size - 1; s++) {
    const out = mod(rank - s, size);
    const inc = mod(rank - s - 1, size);
    const r = c.irecv(part(buf, displs[inc]!, counts[inc]!), left);
    sends.push(c.isend(part(buf, displs[out]!, counts[out]!), right));
    await r.wait();
  }
  await waitAll(sends);
}

export async function allgatherv(c: Coll, sendbuf: TypedArray, recvbuf: TypedArray, counts: number[], displs: number[]): Promise<void> {
  copyInto(recvbuf, part(sendbuf, 0, counts[c.rank]!), displs[c.rank]);
  if (c.size > 1) await allgathervRing(c, recvbuf, counts, displs);
}
