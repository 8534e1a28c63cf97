import { readU32, writeU32 } from './big-endian.js';

// Immediate Data Extended Transport Header, 4 bytes. The value is opaque to
// the HCA; it is carried as the u32 read in network order, so what a peer
// sends as imm_data (already big-endian in verbs) round-trips unchanged.

export interface ImmDtFields {
  immDt: number;
}

export function writeImmDt(b: Uint8Array, o: number, h: ImmDtFields): void {
  writeU32(b, o, h.immDt);
}

export function readImmDt(b: Uint8Array, o: number, out: ImmDtFields): void {
  out.immDt = readU32(b, o);
}
