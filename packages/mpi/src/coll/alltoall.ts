// Alltoall(v): pairwise exchange; in step i each rank sends to rank + i and
// receives from rank - i, so every step is a perfect matching and no rank
// is flooded.
import { bytesOf } from '../args.js';
import { TruncateError } from '../errors.js';
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
  copyInto(part(recvbuf, rdispls[c.rank]!, rcounts[c.rank]!), part(sendbuf, sdispls[c.rank]!, scounts[c.rank]!));
  return exchange(c, (j) => part(sendbuf, sdispls[j]!, scounts[j]!), (j) => part(recvbuf, rdispls[j]!, rcounts[j]!));
}

/**
 * Alltoallw: a block per peer, each its own array (own datatype). The
 * block to self is copied as bytes, since the two sides may be arrays of
 * different element types with one type signature (MPI_BYTE on one side).
 */
export async function alltoallw(c: Coll, send: readonly TypedArray[], recv: readonly TypedArray[]): Promise<void> {
  const own = bytesOf(send[c.rank]!);
  const into = bytesOf(recv[c.rank]!);
  if (own.length > into.length) throw new TruncateError(own.length, into.length, c.rank, -1);
  into.set(own);
  return exchange(c, (j) => send[j]!, (j) => recv[j]!);
}

async function exchange(c: Coll, send: (j: number) => TypedArray, recv: (j: number) => TypedArray): Promise<void> {
  const { rank, size } = c;
  for (let i = 1; i < size; i++) {
    const dst = mod(rank + i, size);
    const src = mod(rank - i, size);
    const r = c.irecv(recv(src), src);
    const s = c.isend(send(dst), dst);
    await r.wait();
    await s.wait();
  }
}
