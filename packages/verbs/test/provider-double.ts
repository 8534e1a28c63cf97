// A test double of an HCA provider: no transport, just enough state to
// drive @ibal/verbs' argument checks, lifetime rules and waiting logic.
// Completions and async events are injected by the test; posted WRs are
// recorded. CQ notifications follow hardware semantics (an arm fires on
// the next completion added, not on ones already queued) so the verbs
// layer's arm-then-poll-again race handling is exercised.

import {
  NodeType,
  PortState,
  PostError,
  QpAttrMask,
  QpState,
  newWorkCompletion,
  type AhAttr,
  type AsyncEvent,
  type DeviceAttr,
  type Gid,
  type HcaAh,
  type HcaContext,
  type HcaCq,
  type HcaDevice,
  type HcaMr,
  type HcaPd,
  type HcaProvider,
  type HcaQp,
  type HcaSrq,
  type PortAttr,
  type QpAttr,
  type QpCap,
  type QpInitAttr,
  type RecvWr,
  type SendWr,
  type SrqAttr,
  type WorkCompletion,
} from '@ibal/hca';

export const doubleLimits: DeviceAttr = {
  fwVer: '0.0.0',
  nodeGuid: 0x1234n,
  sysImageGuid: 0x1234n,
  maxMrSize: 1 << 20,
  pageSizeCap: 4096,
  vendorId: 0,
  vendorPartId: 0,
  hwVer: 0,
  maxQp: 64,
  maxQpWr: 128,
  deviceCapFlags: 0,
  maxSge: 4,
  maxCq: 64,
  maxCqe: 1024,
  maxMr: 64,
  maxMw: 0,
  maxPd: 16,
  maxQpRdAtom: 8,
  maxQpInitRdAtom: 8,
  maxResRdAtom: 64,
  maxSrq: 8,
  maxSrqWr: 256,
  maxSrqSge: 2,
  maxAh: 64,
  maxPkeys: 1,
  atomicCap: 1,
  physPortCnt: 1,
  maxInlineData: 64,
};

export class CqDouble implements HcaCq {
  readonly entries: WorkCompletion[] = [];
  armed = false;
  destroyed = false;
  pollCalls = 0;
  constructor(
    readonly cqe: number,
    private readonly onNotify: () => void,
  ) {}

  /** Adds a completion; fires the notification if armed, asynchronously like a real CQ. */
  push(wc: Partial<WorkCompletion>): void {
    this.entries.push({ ...newWorkCompletion(), ...wc });
    if (this.armed) {
      this.armed = false;
      queueMicrotask(() => {
        if (!this.destroyed) this.onNotify();
      });
    }
  }

  poll(n: number, out: WorkCompletion[]): number {
    this.pollCalls++;
    let i = 0;
    for (; i < n && this.entries.length > 0; i++) Object.assign(out[i]!, this.entries.shift()!);
    return i;
  }

  reqNotify(): void {
    this.armed = true;
  }

  destroy(): void {
    this.destroyed = true;
  }
}

export class QpDouble implements HcaQp {
  static nextQpn = 0x100;
  readonly qpNum = QpDouble.nextQpn++;
  readonly qpType: number;
  state: number = QpState.RESET;
  readonly sent: SendWr[] = [];
  readonly received: RecvWr[] = [];
  readonly modifications: Array<{ attr: QpAttr; mask: number }> = [];
  /** The arrays postSend was given, to check reuse. */
  readonly sendBatches: Array<readonly SendWr[]> = [];
  /** When set, postSend refuses from this index on, as a full send queue would. */
  failSendAt: number | undefined;
  destroyed = false;
  constructor(
    readonly init: QpInitAttr,
    readonly grantedCap: QpCap,
  ) {
    this.qpType = init.qpType;
  }

  modify(attr: QpAttr, mask: number): void {
    this.modifications.push({ attr, mask });
    if (mask & QpAttrMask.STATE) this.state = attr.qpState!;
  }

  query(): QpAttr {
    return { qpState: this.state, cap: { ...this.grantedCap } };
  }

  postSend(wrs: readonly SendWr[]): void {
    this.sendBatches.push(wrs);
    for (let i = 0; i < wrs.length; i++) {
      if (this.failSendAt !== undefined && i >= this.failSendAt) {
        throw new PostError('send queue full', i, 'ERR_TEST_QUEUE_FULL');
      }
      // Copy, as a provider must: the caller may reuse the WR after posting.
      const wr = wrs[i]!;
      this.sent.push({ ...wr, sgList: [...wr.sgList], ud: wr.ud ? { ...wr.ud } : undefined });
    }
  }

  postRecv(wrs: readonly RecvWr[]): void {
    for (const wr of wrs) this.received.push({ ...wr, sgList: [...wr.sgList] });
  }

  destroy(): void {
    this.destroyed = true;
  }
}

