import { readU32, readU64Big, readU64Number, writeU32, writeU64Big, writeU64Number } from './big-endian.js';

// Atomic Extended Transport Header, 28 bytes:
// VA(64) R_Key(32) Swap-or-Add Data(64) Compare Data(64).

export interface AtomicEthFields {
  atomicVa: number;
  atomicRkey: number;
  /** The swap value of CmpSwap, the addend of FetchAdd. */
  atomicSwapAdd: bigint;
  /** Ignored by FetchAdd (transmitted as sent). */
  atomicCompare: bigint;
}

export function writeAtomicEth(b: Uint8Array, o: number, h: AtomicEthFields): void {
  writeU64Number(b, o, h.atomicVa);
  writeU32(b, o + 8, h.atomicRkey);
  writeU64Big(b, o + 12, h.atomicSwapAdd);
  writeU64Big(b, o + 20, h.atomicCompare);
}

export function readAtomicEth(b: Uint8Array, o: number, out: AtomicEthFields): void {
  out.atomicVa = readU64Number(b, o);
  out.atomicRkey = readU32(b, o + 8);
  out.atomicSwapAdd = readU64Big(b, o + 12);
  out.atomicCompare = readU64Big(b, o + 20);
}
