// The addon throws errors carrying the errno libibverbs returned; callers
// see the IbalError subclass with the stable code that errno means.
import {
  CapacityError,
  IbalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceBusyError,
  ResourceClosedError,
} from '../errors.js';

/** An ibv_* call failed with an errno the other IbalErrors do not name. */
export class NativeCallError extends IbalError {
  readonly errno: number;
  readonly syscall: string;
  constructor(message: string, errno: number, syscall: string, options?: { cause?: unknown }) {
    super('ERR_IBAL_NATIVE', message, options);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** A native feature was asked for where it is unavailable; the message says why. */
export class NativeUnavailableError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_NATIVE_UNAVAILABLE', message);
  }
}

/** Runs an addon call, turning its errno errors into IbalErrors. */
export function call<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw translate(what, err);
  }
}

export function translate(what: string, err: unknown): Error {
  if (err instanceof IbalError) return err;
  const e = err as { code?: string; errno?: number; syscall?: string; message?: string };
  const msg = `${what}: ${e.message ?? String(err)}`;
  switch (e.code) {
    case 'EBUSY':
      return new ResourceBusyError(msg);
    case 'EINVAL':
      return new InvalidArgumentError(msg, { cause: err });
    case 'ENOMEM':
    case 'ENOSPC':
      return new CapacityError(msg);
    case 'ENOENT':
    case 'ENODEV':
      return new NotFoundError(msg);
    case 'EBADF':
      return new ResourceClosedError(what);
    default:
      return new NativeCallError(msg, e.errno ?? 0, e.syscall ?? what, { cause: err });
  }
}
