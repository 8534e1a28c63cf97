// Memory windows (IBTA 10.6.7, rxe_mw.c): an rkey that opens part of an MR,
// with its own remote access rights, bound and invalidated through a send
// queue while the MR stays registered. Storage protocols (iSER, NVMe-oF,
// SMB Direct) hand one out per I/O and take it back when the I/O is done.
//
// Windows share the MR table's key format (index << 8 | key byte) with the
// top bit of the index set, so one lookup tells an MR key from a window key
// and the MR path stays as it was. A window names no lkey: local SGEs never
// resolve through one.
import { Access, MwType, WcStatus } from '../enums.js';
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import type { HcaMw, HcaQp, MwBindInfo } from '../provider.js';
import type { PdRef, SoftMr } from './mr.js';

/** Bit 31 of a key (bit 23 of its index) marks a memory window. */
export const MW_KEY_BIT = 0x80000000;
const REMOTE = Access.REMOTE_READ | Access.REMOTE_WRITE | Access.REMOTE_ATOMIC;

/** Posts a bind for a type 1 window (ibv_bind_mw goes through the send queue as any bind). */
export type PostBind = (qp: HcaQp, wrId: number, sendFlags: number, mw: SoftMw, rkey: number, info: MwBindInfo) => void;

export class SoftMw implements HcaMw {
  rkey: number;
  closed = false;
  /** Bound to: the MR, where the window starts in the MR's address space, its length, access. */
  mr: SoftMr | undefined = undefined;
  start = 0;
  length = 0;
  access = 0;
  zeroBased = false;
  /** A type 2 window answers only requests that arrive on the QP that bound it (type 2B). */
  qp: object | undefined = undefined;

  constructor(
    readonly table: MwTable,
    readonly pd: PdRef,
    readonly type: number,
    key: number,
    private readonly postBind: PostBind,
  ) {
    this.rkey = key;
  }

  bind(qp: HcaQp, wrId: number, sendFlags: number, rkey: number, info: MwBindInfo): number {
    if (this.closed) throw new ResourceClosedError('MW');
    if (this.type !== MwType.TYPE_1) throw new InvalidArgumentError('bindMw binds type 1 windows; a type 2 window is bound with a BIND_MW work request');
    this.postBind(qp, wrId, sendFlags, this, rkey, info);
    return rkey >>> 0;
  }

  /** Told once the window is deallocated (its PD's list of windows). */
  onDealloc: ((mw: SoftMw) => void) | undefined = undefined;

  dealloc(): void {
    if (this.closed) throw new ResourceClosedError('MW');
    this.unbind();
    this.closed = true;
    this.table.remove(this);
    this.onDealloc?.(this);
  }

  unbind(): void {
    if (this.mr) this.mr.mwCount--;
    this.mr = undefined;
    this.qp = undefined;
    this.length = 0;
    this.access = 0;
  }
}

/**
 * The windows of one device. Keys are `index << 8 | key byte` with index bit
 * 23 set; the key byte is the consumer's (incRkey) and changes with every
 * bind, so an rkey handed out before a re-bind or an invalidate stops working.
 */
export class MwTable {
  private readonly slots: (SoftMw | undefined)[] = [undefined];
  private readonly freeSlots: number[] = [];
  private tag = 0x17;

  alloc(pd: PdRef, type: number, postBind: PostBind): SoftMw {
    if (type !== MwType.TYPE_1 && type !== MwType.TYPE_2) throw new InvalidArgumentError(`allocMw: type must be MwType.TYPE_1 or TYPE_2, got ${String(type)}`);
    const index = this.freeSlots.pop() ?? this.slots.length;
    if (index > 0x7fffff) throw new InvalidArgumentError('out of memory window keys');
    this.tag = (this.tag + 0x3b) & 0xff;
    const mw = new SoftMw(this, pd, type, ((MW_KEY_BIT | (index << 8) | this.tag) >>> 0), postBind);
    this.slots[index] = mw;
    return mw;
  }

  remove(mw: SoftMw): void {
    const index = (mw.rkey >>> 8) & 0x7fffff;
    if (this.slots[index] === mw) {
      this.slots[index] = undefined;
      this.freeSlots.push(index);
    }
  }

