import { Access } from '../enums.js';
import { copyBytes } from './copy.js';
import type { MrTable, PdRef } from './mr.js';

/** An SGE list as stored in a WQE: parallel arrays, so walking it allocates nothing. */
export interface SgList {
  numSge: number;
  sgeAddr: number[];
  sgeLen: number[];
  sgeKey: number[];
}

/** Check every SGE resolves under `pd` with `access`; the HCA does this as it fetches a WQE. */
export function checkSgl(mrs: MrTable, pd: PdRef, sgl: SgList, access: number): boolean {
  for (let i = 0; i < sgl.numSge; i++) {
    if (mrs.resolve(sgl.sgeKey[i]!, pd, sgl.sgeAddr[i]!, sgl.sgeLen[i]!, access) < 0) return false;
  }
  return true;
}

/**
 * Copy `len` bytes starting `off` bytes into the SGE list to or from `other`
 * at `otherOff`. Returns false (copying nothing more) if an SGE no longer
 * resolves, e.g. its MR was deregistered while the WR was in flight.
 */
function walk(
  mrs: MrTable,
  pd: PdRef,
  sgl: SgList,
  off: number,
  other: Uint8Array,
  otherOff: number,
  len: number,
  toSgl: boolean,
): boolean {
  const access = toSgl ? Access.LOCAL_WRITE : 0;
  for (let i = 0; i < sgl.numSge && len > 0; i++) {
    const sl = sgl.sgeLen[i]!;
    if (off >= sl) {
      off -= sl;
      continue;
    }
    const n = Math.min(sl - off, len);
    const key = sgl.sgeKey[i]!;
    const mrOff = mrs.resolve(key, pd, sgl.sgeAddr[i]! + off, n, access);
    if (mrOff < 0) return false;
    const mem = mrs.bufferOf(key);
    if (toSgl) copyBytes(mem, mrOff, other, otherOff, n);
    else copyBytes(other, otherOff, mem, mrOff, n);
    otherOff += n;
    len -= n;
    off = 0;
  }
  return len === 0;
}

export function gather(mrs: MrTable, pd: PdRef, sgl: SgList, off: number, dst: Uint8Array, dstOff: number, len: number): boolean {
  return walk(mrs, pd, sgl, off, dst, dstOff, len, false);
}

export function scatter(mrs: MrTable, pd: PdRef, sgl: SgList, off: number, src: Uint8Array, srcOff: number, len: number): boolean {
  return walk(mrs, pd, sgl, off, src, srcOff, len, true);
}
