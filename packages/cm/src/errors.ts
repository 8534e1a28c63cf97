// The CM's errors: each names what happened in IBTA or rdma_cm terms, with a
// stable code, so callers of the promise API switch on `code` or `reason`.

import { IbalError } from '@ibal/hca';
import { rejReasonName } from './messages/rej.js';

/** The peer (or its CM) answered with a REJ; `reason` is the IBTA reason code. */
export class ConnectionRejectedError extends IbalError {
  readonly reason: number;
  readonly reasonName: string;
  readonly privateData: Uint8Array | undefined;
  constructor(reason: number, privateData?: Uint8Array, detail?: string) {
    const name = rejReasonName(reason);
    super('ERR_IBAL_CM_REJECTED', `connection rejected: ${name}${detail ? ` (${detail})` : ''}`);
    this.reason = reason;
    this.reasonName = name;
    this.privateData = privateData;
  }
}

/** No answer within the CM response timeout times the retries (RDMA_CM_EVENT_UNREACHABLE, ETIMEDOUT). */
export class CmTimeoutError extends IbalError {
  constructor(what: string) {
    super('ERR_IBAL_CM_TIMEOUT', `${what}: no answer from the peer's CM within the response timeout and retries`);
  }
}

/** A SIDR_REP with a status other than SUCCESS. */
export class SidrError extends IbalError {
  readonly status: number;
  readonly statusName: string;
  constructor(status: number, statusName: string) {
    super('ERR_IBAL_CM_SIDR', `service ID resolution failed: ${statusName}`);
    this.status = status;
    this.statusName = statusName;
  }
}

/** Address or route resolution failed: no local device reaches the destination. */
export class AddressError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_CM_ADDR', message);
  }
}

/** A call not allowed in the id's current state (EINVAL from librdmacm). */
export class CmStateError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_CM_STATE', message);
  }
}

/** The address and port are taken by another listener (EADDRINUSE). */
export class AddressInUseError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_CM_ADDR_IN_USE', message);
  }
}

/** The connection failed after it was accepted (RDMA_CM_EVENT_CONNECT_ERROR) or the peer went away. */
export class ConnectionError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_CM_CONNECT', message);
  }
}
