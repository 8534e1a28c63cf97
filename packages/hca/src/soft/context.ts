import { EventType, LinkLayer, PortState, WrOpcode } from '../enums.js';
import { CapacityError, InvalidArgumentError, NotFoundError, ResourceBusyError, ResourceClosedError } from '../errors.js';
import type {
  AhAttr,
  AsyncEvent,
  DeviceAttr,
  DeviceAttrEx,
  Gid,
  HcaContext,
  HcaCq,
  HcaMadAgent,
  HcaPd,
  MadAgentOptions,
  MadHandler,
  PortAttr,
  QpInitAttr,
  SrqAttr,
} from '../provider.js';
import { SoftAh } from './ah.js';
import { MAX_CQE, SoftCq } from './cq.js';
import { registerSoftMadAgent } from './gsi.js';
import type { SoftDevice } from './device.js';
import type { PdRef, SoftMr } from './mr.js';
import { allocRegionMemory } from './mr-memory.js';
import type { PostBind, SoftMw } from './mw.js';
import { MAX_INLINE, MAX_QP_WR, MAX_SGE, SoftQp } from './qp.js';
import { SoftSrq } from './srq.js';


let nextPdId = 1;

// ibv_bind_mw: a type 1 bind is a BIND_MW work request the library posts for
// the caller, ordered in the send queue like any other.
const postBind: PostBind = (qp, wrId, sendFlags, mw, rkey, info) => {
  if (!(qp instanceof SoftQp)) throw new InvalidArgumentError('bindMw: the QP is not one of this device\'s');
  qp.postSend([{ wrId, opcode: WrOpcode.BIND_MW, sendFlags, sgList: [], bindMw: { mw, rkey, bindInfo: info } }]);
};

export class SoftPd implements HcaPd, PdRef {
  readonly id = nextPdId++;
  closed = false;
  private readonly mrs = new Set<SoftMr>();
  private readonly mws = new Set<SoftMw>();

  constructor(private readonly ctx: SoftContext) {}

  private readonly forgetMr = (mr: SoftMr): void => void this.mrs.delete(mr);
  private readonly forgetMw = (mw: SoftMw): void => void this.mws.delete(mw);

  regMr(buf: Uint8Array, access: number) {
    this.check();
    const mr = this.ctx.device.mrs.register(this, buf, access);
    this.mrs.add(mr);
    mr.onDereg = this.forgetMr;
    return mr;
  }

  allocMw(type: number): SoftMw {
    this.check();
    const mw = this.ctx.device.mrs.mws.alloc(this, type, postBind);
    this.mws.add(mw);
    mw.onDealloc = this.forgetMw;
    return mw;
  }

  allocBuffer(length: number): Uint8Array {
    this.check();
    return allocRegionMemory(length);
  }

  createQp(init: QpInitAttr) {
    this.check();
    return this.ctx.device.createQp(this, init, this.ctx);
  }

  createSrq(attr: SrqAttr) {
    this.check();
    return new SoftSrq(attr, this.ctx.raise);
  }

  createAh(attr: AhAttr) {
    this.check();
    return new SoftAh(this.ctx.device.wire, attr);
  }

  dealloc(): void {
    this.check();
    if (this.mrs.size > 0) throw new ResourceBusyError(`PD has ${this.mrs.size} registered MR(s)`);
    if (this.mws.size > 0) throw new ResourceBusyError(`PD has ${this.mws.size} memory window(s)`);
    this.closed = true;
    this.ctx.forgetPd(this);
  }

  /** Context close: release everything the PD still holds. */
  release(): void {
    for (const mw of this.mws) if (!mw.closed) mw.dealloc();
    for (const mr of this.mrs) if (!mr.closed) mr.dereg();
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new ResourceClosedError('PD');
    this.ctx.check();
  }
}

/** An open soft device: what ibv_open_device returns. */
export class SoftContext implements HcaContext {
  closed = false;
  /** Keeps the event loop alive while open (see setRef). */
  refd = true;
  private handler: ((e: AsyncEvent) => void) | undefined;
  private readonly pds = new Set<SoftPd>();

  constructor(readonly device: SoftDevice) {}

  setRef(on: boolean): void {
    this.check();
    this.refd = on;
    this.device.updateRef();
  }

  readonly raise = (e: AsyncEvent): void => {
    if (!this.closed && this.handler) this.handler(e);
  };

