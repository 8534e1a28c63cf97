// MPI's special values, with Open MPI's numbers so ported code compares equal.

/** Receive from any sender (MPI_ANY_SOURCE). */
export const ANY_SOURCE = -1;
/** Receive any tag (MPI_ANY_TAG). */
export const ANY_TAG = -1;
/** The null process: sends and receives to it complete at once (MPI_PROC_NULL). */
export const PROC_NULL = -2;
/** split(): a color that leaves the caller out of every new communicator (MPI_UNDEFINED). */
export const UNDEFINED = -32766;
/** The largest tag a program may use (MPI_TAG_UB); tags above are reserved for collectives. */
export const TAG_UB = 0x3fffffff;
