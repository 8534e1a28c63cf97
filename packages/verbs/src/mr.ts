// ibv_reg_mr: registering memory so the HCA may read or write it.

import { Access, CapacityError, InvalidArgumentError } from '@ibal/hca';
import type { HcaMr, Sge } from '@ibal/hca';
import { kHandle, kLimits } from './internal.js';
import { checkPd, type PD } from './pd.js';
import { Resource } from './resource.js';

/** Memory regMr accepts: any byte view, or a whole (Shared)ArrayBuffer. */
export type MrMemory = ArrayBufferView | ArrayBuffer | SharedArrayBuffer;

const KNOWN_ACCESS = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC | Access.MW_BIND;

export class MR extends Resource {
  readonly pd: PD;
  readonly [kHandle]: HcaMr;

  /** @internal Use regMr(). */
  constructor(pd: PD, hca: HcaMr) {
    super([pd]);
    this.pd = pd;
    this[kHandle] = hca;
  }

  describe(): string {
    return 'MR';
  }

  // The keys and address stay behind a closed check: an SGE built from a
  // deregistered MR is exactly the bug this should catch early.
  get lkey(): number {
    this.assertOpen();
    return this[kHandle].lkey;
  }

  get rkey(): number {
    this.assertOpen();
    return this[kHandle].rkey;
  }

  /** The virtual address of buf[0], as SGEs and remote peers name it. */
  get addr(): number {
    this.assertOpen();
    return this[kHandle].addr;
  }

  get length(): number {
    this.assertOpen();
    return this[kHandle].length;
  }

  /** The registered bytes. */
  get buf(): Uint8Array {
    this.assertOpen();
    return this[kHandle].buf;
  }

  /** An SGE for buf[offset .. offset+length). */
  sge(offset = 0, length = this.length - offset): Sge {
    const h = this[kHandle];
    this.assertOpen();
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > h.length) {
      throw new InvalidArgumentError(`sge(${offset}, ${length}) is outside the ${h.length}-byte MR`);
    }
    return { addr: h.addr + offset, length, lkey: h.lkey };
  }

  /** ibv_dereg_mr. */
  dereg(): void {
    this.closeWith('deregister', () => this[kHandle].dereg());
  }

  [Symbol.dispose](): void {
    this.dereg();
  }
}

function toBytes(memory: MrMemory | number): Uint8Array {
  if (typeof memory === 'number') {
    if (!Number.isSafeInteger(memory) || memory < 0) {
      throw new InvalidArgumentError(`regMr: length must be a non-negative integer, got ${memory}`);
    }
    return new Uint8Array(memory);
  }
  if (memory instanceof Uint8Array) return memory;
  if (ArrayBuffer.isView(memory)) return new Uint8Array(memory.buffer, memory.byteOffset, memory.byteLength);
  if (memory instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && memory instanceof SharedArrayBuffer)) {
    return new Uint8Array(memory);
  }
  throw new InvalidArgumentError('regMr: expected a Uint8Array, Buffer, ArrayBuffer, SharedArrayBuffer, any ArrayBufferView or a byte length');
}

/** Checks ibv_access_flags the way ibv_reg_mr does (EINVAL). */
export function checkMrAccess(access: number): void {
  if (!Number.isInteger(access) || access < 0 || access & ~KNOWN_ACCESS) {
    throw new InvalidArgumentError(`regMr: unknown access flags ${String(access)} (known: LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ, REMOTE_ATOMIC, MW_BIND)`);
  }
  // The HCA writes local memory to carry out remote writes and atomics, so
  // libibverbs refuses them without LOCAL_WRITE.
  if (access & (Access.REMOTE_WRITE | Access.REMOTE_ATOMIC) && !(access & Access.LOCAL_WRITE)) {
    const which = access & Access.REMOTE_WRITE ? 'REMOTE_WRITE' : 'REMOTE_ATOMIC';
    throw new InvalidArgumentError(`regMr: access ${which} requires LOCAL_WRITE (EINVAL in libibverbs)`);
  }
}

/**
 * ibv_reg_mr. Given memory, registers those bytes in place (mr.buf views
 * them); given a length, allocates zeroed memory first.
 */
export function regMr(pd: PD, memory: MrMemory | number, access: number): MR {
  checkPd(pd, 'regMr');
  checkMrAccess(access);
  const max = pd.context[kLimits].maxMrSize;
  if (typeof memory === 'number' && Number.isSafeInteger(memory) && memory > max) {
    throw new CapacityError(`regMr: ${memory} bytes exceed the device's maxMrSize ${max}`);
  }
  // Given a length, the provider allocates: the memory it moves fastest.
  const allocate = pd[kHandle].allocBuffer;
  const buf = typeof memory === 'number' && allocate && Number.isSafeInteger(memory) && memory >= 0 ? allocate.call(pd[kHandle], memory) : toBytes(memory);
  if (buf.byteLength > max) throw new CapacityError(`regMr: ${buf.byteLength} bytes exceed the device's maxMrSize ${max}`);
  return new MR(pd, pd[kHandle].regMr(buf, access));
}
