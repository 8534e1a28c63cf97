// Single-copy transfers between this process and another one's memory
// (process_vm_writev / process_vm_readv), for large RDMA WRITE and READ
// between processes of one host. The caller checks keys, bounds and access
// rights first: the kernel only checks that we may ptrace the target.
import { InvalidArgumentError } from '../errors.js';
import { fromNative } from './errors.js';
import { sys } from './load.js';

/** The address of a view's first byte in this process, to hand to a peer. */
export function addressOf(view: ArrayBufferView | ArrayBuffer): bigint {
  return sys().addressOf(view);
}

function check(pid: number, remoteAddress: bigint): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new InvalidArgumentError(`pid must be a positive integer, got ${pid}`);
  if (typeof remoteAddress !== 'bigint' || remoteAddress < 0n) throw new InvalidArgumentError('remote address must be a non-negative bigint');
}

/**
 * Copies `src` into process `pid` at `remoteAddress`; returns the bytes
 * written (all of them, or it throws VmPermissionError, VmNoProcessError,
 * VmFaultError).
 */
export function vmWrite(pid: number, remoteAddress: bigint, src: ArrayBufferView): number {
  check(pid, remoteAddress);
  try {
    return sys().vmTransfer(true, pid, src, 0, src.byteLength, remoteAddress);
  } catch (err) {
    throw fromNative(err);
  }
}

/** Copies `dst.byteLength` bytes from process `pid` at `remoteAddress` into `dst`. */
export function vmRead(pid: number, remoteAddress: bigint, dst: ArrayBufferView): number {
  check(pid, remoteAddress);
  try {
    return sys().vmTransfer(false, pid, dst, 0, dst.byteLength, remoteAddress);
  } catch (err) {
    throw fromNative(err);
  }
}
