// Distributed graph topologies (MPI_Dist_graph_create_adjacent): each rank
// names its own incoming and outgoing neighbors. Neighbor collectives send
// every block under one tag: when a rank lists a peer twice, the i-th
// block it sends there matches the i-th receive the peer posts from it
// (MPI's non-overtaking order), as MPI defines for repeated edges.
import { InvalidArgumentError } from '@ibal/hca';
import { Comm } from '../comm.js';
import { DIST_GRAPH } from '../constants.js';
import type { World } from '../world.js';
import { TopoComm } from './topo-comm.js';

export class DistGraphComm extends TopoComm {
  /** @internal */
  constructor(world: World, context: number, group: readonly number[], sources: readonly number[], destinations: readonly number[]) {
    super(world, context, group, { sources, destinations, sendTag: destinations.map(() => 0), recvTag: sources.map(() => 0) });
  }

  override topoTest(): number {
    return DIST_GRAPH;
  }

  /** MPI_Comm_dup keeps the topology. */
  override async dup(): Promise<DistGraphComm> {
    const ctx = await Comm.agreeContext(this);
    return new DistGraphComm(Comm.worldOf(this), ctx, this.group, this.sources, this.destinations);
  }

  /** MPI_Dist_graph_neighbors: [sources, destinations]. */
  getDistNeighbors(): [number[], number[]] {
    return [[...this.sources], [...this.destinations]];
  }
}

export function checkNeighbors(list: readonly number[], size: number, what: string): number[] {
  if (!Array.isArray(list)) throw new InvalidArgumentError(`${what} must be an array of ranks`);
  for (const r of list) {
    if (!Number.isInteger(r) || r < 0 || r >= size) throw new InvalidArgumentError(`${what}: ${String(r)} is not a rank of this communicator (size ${size})`);
  }
  return [...list];
}