  /** The window whose current rkey is `key`, bound or not. */
  lookup(key: number): SoftMw | undefined {
    const mw = this.slots[(key >>> 8) & 0x7fffff];
    return mw && mw.rkey === key >>> 0 ? mw : undefined;
  }

  /**
   * A remote request's rkey and [va, va+len) as an offset into the bound
   * MR's buffer, or -1: unknown or stale key, not bound, another PD, a type 2
   * window bound through another QP, missing rights, or outside the window.
   */
  resolve(key: number, pd: PdRef, va: number, len: number, access: number, qp: object | undefined): number {
    const mw = this.lookup(key);
    if (!mw || !mw.mr || mw.pd !== pd || (access & REMOTE) === 0 || (mw.access & access) !== access) return -1;
    if (mw.type === MwType.TYPE_2 && mw.qp !== qp) return -1;
    const inWindow = mw.zeroBased ? va : va - mw.start;
    if (inWindow < 0 || len < 0 || inWindow + len > mw.length) return -1;
    return mw.start - mw.mr.addr + inWindow;
  }

  bufferOf(key: number): Uint8Array {
    return this.slots[(key >>> 8) & 0x7fffff]!.mr!.buf;
  }

  /**
   * Carries out a bind from `qp`'s send queue (rxe's check_bind_mw): returns
   * the completion status, MW_BIND_ERR for any rule the bind breaks. A type
   * 2 window is tied to `qp` from then on.
   */
  bind(qp: { pd: PdRef }, mw: SoftMw, rkey: number, info: MwBindInfo): number {
    if (mw.closed || mw.pd !== qp.pd) return WcStatus.MW_BIND_ERR;
    // The key's index part is the window's; only its low byte is the consumer's.
    if ((rkey & ~0xff) >>> 0 !== (mw.rkey & ~0xff) >>> 0) return WcStatus.MW_BIND_ERR;
    const len = info.length;
    // A type 2 window binds from the free state only, and never to nothing.
    if (mw.type === MwType.TYPE_2 && (mw.mr || len === 0)) return WcStatus.MW_BIND_ERR;
    if (len === 0) {
      mw.unbind();
      mw.rkey = rkey >>> 0;
      return WcStatus.SUCCESS;
    }
    const mr = info.mr as SoftMr;
    const access = info.mwAccessFlags;
    if (!mr || mr.closed || mr.pd !== qp.pd) return WcStatus.MW_BIND_ERR;
    if ((mr.access & Access.MW_BIND) === 0) return WcStatus.MW_BIND_ERR;
    if (access & ~(REMOTE | Access.ZERO_BASED)) return WcStatus.MW_BIND_ERR;
    if (access & Access.ZERO_BASED && mw.type !== MwType.TYPE_2) return WcStatus.MW_BIND_ERR;
    // The HCA writes through a writable window: the MR must allow local writes.
    if (access & (Access.REMOTE_WRITE | Access.REMOTE_ATOMIC) && !(mr.access & Access.LOCAL_WRITE)) return WcStatus.MW_BIND_ERR;
    const off = info.addr - mr.addr;
    if (!Number.isSafeInteger(info.addr) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > mr.buf.length) return WcStatus.MW_BIND_ERR;
    mw.unbind();
    mw.mr = mr;
    mr.mwCount++;
    mw.start = info.addr;
    mw.length = len;
    mw.access = access & REMOTE;
    mw.zeroBased = (access & Access.ZERO_BASED) !== 0;
    mw.qp = mw.type === MwType.TYPE_2 ? qp : undefined;
    mw.rkey = rkey >>> 0;
    return WcStatus.SUCCESS;
  }

  /**
   * LOCAL_INV from `pd`'s QP, or the responder of a SEND_WITH_INV arriving
   * on `qp` (which must be the QP the window is tied to). Only a bound type 2
   * window can be invalidated; false otherwise.
   */
  invalidate(key: number, pd: PdRef, qp: object | undefined): boolean {
    const mw = this.lookup(key);
    if (!mw || mw.type !== MwType.TYPE_2 || !mw.mr || mw.pd !== pd) return false;
    if (qp !== undefined && mw.qp !== qp) return false;
    mw.unbind();
    return true;
  }
}
