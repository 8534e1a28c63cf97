// ibv_alloc_mw: memory windows. A window opens part of an MR registered with
// Access.MW_BIND to remote peers under an rkey of its own, with its own
// rights, and is bound, re-bound and invalidated through a send queue while
// the MR stays registered: per-I/O access grants without a registration per
// I/O. Type 1 windows are bound with qp.bindMw (ibv_bind_mw); type 2 windows
// with a BIND_MW work request, are tied to the QP that bound them, and are
// invalidated by LOCAL_INV or by the peer's SEND_WITH_INV.

import { Access, InvalidArgumentError, MwType, NotSupportedError } from '@ibal/hca';
import type { HcaMw } from '@ibal/hca';
import { kHandle, kSetRkey } from './internal.js';
import { MR } from './mr.js';
import { checkPd, type PD } from './pd.js';
import { Resource } from './resource.js';

/** ibv_mw_bind_info. `mr` may be left out when `length` is 0 (unbinding a type 1 window). */
export interface MwBindInfo {
  mr?: MR;
  addr: number;
  length: number;
  /** Access.REMOTE_READ, REMOTE_WRITE, REMOTE_ATOMIC; ZERO_BASED for type 2. */
  mwAccessFlags: number;
}

/** ibv_mw_bind, what qp.bindMw takes. */
export interface MwBind {
  wrId?: number;
  sendFlags?: number;
  bindInfo: MwBindInfo;
}

/** BIND_MW's part of a send WR (ibv_send_wr.bind_mw). */
export interface BindMwWr {
  mw: MW;
  /** The window's new rkey: incRkey of the one it had. */
  rkey: number;
  bindInfo: MwBindInfo;
}

const MW_ACCESS = Access.REMOTE_READ | Access.REMOTE_WRITE | Access.REMOTE_ATOMIC | Access.ZERO_BASED;

/** ibv_inc_rkey: the same window, the next key byte. */
export function incRkey(rkey: number): number {
  return ((rkey & 0xffffff00) | ((rkey + 1) & 0xff)) >>> 0;
}

export class MW extends Resource {
  readonly pd: PD;
  readonly type: number;
  readonly [kHandle]: HcaMw;
  // As ibv_mw's rkey: qp.bindMw moves a type 1 window to its new key when it
  // posts the bind; a type 2 window keeps the key it was allocated with and
  // the application tracks the keys it binds (as C code does).
  #rkey: number;

  /** @internal Use allocMw(). */
  constructor(pd: PD, type: number, hca: HcaMw) {
    super([pd]);
    this.pd = pd;
    this.type = type;
    this[kHandle] = hca;
    this.#rkey = hca.rkey;
  }

  describe(): string {
    return `MW type ${this.type}`;
  }

  get rkey(): number {
    this.assertOpen();
    return this.#rkey;
  }

  /** qp.bindMw: the key a type 1 bind was posted with. */
  [kSetRkey](rkey: number): void {
    this.#rkey = rkey;
  }

  /** ibv_dealloc_mw; a bound window is unbound first. */
  dealloc(): void {
    this.closeWith('deallocate', () => this[kHandle].dealloc());
  }

  [Symbol.dispose](): void {
    this.dealloc();
  }
}

/** ibv_alloc_mw. Fails with NotSupportedError when the provider has no memory windows (EOPNOTSUPP). */
export function allocMw(pd: PD, type: number): MW {
  checkPd(pd, 'allocMw');
  if (type !== MwType.TYPE_1 && type !== MwType.TYPE_2) throw new InvalidArgumentError(`allocMw: type must be MwType.TYPE_1 or MwType.TYPE_2, got ${String(type)}`);
  const h = pd[kHandle];
  if (!h.allocMw) throw new NotSupportedError(`allocMw: the ${pd.context.device.provider} provider has no memory windows (EOPNOTSUPP)`);
  return new MW(pd, type, h.allocMw(type));
}

function isU32(v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && v <= 0xffffffff && Math.floor(v) === v;
}

/** Checks a bind's window and bind info against `pd`; returns a message or undefined. */
export function checkBind(mw: unknown, info: unknown, pd: PD, type: number): string | undefined {
  if (!(mw instanceof MW)) return 'the window must be an MW from allocMw';
  if (mw.closed) return 'the MW has been deallocated';
  if (mw.type !== type) {
    return type === MwType.TYPE_1 ? 'bindMw binds type 1 windows; bind a type 2 window with a BIND_MW work request' : 'BIND_MW binds type 2 windows; bind a type 1 window with qp.bindMw';
  }
  if (mw.pd !== pd) return "the MW belongs to a different PD than the QP's";
  if (typeof info !== 'object' || info === null) return 'bindInfo must be an object { mr, addr, length, mwAccessFlags }';
  const b = info as MwBindInfo;
  if (typeof b.addr !== 'number' || !Number.isSafeInteger(b.addr) || b.addr < 0) return `bindInfo.addr must be a non-negative integer, got ${String(b.addr)}`;
  if (typeof b.length !== 'number' || !Number.isSafeInteger(b.length) || b.length < 0) return `bindInfo.length must be a non-negative integer, got ${String(b.length)}`;
  if (!isU32(b.mwAccessFlags) || b.mwAccessFlags & ~MW_ACCESS) return `bindInfo.mwAccessFlags must be REMOTE_READ, REMOTE_WRITE, REMOTE_ATOMIC or ZERO_BASED bits, got ${String(b.mwAccessFlags)}`;
  if (b.length > 0 || b.mr !== undefined) {
    if (!(b.mr instanceof MR)) return 'bindInfo.mr must be an MR from regMr';
    if (b.mr.closed) return 'bindInfo.mr has been deregistered';
  }
  return undefined;
}

/** The provider's shape of a bind info. */
export function hcaBindInfo(b: MwBindInfo): import('@ibal/hca').MwBindInfo {
  return { mr: b.mr?.[kHandle], addr: b.addr, length: b.length, mwAccessFlags: b.mwAccessFlags };
}
