// Typed errors of the native system primitives. Kernel errnos are mapped to
// the cases a caller handles differently: the peer is gone (ESRCH), we may
// not touch it (EPERM), the remote range is not mapped (EFAULT).
import { IbalError, InvalidArgumentError } from '../errors.js';

/** The ibal_sys addon is not built/loadable here, or a feature needs a privilege we lack. */
export class SysUnavailableError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_SYS_UNAVAILABLE', message);
  }
}

/** A system call failed; `errno` is its name (ENOENT, EADDRINUSE, ...). */
export class SysCallError extends IbalError {
  readonly errno: string;
  readonly syscall: string;
  constructor(errno: string, syscall: string, message: string, code = 'ERR_IBAL_SYSCALL', options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** process_vm_* refused: not the same user, Yama ptrace_scope, or no CAP_SYS_PTRACE (EPERM). */
export class VmPermissionError extends SysCallError {
  constructor(syscall: string, message: string, options?: { cause?: unknown }) {
    super('EPERM', syscall, message, 'ERR_IBAL_VM_PERMISSION', options);
  }
}

/** The target process does not exist any more (ESRCH). */
export class VmNoProcessError extends SysCallError {
  constructor(syscall: string, message: string, options?: { cause?: unknown }) {
    super('ESRCH', syscall, message, 'ERR_IBAL_VM_NO_PROCESS', options);
  }
}

/** Part of the remote range is not mapped in the target (EFAULT); `bytes` were moved before it. */
export class VmFaultError extends SysCallError {
  readonly bytes: number;
  constructor(syscall: string, message: string, bytes: number, options?: { cause?: unknown }) {
    super('EFAULT', syscall, message, 'ERR_IBAL_VM_FAULT', options);
    this.bytes = bytes;
  }
}

interface NativeErrno {
  code?: string;
  syscall?: string;
  message?: string;
  bytes?: number;
}

/** Wraps an error thrown by the addon into the matching typed error. */
export function fromNative(err: unknown): Error {
  if (err instanceof IbalError) return err;
  if (err instanceof TypeError || err instanceof RangeError) return new InvalidArgumentError(err.message, { cause: err });
  const e = err as NativeErrno;
  if (!e || typeof e.code !== 'string') return err as Error;
  const syscall = e.syscall ?? 'syscall';
  const message = e.message ?? String(err);
  switch (e.code) {
    case 'EPERM':
      if (syscall.startsWith('process_vm')) return new VmPermissionError(syscall, message, { cause: err });
      break;
    case 'ESRCH':
      return new VmNoProcessError(syscall, message, { cause: err });
    case 'EFAULT':
      if (syscall.startsWith('process_vm')) return new VmFaultError(syscall, message, e.bytes ?? 0, { cause: err });
      break;
  }
  return new SysCallError(e.code, syscall, message, 'ERR_IBAL_SYSCALL', { cause: err });
}
