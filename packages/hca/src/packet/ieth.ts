import { readU32, writeU32 } from './big-endian.js';

// Invalidate Extended Transport Header, 4 bytes: the R_Key that a Send with
// Invalidate asks the responder to invalidate.

export interface IethFields {
  iethRkey: number;
}

export function writeIeth(b: Uint8Array, o: number, h: IethFields): void {
  writeU32(b, o, h.iethRkey);
}

export function readIeth(b: Uint8Array, o: number, out: IethFields): void {
  out.iethRkey = readU32(b, o);
}
