import { Access } from '../enums.js';
import { InvalidArgumentError, ResourceBusyError, ResourceClosedError } from '../errors.js';
import type { HcaMr } from '../provider.js';
import type { Directory } from './directory.js';
import { regionUsers } from './mr-memory.js';
import { MW_KEY_BIT, MwTable } from './mw.js';

/** The PD a resource belongs to; compared by identity for every key check. */
export interface PdRef {
  readonly id: number;
}

export class SoftMr implements HcaMr {
  readonly lkey: number;
  readonly rkey: number;
  closed = false;
  /** Memory windows bound to it: it cannot be deregistered under them (rxe refuses too). */
  mwCount = 0;

  constructor(
    readonly table: MrTable,
    readonly pd: PdRef,
    readonly buf: Uint8Array,
    readonly addr: number,
    readonly access: number,
    key: number,
  ) {
    this.lkey = key;
    this.rkey = key;
  }

  get length(): number {
    return this.buf.length;
  }

  /** Told once the MR is deregistered (its PD's list of MRs). */
  onDereg: ((mr: SoftMr) => void) | undefined = undefined;

  dereg(): void {
    if (this.closed) throw new ResourceClosedError('MR');
    if (this.mwCount > 0) throw new ResourceBusyError(`MR has ${this.mwCount} memory window(s) bound to it`);
    this.closed = true;
    this.table.remove(this);
    this.onDereg?.(this);
  }
}

/**
 * Keys are `index << 8 | tag`, as rxe builds them: the index finds the MR in
 * O(1) and the 8-bit tag, new on every registration, makes a stale key (from
 * an MR deregistered and its slot reused) fail the check rather than hit the
 * new region.
 */
export class MrTable {
  private readonly slots: (SoftMr | undefined)[] = [undefined];
  private readonly freeSlots: number[] = [];
  private tag = 0x5a;
  /** The device's memory windows, in the same key space (mw.ts). */
  readonly mws = new MwTable();
  /** I/O virtual addresses handed out per MR, page-aligned like real ones, never reused. */
  private nextIova = 0x7f0000000000;
  /** Where MRs are published for same-host peers' direct READs (directory.ts), once the device has one. */
  private directory: Directory | undefined;

  /** Publishes every MR in `dir` from now on, starting with those registered already (undefined: nowhere). */
  publishIn(dir: Directory | undefined): void {
    this.directory = dir;
    if (dir) for (const mr of this.slots) if (mr) dir.publishMr(mr);
  }

  register(pd: PdRef, buf: Uint8Array, access: number): SoftMr {
    if ((access & ~0x1f) !== 0) throw new InvalidArgumentError(`unknown access flags 0x${access.toString(16)}`);
    if ((access & (Access.REMOTE_WRITE | Access.REMOTE_ATOMIC)) && !(access & Access.LOCAL_WRITE)) {
      throw new InvalidArgumentError('REMOTE_WRITE and REMOTE_ATOMIC require LOCAL_WRITE');
    }
    const index = this.freeSlots.pop() ?? this.slots.length;
    if (index > 0x7fffff) throw new InvalidArgumentError('out of memory keys');
    this.tag = (this.tag + 0x3b) & 0xff;
    const key = ((index << 8) | this.tag) >>> 0;
    const addr = this.nextIova;
    this.nextIova += Math.ceil(Math.max(buf.length, 1) / 4096) * 4096 + 4096;
    const mr = new SoftMr(this, pd, buf, addr, access, key);
    this.slots[index] = mr;
    regionUsers(buf, 1);
    this.directory?.publishMr(mr);
    return mr;
  }

  remove(mr: SoftMr): void {
    const index = mr.lkey >>> 8;
    if (this.slots[index] === mr) {
      this.directory?.clearMr(mr);
      this.slots[index] = undefined;
      this.freeSlots.push(index);
      regionUsers(mr.buf, -1);
    }
  }

  lookup(key: number): SoftMr | undefined {
    if (key & MW_KEY_BIT) return undefined;
    const mr = this.slots[key >>> 8];
    return mr && mr.lkey === key >>> 0 ? mr : undefined;
  }

  /**
   * Resolve a key and [va, va+len) to an offset into the MR's buffer, or -1
   * when the key is unknown, belongs to another PD, lacks `access`, or the
   * range falls outside the region. One check serves lkeys and rkeys alike;
   * a memory window's rkey resolves into its MR (mw.ts) for remote access
   * only, and a type 2 window only for requests on `qp`, the QP it is tied to.
   */
  resolve(key: number, pd: PdRef, va: number, len: number, access: number, qp?: object): number {
    if (key & MW_KEY_BIT) return this.mws.resolve(key, pd, va, len, access, qp);
    const mr = this.slots[key >>> 8];
    if (mr && mr.lkey !== key >>> 0) return -1;
    if (!mr || mr.pd !== pd || (mr.access & access) !== access) return -1;
    const off = va - mr.addr;
    if (off < 0 || len < 0 || off + len > mr.buf.length) return -1;
    return off;
  }

  /** The MR that the last successful resolve() named; kept separate so resolve stays allocation-free. */
  bufferOf(key: number): Uint8Array {
    if (key & MW_KEY_BIT) return this.mws.bufferOf(key);
    return this.slots[key >>> 8]!.buf;
  }
}
