// Every error ibal throws is an IbalError with a stable `code`, in the manner
// of Node's ERR_* codes, so callers switch on the code, never on the message.

export class IbalError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A bad argument: wrong type, out of range, unknown flag. */
export class InvalidArgumentError extends IbalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_IBAL_INVALID_ARGUMENT', message, options);
  }
}

/** A resource (device, PD, MR, CQ, QP, ...) used after it was closed or destroyed. */
export class ResourceClosedError extends IbalError {
  constructor(what: string) {
    super('ERR_IBAL_CLOSED', `${what} is closed`);
  }
}

/** A resource cannot be destroyed while others still depend on it (EBUSY in libibverbs). */
export class ResourceBusyError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_BUSY', message);
  }
}

/** A device, port, GID index or key does not exist. */
export class NotFoundError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_NOT_FOUND', message);
  }
}

/** The provider does not implement the verb (EOPNOTSUPP in libibverbs). */
export class NotSupportedError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_NOT_SUPPORTED', message);
  }
}

/** A capacity limit (max_qp_wr, max_sge, max_inline_data, CQ size...) was exceeded. */
export class CapacityError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_CAPACITY', message);
  }
}

/** modifyQp asked for a transition the IBTA state machine forbids, or lacked required attributes. */
export class QpStateError extends IbalError {
  readonly missing: readonly string[];
  readonly invalid: readonly string[];
  constructor(message: string, missing: readonly string[] = [], invalid: readonly string[] = []) {
    super('ERR_IBAL_QP_STATE', message);
    this.missing = missing;
    this.invalid = invalid;
  }
}

/**
 * postSend/postRecv refused a work request. As with ibv_post_send's bad_wr,
 * `badWrIndex` says which one; the ones before it were posted, none after.
 */
export class PostError extends IbalError {
  readonly badWrIndex: number;
  constructor(message: string, badWrIndex: number, code = 'ERR_IBAL_POST') {
    super(code, `work request ${badWrIndex}: ${message}`);
    this.badWrIndex = badWrIndex;
  }
}

/** No RDMA provider or device is available (for example IBAL_PROVIDER=native on a machine without an HCA). */
export class NoDeviceError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_NO_DEVICE', message);
  }
}

/** A completion with a status other than SUCCESS, thrown by helpers that await one completion. */
export class WorkCompletionError extends IbalError {
  readonly status: number;
  readonly statusName: string;
  readonly wrId: number;
  constructor(statusName: string, status: number, wrId: number, opcode: string) {
    super(`ERR_IBAL_WC_${statusName}`, `${opcode} work request ${wrId} completed with ${statusName}`);
    this.status = status;
    this.statusName = statusName;
    this.wrId = wrId;
  }
}
