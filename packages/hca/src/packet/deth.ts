import { readU24, readU32, writeU24, writeU32 } from './big-endian.js';

// Datagram Extended Transport Header, 8 bytes: Q_Key(32) resv8 SrcQP(24).

export interface DethFields {
  dethQkey: number;
  dethSrcQp: number;
}

export function writeDeth(b: Uint8Array, o: number, h: DethFields): void {
  writeU32(b, o, h.dethQkey);
  b[o + 4] = 0;
  writeU24(b, o + 5, h.dethSrcQp);
}

export function readDeth(b: Uint8Array, o: number, out: DethFields): void {
  out.dethQkey = readU32(b, o);
  out.dethSrcQp = readU24(b, o + 5);
}
