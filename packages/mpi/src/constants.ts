// MPI's special values, with Open MPI's numbers so ported code compares equal.

/** Receive from any sender (MPI_ANY_SOURCE). */
export const ANY_SOURCE = -1;
/** Receive any tag (MPI_ANY_TAG). */
export const ANY_TAG = -1;
/** The null process: sends and receives to it complete at once (MPI_PROC_NULL). */
export const PROC_NULL = -2;
/** The root's own root argument in an intercommunicator's rooted collectives (MPI_ROOT). */
export const ROOT = -4;
/** split(): a color that leaves the caller out of every new communicator (MPI_UNDEFINED). */
export const UNDEFINED = -32766;
/** The largest tag a program may use (MPI_TAG_UB); tags above are reserved for collectives. */
export const TAG_UB = 0x3fffffff;

/** Win.Lock: one origin at a time (MPI_LOCK_EXCLUSIVE). */
export const LOCK_EXCLUSIVE = 1;
/** Win.Lock: any number of origins at once (MPI_LOCK_SHARED). */
export const LOCK_SHARED = 2;

// Assertions for Win.Fence (and Lock's NOCHECK), Open MPI's bits. They are
// hints MPI lets an implementation ignore; NOSUCCEED is the one acted on
// here: no access epoch follows the fence.
export const MODE_NOCHECK = 1;
export const MODE_NOPRECEDE = 2;
export const MODE_NOPUT = 4;
export const MODE_NOSTORE = 8;
export const MODE_NOSUCCEED = 16;

/** comm.splitType: one communicator per shared-memory domain, a host (MPI_COMM_TYPE_SHARED). */
export const COMM_TYPE_SHARED = 0;

/** comm.topoTest(): a Cartesian grid (MPI_CART). */
export const CART = 2;
/** comm.topoTest(): a distributed graph (MPI_DIST_GRAPH). */
export const DIST_GRAPH = 3;

/**
 * MPI_IN_PLACE: as sendbuf of Allreduce, Scan, Exscan, Allgather(v),
 * Alltoall(v), ReduceScatter(Block), and of Reduce and Gather(v) at the
 * root; as recvbuf of Scatter(v) at the root.
 */
export const IN_PLACE: unique symbol = Symbol('MPI_IN_PLACE');