  queryDevice(): DeviceAttr {
    this.check();
    const guid = this.device.guid;
    return {
      fwVer: '0.1.0',
      nodeGuid: guid,
      sysImageGuid: guid,
      maxMrSize: 2 ** 32,
      pageSizeCap: 0xfffff000,
      vendorId: 0,
      vendorPartId: 0,
      hwVer: 0,
      maxQp: 0xffff,
      maxQpWr: MAX_QP_WR,
      // IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B: windows of both types, type 2 tied to a QP.
      deviceCapFlags: (1 << 17) | (1 << 24),
      maxSge: MAX_SGE,
      maxCq: 0xffff,
      maxCqe: MAX_CQE,
      maxMr: 0x7fffff,
      maxMw: 0x7fffff,
      maxPd: 0xffff,
      maxQpRdAtom: 16, // the largest maxRdAtomic/maxDestRdAtomic modifyQp accepts
      maxQpInitRdAtom: 16,
      maxResRdAtom: 258048,
      maxSrq: 0xffff,
      maxSrqWr: MAX_QP_WR,
      maxSrqSge: MAX_SGE,
      maxAh: 0xffff,
      maxPkeys: 1,
      atomicCap: 1,
      physPortCnt: 1,
      maxInlineData: MAX_INLINE,
    };
  }

  queryDeviceEx(): DeviceAttrEx {
    const origAttr = this.queryDevice();
    // Completion timestamps are performance.now() in ns: a 1 GHz clock, exact in a double for 2^53 ns.
    return { origAttr, completionTimestampMask: (1n << 53n) - 1n, hcaCoreClock: 1_000_000, deviceCapFlagsEx: BigInt(origAttr.deviceCapFlags >>> 0), physPortCntEx: origAttr.physPortCnt };
  }

  queryPort(portNum: number): PortAttr {
    this.check();
    if (portNum !== 1) throw new NotFoundError(`${this.device.name} has one port, port 1; asked for ${portNum}`);
    const w = this.device.wire;
    return {
      state: PortState.ACTIVE,
      maxMtu: 5,
      activeMtu: this.device.activeMtuEnum,
      gidTblLen: 1,
      portCapFlags: 0,
      maxMsgSz: 2 ** 31,
      pkeyTblLen: 1,
      lid: 0,
      smLid: 0,
      lmc: 0,
      maxVlNum: 1,
      activeWidth: 1,
      activeSpeed: 1,
      physState: 5,
      linkLayer: LinkLayer.ETHERNET,
      udpPort: w.port,
      wire: w.wireName,
    };
  }

  queryGid(portNum: number, index: number): Gid {
    this.check();
    if (portNum !== 1) throw new NotFoundError(`${this.device.name} has one port, port 1; asked for ${portNum}`);
    if (index !== 0) throw new NotFoundError(`${this.device.name} port 1 has one GID, index 0; asked for ${index}`);
    return Uint8Array.from(this.device.gid);
  }

  allocPd(): SoftPd {
    this.check();
    const pd = new SoftPd(this);
    this.pds.add(pd);
    return pd;
  }

  /** A deallocated PD: the context no longer releases it at close (it kept every one it ever made). */
  forgetPd(pd: SoftPd): void {
    this.pds.delete(pd);
  }

  createCq(cqe: number, onNotify: () => void, options?: { timestamps?: boolean }): HcaCq {
    this.check();
    if (!(Number.isInteger(cqe) && cqe >= 1 && cqe <= MAX_CQE)) throw new CapacityError(`CQ size ${cqe} outside 1..${MAX_CQE}`);
    return new SoftCq(cqe, onNotify, this.raise, this.progressDevice, options?.timestamps === true);
  }

  /** umad_register: this context's agent for one management class on QP1 (see gsi.ts). */
  registerMadAgent(opts: MadAgentOptions, onMad: MadHandler): HcaMadAgent {
    this.check();
    return registerSoftMadAgent(this, opts, onMad);
  }

  private readonly progressDevice = (): number => this.device.progress();

  /** Manual progress for callers that wait on memory rather than on a CQ (perftest's WRITE latency loop). */
  progress(): number {
    this.check();
    return this.device.progress();
  }

  setAsyncEventHandler(handler: (event: AsyncEvent) => void): void {
    const first = !this.handler;
    this.handler = handler;
    // The port came up when the wire was bound; report it as a real port reports link-up,
    // on a later turn of the event loop so that code right after openDevice() can listen.
    if (first) setImmediate(() => this.raise({ eventType: EventType.PORT_ACTIVE, portNum: 1 }));
  }

  close(): void {
    this.check();
    this.closed = true;
    this.device.closeContext(this);
    for (const pd of this.pds) pd.release();
  }

  check(): void {
    if (this.closed) throw new ResourceClosedError(`context of ${this.device.name}`);
  }
}

export type { QpInitAttr };
