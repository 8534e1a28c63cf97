// @ibal/mpi: MPI's semantics with mpi4py's ergonomics, over shared memory
// between local ranks and verbs RC (the soft RoCEv2 HCA or a native one)
// between hosts.

export { init, finalize, abort, commWorld, initialized, finalized, wtime, worldInfo } from './init.js';
export { getVersion, getLibraryVersion, getProcessorName, wtick } from './environ.js';
export { Comm, IN_PLACE, type SendBuf } from './comm.js';
export { Intercomm } from './intercomm.js';
export { Request } from './request.js';
export { Prequest } from './prequest.js';
export { Message } from './message.js';
export { bufferAttach, bufferDetach, BSEND_OVERHEAD } from './bsend.js';
export { Group, IDENT, CONGRUENT, SIMILAR, UNEQUAL } from './group.js';
export { Status } from './status.js';
export {
  Datatype,
  ORDER_C,
  ORDER_FORTRAN,
  BYTE,
  PACKED,
  CHAR,
  SIGNED_CHAR,
  UNSIGNED_CHAR,
  SHORT,
  UNSIGNED_SHORT,
  INT,
  UNSIGNED,
  LONG,
  UNSIGNED_LONG,
  LONG_LONG,
  UNSIGNED_LONG_LONG,
  FLOAT,
  DOUBLE,
  INT8_T,
  UINT8_T,
  INT16_T,
  UINT16_T,
  INT32_T,
  UINT32_T,
  INT64_T,
  UINT64_T,
} from './dtype/datatype.js';
export type { Buf, BufSpec } from './dtype/buffer.js';
export { ANY_SOURCE, ANY_TAG, PROC_NULL, ROOT, UNDEFINED, TAG_UB, LOCK_EXCLUSIVE, LOCK_SHARED, MODE_NOCHECK, MODE_NOPRECEDE, MODE_NOPUT, MODE_NOSTORE, MODE_NOSUCCEED, COMM_TYPE_SHARED, CART, DIST_GRAPH } from './constants.js';
export { Op, SUM, PROD, MIN, MAX, LAND, LOR, LXOR, BAND, BOR, BXOR, MAXLOC, MINLOC, REPLACE, NO_OP, type OpFunction, type TypedArray } from './ops.js';
export { JobAbortedError, TruncateError, BootstrapError, NotInitializedError, TransportError, RmaSyncError, PendingError, BufferError } from './errors.js';
export { RendezvousServer, type RendezvousServerOptions, type AbortInfo } from './bootstrap/server.js';
export { detectLaunch, derivedPort, type LaunchInfo, type LauncherKind } from './bootstrap/launcher.js';
export { readConfig, type MpiConfig } from './config.js';
export { IbalError, InvalidArgumentError, ResourceClosedError } from '@ibal/hca';
export { Win, type WinTargetSpec } from './rma/win.js';
export { TopoComm } from './topo/topo-comm.js';
export { CartComm } from './topo/cart.js';
export { DistGraphComm } from './topo/dist-graph.js';
export { dimsCreate } from './topo/dims.js';
