// A strided copy in native code: runs of bytes at `disp[i]` (lengths
// `len[i]`), repeated every `extent` bytes for instances [first, first + n)
// of a layout in `user`, to or from consecutive bytes of `packed`. It is
// what MPI's derived datatypes do around every non-contiguous transfer; in
// JavaScript each short run costs several times its copy.
import { InvalidArgumentError } from '../errors.js';
import { sys, type SysAddon } from './load.js';

let native: Pick<Required<SysAddon>, 'copyRuns' | 'copyStrided'> | null | undefined;

/** Whether copyRuns and copyStrided can run (the addon is built and has them). */
export function hasCopyRuns(): boolean {
  if (native === undefined) {
    try {
      const s = sys();
      native = s.copyRuns && s.copyStrided ? { copyRuns: s.copyRuns, copyStrided: s.copyStrided } : null;
    } catch {
      native = null;
    }
  }
  return native !== null;
}

/**
 * Copies between `user`'s strided layout from byte `userOff` and `packed`
 * from byte `packedOff` (toPacked: user to packed). Every run is checked
 * against both buffers before it is copied (InvalidArgumentError). Call
 * hasCopyRuns() first.
 */
export function copyRuns(toPacked: boolean, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, packedOff: number, disp: Float64Array, len: Float64Array, extent: number, first: number, n: number): void {
  if (!hasCopyRuns()) throw new InvalidArgumentError('copyRuns: the native addon is not built');
  try {
    native!.copyRuns(toPacked, user, userOff, packed, packedOff, disp, len, extent, first, n);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message, { cause: err });
  }
}

/** `count` runs of `len` bytes `stride` apart from byte `userOff` of `user`, to or from consecutive bytes of `packed` (a vector's layout). Call hasCopyRuns() first. */
export function copyStrided(toPacked: boolean, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, packedOff: number, stride: number, len: number, count: number): void {
  if (!hasCopyRuns()) throw new InvalidArgumentError('copyStrided: the native addon is not built');
  try {
    native!.copyStrided(toPacked, user, userOff, packed, packedOff, stride, len, count);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message, { cause: err });
  }
}
