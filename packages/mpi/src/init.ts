// MPI_Init / MPI_Finalize and the world communicator.
import { NotInitializedError } from './errors.js';
import type { Comm } from './comm.js';
import { World } from './world.js';

let world: World | undefined;
let pending: Promise<World> | undefined;

/**
 * MPI_Init: joins the job whichever launcher started this process
 * (`mpilite run`, Open MPI's mpirun, Slurm's srun, or none: a job of one)
 * and resolves with COMM_WORLD. Calling it again resolves with the same.
 */
export async function init(): Promise<Comm> {
  if (world?.finalized) throw new NotInitializedError('MPI cannot be initialized again after finalize');
  if (!world) {
    // A failed init() leaves nothing behind (World.create), so it may be tried again.
    pending ??= World.create().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    world = await pending;
  }
  return world.commWorld;
}

function current(): World {
  if (!world) throw new NotInitializedError('call init() first');
  return world;
}

/** COMM_WORLD after init(). */
export function commWorld(): Comm {
  return current().commWorld;
}

/** MPI_Finalize. */
export async function finalize(): Promise<void> {
  if (world) await world.finalize();
}

/** MPI_Abort on COMM_WORLD. */
export function abort(errorCode = 1, reason?: string): Promise<never> {
  return current().abort(errorCode, reason);
}

export function initialized(): boolean {
  return world !== undefined;
}

export function finalized(): boolean {
  return world?.finalized ?? false;
}

/** MPI_Wtime: seconds, from a monotonic clock. */
export function wtime(): number {
  return performance.now() / 1000;
}

/** How this process joined and which transport reaches each rank. */
export function worldInfo(): { launcher: string; rank: number; size: number; localRank: number; localSize: number; jobId: string; transports: string[] } {
  const w = current();
  return { launcher: w.launch.launcher, rank: w.rank, size: w.size, localRank: w.launch.localRank, localSize: w.launch.localSize, jobId: w.launch.jobId, transports: [...w.transportOf] };
}
