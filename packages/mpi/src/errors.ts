// Errors of the MPI layer: IbalErrors with stable codes, as the layers below.
import { IbalError } from '@ibal/hca';

export { InvalidArgumentError, ResourceClosedError } from '@ibal/hca';

/** A rank died or called abort: the job is over (MPI_ERR_PROC_ABORTED). */
export class JobAbortedError extends IbalError {
  /** The world rank whose failure or abort ended the job (-1 when the launcher ended it). */
  readonly rank: number;
  readonly errorCode: number;
  constructor(rank: number, reason: string, errorCode = 1) {
    super('ERR_MPI_ABORTED', rank >= 0 ? `job aborted: rank ${rank} ${reason}` : `job aborted: ${reason}`);
    this.rank = rank;
    this.errorCode = errorCode;
  }
}

/** A message longer than the receive buffer (MPI_ERR_TRUNCATE). */
export class TruncateError extends IbalError {
  constructor(received: number, capacity: number, source: number, tag: number) {
    super('ERR_MPI_TRUNCATE', `message of ${received} bytes from rank ${source} tag ${tag} does not fit a ${capacity}-byte receive buffer`);
  }
}

/** The out-of-band bootstrap (rendezvous, key-value exchange) failed or timed out. */
export class BootstrapError extends IbalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MPI_BOOTSTRAP', message, options);
  }
}

/** An MPI call before init() or after finalize(). */
export class NotInitializedError extends IbalError {
  constructor(what: string) {
    super('ERR_MPI_NOT_INITIALIZED', what);
  }
}

/** A transport failed under a message (a work completion error, a lost peer). */
export class TransportError extends IbalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MPI_TRANSPORT', message, options);
  }
}

/** A one-sided operation outside an access epoch, or a synchronization call out of order (MPI_ERR_RMA_SYNC). */
export class RmaSyncError extends IbalError {
  constructor(message: string) {
    super('ERR_MPI_RMA_SYNC', message);
  }
}

/** A request still open when finalize ended: a send no rank ever received (MPI_ERR_PENDING). */
export class PendingError extends IbalError {
  constructor(message: string) {
    super('ERR_MPI_PENDING', message);
  }
}

/** A buffered send (Bsend) without room in the attached buffer, or with none attached (MPI_ERR_BUFFER). */
export class BufferError extends IbalError {
  constructor(message: string) {
    super('ERR_MPI_BUFFER', message);
  }
}
