// Neighbor collectives (MPI_Neighbor_allgather(v), MPI_Neighbor_alltoall(v)):
// each rank exchanges one block with each neighbor of its topology, every
// receive posted before any send. PROC_NULL neighbors (a Cartesian grid's
// open edges) are skipped and their receive blocks left as they were.
import type { CollectiveChannel } from '../comm.js';
import { PROC_NULL } from '../constants.js';
import type { TypedArray } from '../ops.js';
import type { Request } from '../request.js';
import type { Status } from '../status.js';

export interface NeighborPlan {
  sources: readonly number[];
  destinations: readonly number[];
  /** Tag offsets within the call: send slot j goes under sendTag[j], receive slot j expects recvTag[j]. */
  sendTag: readonly number[];
  recvTag: readonly number[];
}

export async function neighborExchange(
  ch: CollectiveChannel,
  plan: NeighborPlan,
  sendBlock: (j: number) => TypedArray,
  recvBlock: (j: number) => TypedArray,
): Promise<void> {
  const reqs: Request<Status>[] = [];
  plan.sources.forEach((src, j) => {
    if (src !== PROC_NULL) reqs.push(ch.irecv(recvBlock(j), src, plan.recvTag[j]!));
  });
  plan.destinations.forEach((dst, j) => {
    if (dst !== PROC_NULL) reqs.push(ch.isend(sendBlock(j), dst, plan.sendTag[j]!));
  });
  // Every request is waited for even after a failure, so none is left
  // writing into a buffer the caller has been told it may reuse.
  let first: unknown;
  for (const r of reqs) {
    try {
      await r.wait();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
