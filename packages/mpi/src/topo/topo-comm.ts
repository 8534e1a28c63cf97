// What Cartesian and graph communicators share (mpi4py's Topocomm): a list
// of incoming and outgoing neighbors, and the neighbor collectives over them.
import { deserialize } from 'node:v8';
import { InvalidArgumentError } from '@ibal/hca';
import { neighborExchange, type NeighborPlan } from '../coll/neighbor.js';
import { part } from '../coll/util.js';
import { Comm, pack } from '../comm.js';
import { checkSameType } from '../args.js';
import { PROC_NULL } from '../constants.js';
import { scaled, side, typedBlocks, type Buf, type Side } from '../dtype/buffer.js';
import type { Datatype } from '../dtype/datatype.js';
import type { TypedArray } from '../ops.js';
import { collectiveInit, type Prequest } from '../prequest.js';
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
  async NeighborAllgather(sendbuf: Buf, recvbuf: Buf): Promise<void> {
    const [s, r] = sides(sendbuf, recvbuf, 'NeighborAllgather');
    const n = s.array.length;
    if (r.array.length < n * this.indegree) throw new InvalidArgumentError(`NeighborAllgather: recvbuf needs ${n * this.indegree} elements (${this.indegree} blocks of ${n})`);
    await this.#exchange(() => s.array, (j) => part(r.array, j * n, n));
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /** MPI_Neighbor_allgatherv: block j of `recvbuf` (counts[j] elements at displs[j], instances of its datatype) from sources[j]. */
  async NeighborAllgatherv(sendbuf: Buf, recvbuf: Buf, counts: number[], displs?: number[]): Promise<void> {
    const [s, r] = sides(sendbuf, recvbuf, 'NeighborAllgatherv');
    const [c, d] = scaled(counts, displs, r, this.indegree, 'NeighborAllgatherv');
    await this.#exchange(() => s.array, (j) => part(r.array, d[j]!, c[j]!));
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /**
   * MPI_Neighbor_alltoall: `sendbuf` is one block per outgoing neighbor,
   * `recvbuf` one block of the same length per incoming one.
   */
  async NeighborAlltoall(sendbuf: Buf, recvbuf: Buf): Promise<void> {
    const [s, r] = sides(sendbuf, recvbuf, 'NeighborAlltoall');
    const { outdegree, indegree } = this;
    const sendLength = s.array.length;
    if (outdegree > 0 && sendLength % outdegree !== 0) throw new InvalidArgumentError(`NeighborAlltoall: sendbuf length ${sendLength} is not a multiple of the ${outdegree} outgoing neighbors`);
    const n = outdegree > 0 ? sendLength / outdegree : indegree > 0 ? Math.floor(r.array.length / indegree) : 0;
    if (r.array.length < n * indegree) throw new InvalidArgumentError(`NeighborAlltoall: recvbuf needs ${n * indegree} elements (${indegree} blocks of ${n})`);
    await this.#exchange((j) => part(s.array, j * n, n), (j) => part(r.array, j * n, n));
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /** MPI_Neighbor_alltoallv: counts and displacements per neighbor, in elements of each side (instances of its datatype). */
  async NeighborAlltoallv(sendbuf: Buf, scounts: number[], sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Promise<void> {
    const [s, r] = sides(sendbuf, recvbuf, 'NeighborAlltoallv');
    const [sc, sd] = scaled(scounts, sdispls, s, this.outdegree, 'NeighborAlltoallv (send)');
    const [rc, rd] = scaled(rcounts, rdispls, r, this.indegree, 'NeighborAlltoallv (receive)');
    await this.#exchange((j) => part(s.array, sd[j]!, sc[j]!), (j) => part(r.array, rd[j]!, rc[j]!));
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /**
   * MPI_Neighbor_alltoallw: block j to destinations[j] is scounts[j]
   * instances of stypes[j] from byte sdispls[j] of sendbuf; block j from
   * sources[j] lands likewise in recvbuf. A halo exchange names its faces
   * (rows, columns, subarrays) in place, with no packing by the caller.
   */
  async NeighborAlltoallw(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Promise<void> {
    const s = typedBlocks(sendbuf, scounts, sdispls, stypes, this.outdegree, 'NeighborAlltoallw (send)', 'send');
    const r = typedBlocks(recvbuf, rcounts, rdispls, rtypes, this.indegree, 'NeighborAlltoallw (receive)', 'recv');
    await this.#exchange((j) => s[j]!.array, (j) => r[j]!.array);
    // A PROC_NULL neighbor sent nothing: its block stays as it was.
    r.forEach((b, j) => {
      if (this.sources[j] !== PROC_NULL) b.unpack?.(b.array.byteLength);
    });
    for (const b of s) b.release();
  }

  /** mpi4py's neighbor_allgather: any structured-cloneable value to every outgoing neighbor; one value per incoming one (undefined for PROC_NULL). */
  async neighborAllgather<T>(obj: T): Promise<(T | undefined)[]> {
    return this.neighborAlltoall(this.destinations.map(() => obj));
  }

  /** mpi4py's neighbor_alltoall: objs[j] to destinations[j]; one value per incoming neighbor (undefined for PROC_NULL). */
  async neighborAlltoall<T>(objs: T[]): Promise<(T | undefined)[]> {
    if (!Array.isArray(objs) || objs.length !== this.outdegree) throw new InvalidArgumentError(`neighborAlltoall needs an array of ${this.outdegree} values (one per outgoing neighbor)`);
    const out = objs.map(pack);
    // Each value's length first (every block one element), then the bytes, in blocks of those lengths.
    const lens = new Float64Array(this.indegree);
    await this.NeighborAlltoall(Float64Array.from(out, (b) => b.length), lens);
    const rcounts = Array.from(lens);
    const into = new Uint8Array(rcounts.reduce((a, b) => a + b, 0));
    await this.NeighborAlltoallv(Buffer.concat(out), out.map((b) => b.length), undefined, into, rcounts);
    let at = 0;
    return rcounts.map((n, j) => {
      const v = this.sources[j] === PROC_NULL ? undefined : (deserialize(into.subarray(at, at + n)) as T);
      at += n;
      return v;
    });
  }

  /** MPI_Ineighbor_allgather. */
  IneighborAllgather(sendbuf: Buf, recvbuf: Buf): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAllgather(sendbuf, recvbuf));
  }

  /** MPI_Ineighbor_allgatherv. */
  IneighborAllgatherv(sendbuf: Buf, recvbuf: Buf, counts: number[], displs?: number[]): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAllgatherv(sendbuf, recvbuf, counts, displs));
  }

  /** MPI_Ineighbor_alltoall. */
  IneighborAlltoall(sendbuf: Buf, recvbuf: Buf): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAlltoall(sendbuf, recvbuf));
  }

  /** MPI_Ineighbor_alltoallv. */
  IneighborAlltoallv(sendbuf: Buf, scounts: number[], sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAlltoallv(sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls));
  }

  /** MPI_Ineighbor_alltoallw. */
  IneighborAlltoallw(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Request<void> {
    return promiseRequest(Comm.worldOf(this).engine, this.NeighborAlltoallw(sendbuf, scounts, sdispls, stypes, recvbuf, rcounts, rdispls, rtypes));
  }

  /** MPI_Neighbor_allgather_init: a persistent halo exchange (see Comm.AllreduceInit). */
  NeighborAllgatherInit(sendbuf: Buf, recvbuf: Buf): Prequest {
    return collectiveInit(Comm.worldOf(this).engine, () => this.NeighborAllgather(sendbuf, recvbuf));
  }

  /** MPI_Neighbor_allgatherv_init: a persistent halo exchange (see Comm.AllreduceInit). */
  NeighborAllgathervInit(sendbuf: Buf, recvbuf: Buf, counts: number[], displs?: number[]): Prequest {
    return collectiveInit(Comm.worldOf(this).engine, () => this.NeighborAllgatherv(sendbuf, recvbuf, counts, displs));
  }

  /** MPI_Neighbor_alltoall_init: a persistent halo exchange (see Comm.AllreduceInit). */
  NeighborAlltoallInit(sendbuf: Buf, recvbuf: Buf): Prequest {
    return collectiveInit(Comm.worldOf(this).engine, () => this.NeighborAlltoall(sendbuf, recvbuf));
  }

  /** MPI_Neighbor_alltoallv_init: a persistent halo exchange (see Comm.AllreduceInit). */
  NeighborAlltoallvInit(sendbuf: Buf, scounts: number[], sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Prequest {
    return collectiveInit(Comm.worldOf(this).engine, () => this.NeighborAlltoallv(sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls));
  }

  /** MPI_Neighbor_alltoallw_init: a persistent halo exchange (see Comm.AllreduceInit). */
  NeighborAlltoallwInit(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Prequest {
    return collectiveInit(Comm.worldOf(this).engine, () => this.NeighborAlltoallw(sendbuf, scounts, sdispls, stypes, recvbuf, rcounts, rdispls, rtypes));
  }
}

/**
 * Both sides of a neighbor collective. The receive side is inout: blocks
 * of PROC_NULL neighbors (and gaps between v-blocks) keep what they held.
 */
function sides(sendbuf: Buf, recvbuf: Buf, what: string): [Side, Side] {
  const s = side(sendbuf, `${what} sendbuf`, 'send');
  const r = side(recvbuf, `${what} recvbuf`, 'inout');
  checkSameType(s.array, r.array, what);
  return [s, r];
}
