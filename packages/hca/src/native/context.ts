import { LinkLayer } from '../enums.js';
import { NotSupportedError, ResourceBusyError, ResourceClosedError } from '../errors.js';
import type {
  AhAttr,
  AsyncEvent,
  DeviceAttr,
  DeviceAttrEx,
  Gid,
  HcaContext,
  HcaPd,
  PortAttr,
  QpInitAttr,
  SrqAttr,
} from '../provider.js';
import { NativeAh } from './ah.js';
import { NativeCq } from './cq.js';
import type { NativeDevice } from './device.js';
import { call } from './errno.js';
import type { NativeContextHandle, VerbsAddon } from './load.js';
import { NativeMr } from './mr.js';
import { NativeMw } from './mw.js';
import { NativeQp, NativeSrq } from './qp.js';

const ROCE_PORT = 4791;

// ibv_device_attr has no inline-data limit (each QP learns its own from
// ibv_create_qp); this is what @ibal/verbs lets callers ask for, and
// ibv_create_qp stays the authority on what the HCA grants.
const MAX_INLINE_HINT = 256;

export class NativePd implements HcaPd {
  closed = false;
  private readonly mrs = new Set<NativeMr>();
  private readonly mws = new Set<NativeMw>();

  constructor(
    private readonly ctx: NativeContext,
    readonly id: number,
  ) {}

  /** Binding-owned zeroed memory, which regMr then registers in place (no copy). */
  allocBuffer(length: number): Uint8Array {
    this.check();
    return new Uint8Array(this.ctx.addon.allocBuffer(length));
  }

  /**
   * Registers binding-owned memory. `buf` from nativeAllocBuffer (or an MR's
   * buf) is registered in place; any other bytes are copied into fresh
   * binding-owned memory first, which the returned MR's `buf` views: JS
   * memory can be moved or freed by the engine, the binding's cannot.
   */
  regMr(buf: Uint8Array, access: number): NativeMr {
    this.check();
    const addon = this.ctx.addon;
    let ab: ArrayBuffer;
    let offset: number;
    if (buf.buffer instanceof ArrayBuffer && addon.isBindingBuffer(buf.buffer)) {
      ab = buf.buffer;
      offset = buf.byteOffset;
    } else {
      ab = addon.allocBuffer(buf.byteLength);
      new Uint8Array(ab).set(buf);
      offset = 0;
    }
    const r = call('ibv_reg_mr', () => this.ctx.h.regMr(this.id, ab, offset, buf.byteLength, access));
    const mr = new NativeMr(this.ctx, r.id, r.lkey, r.rkey, r.addr, new Uint8Array(ab, offset, buf.byteLength), (m) =>
      this.mrs.delete(m),
    );
    this.mrs.add(mr);
    return mr;
  }

  allocMw(type: number): NativeMw {
    this.check();
    const r = call('ibv_alloc_mw', () => this.ctx.h.allocMw(this.id, type));
    const mw = new NativeMw(this.ctx, r.id, type, r.rkey, (m) => this.mws.delete(m));
    this.mws.add(mw);
    return mw;
  }

  createQp(init: QpInitAttr): NativeQp {
    this.check();
    const srq = init.srq as NativeSrq | undefined;
    const created = call('ibv_create_qp', () =>
      this.ctx.h.createQp(this.id, {
        qpType: init.qpType,
        sendCq: (init.sendCq as NativeCq).id,
        recvCq: (init.recvCq as NativeCq).id,
        srq: srq?.id,
        cap: init.cap,
        sqSigAll: init.sqSigAll ?? false,
      }),
    );
    const qp = new NativeQp(this.ctx, init.qpType, created, srq);
    if (srq) srq.users++;
    this.ctx.qps.set(qp.id, qp);
    return qp;
  }

  createSrq(attr: SrqAttr): NativeSrq {
    this.check();
    const r = call('ibv_create_srq', () => this.ctx.h.createSrq(this.id, { maxWr: attr.maxWr, maxSge: attr.maxSge, srqLimit: attr.srqLimit ?? 0 }));
    const srq = new NativeSrq(this.ctx, r.id, r.recvBuf, r.recvMaxSge, r.batch);
    this.ctx.srqs.set(srq.id, srq);
    return srq;
  }

