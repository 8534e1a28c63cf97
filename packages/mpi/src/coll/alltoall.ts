// Alltoall(v): pairwise exchange; in step i each rank sends to rank + i and
// receives from rank - i, so every step is a perfect matching and no rank
// is flooded.
import type { TypedArray } from '../ops.js';
import { mod, part, type Coll, copyInto } from './util.js';

export async function alltoallv(
  c: Coll,
  sendbuf: TypedArray,
  scounts: number[],
  sdispls: number[],
  recvbuf: TypedArray,
  rcounts: number[],
  rdispls: number[],
): Promise<void> {
  const { rank, size } = c;
  copyInto(recvbuf, part(sendbuf, sdispls[rank]!, scounts[rank]!), rdispls[rank]);
  for (let i = 1; i < size; i++) {
    const dst = mod(rank + i, size);
    const src = mod(rank - i, size);
    const r = c.irecv(part(recvbuf, rdispls[src]!, rcounts[src]!), src);
    const s = c.isend(part(sendbuf, sdispls[dst]!, scounts[dst]!), dst);
    await r.wait();
    await s.wait();
  }
}