export class SrqDouble implements HcaSrq {
  readonly attr: SrqAttr;
  readonly received: RecvWr[] = [];
  destroyed = false;
  constructor(attr: SrqAttr) {
    this.attr = { ...attr };
  }
  modify(attr: Partial<SrqAttr>, mask: number): void {
    if (mask & 1) this.attr.maxWr = attr.maxWr!;
    if (mask & 2) this.attr.srqLimit = attr.srqLimit!;
  }
  query(): SrqAttr {
    return { ...this.attr };
  }
  postRecv(wrs: readonly RecvWr[]): void {
    for (const wr of wrs) this.received.push({ ...wr });
  }
  destroy(): void {
    this.destroyed = true;
  }
}

export class PdDouble implements HcaPd {
  readonly mrs: HcaMr[] = [];
  readonly qps: QpDouble[] = [];
  readonly srqs: SrqDouble[] = [];
  readonly ahs: HcaAh[] = [];
  deallocated = false;
  nextKey = 1;
  /** Extra capacity the double grants beyond what was asked, as providers that round up do. */
  capRoundUp = 0;

  regMr(buf: Uint8Array, access: number): HcaMr {
    const key = this.nextKey++;
    const mr: HcaMr & { access: number; deregistered: boolean } = {
      lkey: key,
      rkey: key | 0x8000,
      addr: 0x10000 * key,
      length: buf.byteLength,
      buf,
      access,
      deregistered: false,
      dereg() {
        mr.deregistered = true;
      },
    };
    this.mrs.push(mr);
    return mr;
  }

  createQp(init: QpInitAttr): QpDouble {
    const r = this.capRoundUp;
    const cap = { ...init.cap };
    cap.maxSendSge += r;
    cap.maxInlineData += r;
    const qp = new QpDouble(init, cap);
    this.qps.push(qp);
    return qp;
  }

  createSrq(attr: SrqAttr): SrqDouble {
    const srq = new SrqDouble(attr);
    this.srqs.push(srq);
    return srq;
  }

  createAh(attr: AhAttr): HcaAh {
    const ah = { attr, destroyed: false, destroy: () => void (ah.destroyed = true) };
    this.ahs.push(ah);
    return ah;
  }

  dealloc(): void {
    this.deallocated = true;
  }
}

export class ContextDouble implements HcaContext {
  readonly pds: PdDouble[] = [];
  readonly cqs: CqDouble[] = [];
  handler: ((e: AsyncEvent) => void) | undefined;
  closed = false;
  constructor(
    readonly device: HcaDevice,
    readonly limits: DeviceAttr,
  ) {}

  queryDevice(): DeviceAttr {
    return { ...this.limits };
  }

  queryPort(): PortAttr {
    return {
      state: PortState.ACTIVE,
      maxMtu: 5,
      activeMtu: 3,
      gidTblLen: 2,
      portCapFlags: 0,
      maxMsgSz: 1 << 30,
      pkeyTblLen: 1,
      lid: 0,
      smLid: 0,
      lmc: 0,
      maxVlNum: 1,
      activeWidth: 1,
      activeSpeed: 1,
      physState: 5,
      linkLayer: 2,
      udpPort: 4791,
      wire: 'none',
    };
  }

  queryGid(_port: number, index: number): Gid {
    const gid = new Uint8Array(16);
    gid[15] = index;
    return gid;
  }

  allocPd(): PdDouble {
    const pd = new PdDouble();
    this.pds.push(pd);
    return pd;
  }

  createCq(cqe: number, onNotify: () => void): CqDouble {
    const cq = new CqDouble(cqe, onNotify);
    this.cqs.push(cq);
    return cq;
  }

  setAsyncEventHandler(handler: (event: AsyncEvent) => void): void {
    this.handler = handler;
  }

  /** Raises an async event as the provider would. */
  raise(event: AsyncEvent): void {
    this.handler?.(event);
  }

  close(): void {
    this.closed = true;
  }
}

export class DeviceDouble implements HcaDevice {
  readonly nodeType = NodeType.CA;
  readonly contexts: ContextDouble[] = [];
  constructor(
    readonly name: string,
    readonly provider: string,
    readonly guid: bigint,
    readonly limits: DeviceAttr = doubleLimits,
  ) {}

  async open(): Promise<ContextDouble> {
    const ctx = new ContextDouble(this, this.limits);
    this.contexts.push(ctx);
    return ctx;
  }
}

export class ProviderDouble implements HcaProvider {
  readonly devs: DeviceDouble[];
  /** When set, devices() throws it (a native provider without hardware throws NoDeviceError). */
  failWith: Error | undefined;
  constructor(
    readonly name: string,
    deviceNames: string[] = [`${name}0`],
    limits: DeviceAttr = doubleLimits,
  ) {
    this.devs = deviceNames.map((n, i) => new DeviceDouble(n, name, BigInt(i + 1), limits));
  }
  devices(): HcaDevice[] {
    if (this.failWith) throw this.failWith;
    return this.devs;
  }
}