  createAh(attr: AhAttr): NativeAh {
    this.check();
    const id = call('ibv_create_ah', () => this.ctx.h.createAh(this.id, attr));
    return new NativeAh(this.ctx, id, attr);
  }

  dealloc(): void {
    this.check();
    if (this.mrs.size > 0) throw new ResourceBusyError(`PD has ${this.mrs.size} registered MR(s)`);
    if (this.mws.size > 0) throw new ResourceBusyError(`PD has ${this.mws.size} memory window(s)`);
    call('ibv_dealloc_pd', () => this.ctx.h.deallocPd(this.id));
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError('PD');
    this.ctx.check();
  }
}

/** An open libibverbs device: what ibv_open_device returns. */
export class NativeContext implements HcaContext {
  closed = false;
  readonly h: NativeContextHandle;
  readonly cqs = new Map<number, NativeCq>();
  readonly qps = new Map<number, NativeQp>();
  readonly srqs = new Map<number, NativeSrq>();
  private handler: ((e: AsyncEvent) => void) | undefined;

  constructor(
    readonly device: NativeDevice,
    readonly addon: VerbsAddon,
  ) {
    this.h = call(`ibv_open_device ${device.name}`, () => new addon.Context(device.name, this.onCq, this.onAsync));
  }

  readonly lastPostError = () => this.h.lastPostError();

  private readonly onCq = (id: number): void => {
    this.cqs.get(id)?.fire();
  };

  // kind: 0 port/device, 1 QP, 2 CQ, 3 SRQ (as the addon reports the element).
  private readonly onAsync = (eventType: number, kind: number, id: number): void => {
    if (this.closed || !this.handler) return;
    const e: AsyncEvent = { eventType };
    if (kind === 1) e.qp = this.qps.get(id);
    else if (kind === 2) e.cq = this.cqs.get(id);
    else if (kind === 3) e.srq = this.srqs.get(id);
    else if (id > 0) e.portNum = id;
    this.handler(e);
  };

  queryDevice(): DeviceAttr {
    this.check();
    const a = call('ibv_query_device', () => this.h.queryDevice());
    return { ...(a as unknown as DeviceAttr), maxInlineData: MAX_INLINE_HINT };
  }

  queryDeviceEx(): DeviceAttrEx {
    this.check();
    const origAttr = this.queryDevice();
    const x = call('ibv_query_device_ex', () => this.h.queryDeviceEx());
    return { origAttr, completionTimestampMask: x.completionTimestampMask, hcaCoreClock: x.hcaCoreClock, deviceCapFlagsEx: x.deviceCapFlagsEx, physPortCntEx: x.physPortCntEx };
  }

  queryPort(portNum: number): PortAttr {
    this.check();
    const p = call('ibv_query_port', () => this.h.queryPort(portNum)) as unknown as PortAttr;
    const roce = p.linkLayer === LinkLayer.ETHERNET;
    return { ...p, udpPort: roce ? ROCE_PORT : 0, wire: roce ? 'roce' : 'infiniband' };
  }

  queryGid(portNum: number, index: number): Gid {
    this.check();
    return call('ibv_query_gid', () => this.h.queryGid(portNum, index));
  }

  allocPd(): NativePd {
    this.check();
    return new NativePd(this, call('ibv_alloc_pd', () => this.h.allocPd()));
  }

  createCq(cqe: number, onNotify: () => void, options?: { timestamps?: boolean }): NativeCq {
    this.check();
    if (options?.timestamps) throw new NotSupportedError('completion timestamps: the native provider polls with ibv_poll_cq, which reports none');
    const r = call('ibv_create_cq', () => this.h.createCq(cqe));
    const cq = new NativeCq(this, r.id, r.cqe, r.out, onNotify);
    this.cqs.set(cq.id, cq);
    return cq;
  }

  setAsyncEventHandler(handler: (event: AsyncEvent) => void): void {
    this.handler = handler;
  }

  close(): void {
    this.check();
    this.closed = true;
    this.h.close();
    for (const cq of this.cqs.values()) cq.closed = true;
    for (const qp of this.qps.values()) qp.closed = true;
    for (const srq of this.srqs.values()) srq.closed = true;
  }

  check(): void {
    if (this.closed) throw new ResourceClosedError(`context of ${this.device.name}`);
  }
}
