import { readU32, readU64Number, writeU32, writeU64Number } from './big-endian.js';

// RDMA Extended Transport Header, 16 bytes: VA(64) R_Key(32) DMA Length(32).

export interface RethFields {
  rethVa: number;
  rethRkey: number;
  rethDmaLen: number;
}

export function writeReth(b: Uint8Array, o: number, h: RethFields): void {
  writeU64Number(b, o, h.rethVa);
  writeU32(b, o + 8, h.rethRkey);
  writeU32(b, o + 12, h.rethDmaLen);
}

export function readReth(b: Uint8Array, o: number, out: RethFields): void {
  out.rethVa = readU64Number(b, o);
  out.rethRkey = readU32(b, o + 8);
  out.rethDmaLen = readU32(b, o + 12);
}
