// Argument checks shared by the typed-array calls: buffers, ranks, tags,
// counts and displacements (in elements of the array's type).
import { InvalidArgumentError } from '@ibal/hca';
import { arrayClass, type TypedArray } from './ops.js';

export function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

export function checkBuffer(v: unknown, what: string): TypedArray {
  if (!isTypedArray(v)) throw new InvalidArgumentError(`${what} must be a typed array`);
  return v;
}

/**
 * Collectives move elements: the receive buffer must hold the sender's
 * element type (MPI's matching type signatures), or the result would be the
 * other type's bytes reread, or a conversion that throws (BigInt into
 * Float32Array).
 */
export function checkSameType(send: TypedArray, recv: TypedArray, what: string): void {
  const a = arrayClass(send);
  const b = arrayClass(recv);
  if (a !== b) throw new InvalidArgumentError(`${what}: sendbuf holds ${a.name}, recvbuf ${b.name}; a collective needs the same element type on both`);
}

/** The bytes of a view, without copying. */
export function bytesOf(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

export function checkRank(r: number, size: number, what: string, allowed: number[] = []): void {
  if (!Number.isInteger(r) || ((r < 0 || r >= size) && !allowed.includes(r))) {
    throw new InvalidArgumentError(`${what} ${String(r)} is not a rank of this communicator (size ${size})`);
  }
}

export function checkTag(t: number, what: string, allowAny: boolean, ub: number): void {
  if (!Number.isInteger(t) || t > ub || (t < 0 && !(allowAny && t === -1))) {
    throw new InvalidArgumentError(`${what} ${String(t)} must be an integer in [0, ${ub}]${allowAny ? ' or ANY_TAG' : ''}`);
  }
}

export function checkCounts(counts: number[] | undefined, displs: number[] | undefined, size: number, what: string, capacity?: number): void {
  if (!Array.isArray(counts) || counts.length !== size || counts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`${what}: counts must be ${size} non-negative integers`);
  }
  if (displs !== undefined) {
    if (!Array.isArray(displs) || displs.length !== size || displs.some((n) => !Number.isInteger(n) || n < 0)) {
      throw new InvalidArgumentError(`${what}: displacements must be ${size} non-negative integers`);
    }
    if (capacity !== undefined) {
      for (let i = 0; i < size; i++) {
        if (displs[i]! + counts[i]! > capacity) throw new InvalidArgumentError(`${what}: block ${i} (${displs[i]}+${counts[i]}) runs past the buffer's ${capacity} elements`);
      }
    }
  }
}

export function prefix(counts: number[]): number[] {
  const d: number[] = [];
  let at = 0;
  for (const n of counts) {
    d.push(at);
    at += n;
  }
  return d;
}
