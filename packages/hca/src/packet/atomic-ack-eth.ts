import { readU64Big, writeU64Big } from './big-endian.js';

// Atomic Acknowledge Extended Transport Header, 8 bytes: the remote
// location's value before the atomic operation.

export interface AtomicAckEthFields {
  atomicAckOrig: bigint;
}

export function writeAtomicAckEth(b: Uint8Array, o: number, h: AtomicAckEthFields): void {
  writeU64Big(b, o, h.atomicAckOrig);
}

export function readAtomicAckEth(b: Uint8Array, o: number, out: AtomicAckEthFields): void {
  out.atomicAckOrig = readU64Big(b, o);
}
