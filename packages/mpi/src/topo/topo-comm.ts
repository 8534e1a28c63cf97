// What Cartesian and graph communicators share (mpi4py's Topocomm): a list
// of incoming and outgoing neighbors, and the neighbor collectives over them.
import { InvalidArgumentError } from '@ibal/hca';
import { neighborExchange, type NeighborPlan } from '../coll/neighbor.js';
import { part } from '../coll/util.js';
import { Comm } from '../comm.js';
import { checkBuffer, checkCounts, checkSameType, prefix } from '../datatype.js';
import type { TypedArray } from '../ops.js';
import { promiseRequest, type Request } from '../request.js';
import type { World } from '../world.js';

export class TopoComm extends Comm {
  /** Where this rank's neighbor collectives receive from, block by block (MPI_Dist_graph_neighbors' sources). */
  readonly sources: readonly number[];
  /** Where they send to, block by block. */
  readonly destinations: readonly number[];
  readonly #plan: NeighborPlan;
  readonly #tags: number;

  /** @internal `plan` fixes the neighbor order and the tag each block travels under. */
  constructor(world: World, context: number, group: readonly number[], plan: NeighborPlan) {
    super(world, context, group);
    this.sources = Object.freeze([...plan.sources]);
    this.destinations = Object.freeze([...plan.destinations]);
    this.#plan = plan;
    // A loop, not Math.max(...): a graph may list more neighbors than a call takes arguments.
    let top = 0;
    for (const t of plan.sendTag) top = Math.max(top, t);
    for (const t of plan.recvTag) top = Math.max(top, t);
    this.#tags = top + 1;
  }

  get indegree(): number {
    return this.sources.length;
  }

  get outdegree(): number {
    return this.destinations.length;
  }

  #exchange(send: (j: number) => TypedArray, recv: (j: number) => TypedArray): Promise<void> {
    return neighborExchange(Comm.collectiveChannel(this, this.#tags), this.#plan, send, recv);
  }

  /** MPI_Neighbor_allgather: `sendbuf` to every outgoing neighbor; block j of `recvbuf` (sendbuf's length) from sources[j]. */
  async NeighborAllgather(sendbuf: TypedArray, recvbuf: TypedArray): Promise<void> {
    checkPair(sendbuf, recvbuf, 'NeighborAllgather');
    const n = sendbuf.length;
    if (recvbuf.length < n * this.indegree) throw new InvalidArgumentError(`NeighborAllgather: recvbuf needs ${n * this.indegree} elements (${this.indegree} blocks of ${n})`);
    return this.#exchange(() => sendbuf, (j) => part(recvbuf, j * n, n));
  }

  /** MPI_Neighbor_allgatherv: block j of `recvbuf` (counts[j] elements at displs[j]) from sources[j]. */
  async NeighborAllgatherv(sendbuf: TypedArray, recvbuf: TypedArray, counts: number[], displs?: number[]): Promise<void> {
    checkPair(sendbuf, recvbuf, 'NeighborAllgatherv');
    const d = displs ?? prefix(counts ?? []);
    checkCounts(counts, d, this.indegree, 'NeighborAllgatherv', recvbuf.length);
    return this.#exchange(() => sendbuf, (j) => part(recvbuf, d[j]!, counts[j]!));
  }

  /**
   * MPI_Neighbor_alltoall: `sendbuf` is one block per outgoing neighbor,
   * `recvbuf` one block of the same length per incoming one.
   */
  async NeighborAlltoall(sendbuf: TypedArray, recvbuf: TypedArray): Promise<void> {
    checkPair(sendbuf, recvbuf, 'NeighborAlltoall');
    const { outdegree, indegree } = this;
    if (outdegree > 0 && sendbuf.length % outdegree !== 0) throw new InvalidArgumentError(`NeighborAlltoall: sendbuf length ${sendbuf.length} is not a multiple of the ${outdegree} outgoing neighbors`);
    const n = outdegree > 0 ? sendbuf.length / outdegree : indegree > 0 ? Math.floor(recvbuf.length / indegree) : 0;
    if (recvbuf.length < n * indegree) throw new InvalidArgumentError(`NeighborAlltoall: recvbuf needs ${n * indegree} elements (${indegree} blocks of ${n})`);
    return this.#exchange((j) => part(sendbuf, j * n, n), (j) => part(recvbuf, j * n, n));
  }

  /** MPI_Neighbor_alltoallv: counts and displacements per neighbor, in elements. */
  async NeighborAlltoallv(sendbuf: TypedArray, scounts: number[], sdispls: number[] | undefined, recvbuf: TypedArray, rcounts: number[], rdispls?: number[]): Promise<void> {
    checkPair(sendbuf, recvbuf, 'NeighborAlltoallv');
    const sd = sdispls ?? prefix(scounts ?? []);
    const rd = rdispls ?? prefix(rcounts ?? []);
    checkCounts(scounts, sd, this.outdegree, 'NeighborAlltoallv (send)', sendbuf.length);
    checkCounts(rcounts, rd, this.indegree, 'NeighborAlltoallv (receive)', recvbuf.length);
    return this.#exchange((j) => part(sendbuf, sd[j]!, scounts[j]!), (j) => part(recvbuf, rd[j]!, rcounts[j]!));
  }

  /** MPI_Ineighbor_allgather. */
  IneighborAllgather(sendbuf: TypedArray, recvbuf: TypedArray): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAllgather(sendbuf, recvbuf));
  }

  /** MPI_Ineighbor_allgatherv. */
  IneighborAllgatherv(sendbuf: TypedArray, recvbuf: TypedArray, counts: number[], displs?: number[]): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAllgatherv(sendbuf, recvbuf, counts, displs));
  }

  /** MPI_Ineighbor_alltoall. */
  IneighborAlltoall(sendbuf: TypedArray, recvbuf: TypedArray): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAlltoall(sendbuf, recvbuf));
  }

  /** MPI_Ineighbor_alltoallv. */
  IneighborAlltoallv(sendbuf: TypedArray, scounts: number[], sdispls: number[] | undefined, recvbuf: TypedArray, rcounts: number[], rdispls?: number[]): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAlltoallv(sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls));
  }
}

function checkPair(sendbuf: TypedArray, recvbuf: TypedArray, what: string): void {
  checkBuffer(sendbuf, `${what} sendbuf`);
  checkSameType(sendbuf, checkBuffer(recvbuf, `${what} recvbuf`), what);
}
