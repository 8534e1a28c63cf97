// The librdmacm backend behind CmId. On a native device (provider "native")
// the kernel owns QP1 and runs the IB CM itself, so the same calls go to
// librdmacm: rdma_create_id, rdma_bind_addr, rdma_resolve_addr/route,
// rdma_listen, rdma_connect, rdma_accept, rdma_reject, rdma_disconnect, and
// rdma_get_cm_event's events become the same CmEvent objects, with the same
// names and fields, on each id's own EventChannel.
//
// One librdmacm event channel carries every native id of the process: it is
// opened with the first id and closed with the last, so an idle CM holds no
// fd. QPs are created through @ibal/verbs on the device's native context and
// moved with rdma_init_qp_attr's attributes, the librdmacm pattern for a QP
// it did not create (rdma_create_qp itself wants a PD of librdmacm's own
// ibv_context): connect/accept carry its qp_num, the active side answers
// CONNECT_RESPONSE with rdma_establish once its QP is in RTS, exactly what
// librdmacm does internally for a QP created on the id.

import os from 'node:os';
import {
  IbalError,
  InvalidArgumentError,
  NativeUnavailableError,
  NoDeviceError,
  NotFoundError,
  QpAttrMask as M,
  QpState,
  QpType,
  RdmaCmEventType as E,
  RdmaEventChannel,
  ResourceClosedError,
  nativeProvider,
  nativeStatus,
  softProvider,
  type QpAttr,
  type RdmaCmEvent,
} from '@ibal/hca';
import { PROVIDER_ENV, createQp as verbsCreateQp, getDeviceList, type Context, type CQ, type PD, type QP, type QpCapInit } from '@ibal/verbs';
import { ROCE_UDP_PORT, type CmAddress } from './address.js';
import { CmState, RdmaCmState, cmStateName, rdmaCmStateName } from './connection-state.js';
import { AddressError, AddressInUseError, CmStateError } from './errors.js';
import { cmEventName, type CmEvent, type CmEventType, type ConnParam, type UdParam } from './event-channel.js';
import type { CmId, CmOptions, ConnectParam, CreateIdOptions, CreateQpInit } from './id.js';
import { REJ_PRIVATE_DATA_SIZE, RejReason, rejReasonName } from './messages/rej.js';
import { REP_PRIVATE_DATA_SIZE } from './messages/rep.js';
import { REQ_PRIVATE_DATA_SIZE } from './messages/req.js';
import { SIDR_REP_PRIVATE_DATA_SIZE, SIDR_REQ_PRIVATE_DATA_SIZE, sidrStatusName } from './messages/sidr.js';
import { PortSpace, cmaHeaderBytes, portSpaceName } from './service-id.js';

/** librdmacm's RDMA_UDP_QKEY: the Q_Key the kernel puts in SIDR_REPs of RDMA_PS_UDP ids. */
const UDP_QKEY = 0x01234567;
/** What the kernel's rdma_cm uses (CMA_CM_RESPONSE_TIMEOUT, CMA_MAX_CM_RETRIES, CMA_CM_MRA_SETTING); user space cannot change them. */
const KERNEL_CM = { cmResponseTimeout: 20, maxCmRetries: 15, mraServiceTimeout: 24 } as const;
/** librdmacm's usual address and route resolution timeout when the caller gives none. */
const RESOLVE_MS = 2000;
/** IB_QP_SMAC..IB_QP_ALT_VID: old kernels return them from rdma_init_qp_attr; ibv_modify_qp must not see them. */
const KERNEL_ONLY_MASK = 0x1e00000;

const errno = os.constants.errno;
const errnoNames = new Map<number, string>(Object.entries(errno).map(([k, v]) => [v, k]));

function errnoName(status: number): string {
  return errnoNames.get(Math.abs(status)) ?? `errno ${Math.abs(status)}`;
}

/** The negative errno an addon error carries (librdmacm's event status convention). */
function negErrno(err: unknown): number {
  const cause = (err as { cause?: { errno?: number } }).cause;
  const n = (err as { errno?: number }).errno ?? cause?.errno;
  return typeof n === 'number' && n > 0 ? -n : -errno.EINVAL;
}

function checkBits(v: number | undefined, bits: number, name: string): void {
  if (v === undefined) return;
  if (!(Number.isInteger(v) && v >= 0 && v < 2 ** bits)) throw new InvalidArgumentError(`${name} must be an integer in 0..${2 ** bits - 1}, got ${String(v)}`);
}

function privateData(pd: Uint8Array | undefined, max: number, what: string): Uint8Array {
  if (pd === undefined) return new Uint8Array(0);
  if (!(pd instanceof Uint8Array)) throw new InvalidArgumentError(`${what}: privateData must be a Uint8Array`);
  if (pd.length > max) throw new InvalidArgumentError(`${what}: privateData is ${pd.length} bytes; at most ${max} fit`);
  return pd;
}

// ---- the process's librdmacm event channel ---------------------------------

interface Shared {
  ch: RdmaEventChannel;
  ids: Map<number, NativeCmId>;
  closed: boolean;
}

let shared: Shared | undefined;
// Events are handled one after another, each after the previous one's
// asynchronous part (opening the device's context), so an id never sees them
// out of order.
let chain: Promise<void> = Promise.resolve();

function channel(): Shared {
  if (shared) return shared;
  const s: Shared = { ch: undefined as unknown as RdmaEventChannel, ids: new Map(), closed: false };
  try {
    s.ch = new RdmaEventChannel((ev) => {
      chain = chain.then(() => dispatch(s, ev)).catch(unexpected);
    });
  } catch (err) {
    throw noDevice(err);
  }
  shared = s;
  return s;
}

function dropChannelIfIdle(s: Shared): void {
  if (s.closed || s.ids.size > 0) return;
  s.closed = true;
  if (shared === s) shared = undefined;
  s.ch.close();
}

function noDevice(err: unknown): Error {
  if (!(err instanceof NotFoundError) && !(err instanceof NativeUnavailableError)) return err as Error;
  const st = nativeStatus();
  const why = st.rdmacm.on ? (err as Error).message : st.rdmacm.reason;
  const verbs = st.verbs.on ? '' : `; ${st.verbs.reason}`;
  const e = new NoDeviceError(`native rdma_cm id: ${why}${verbs}`);
  (e as { cause?: unknown }).cause = err;
  return e;
}

/** A handler bug must not stop the events after it: say so and go on. */
function unexpected(err: unknown): void {
  process.emitWarning(`ibal cm: a librdmacm event could not be handled: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 'IbalCmWarning');
}

async function dispatch(s: Shared, ev: RdmaCmEvent): Promise<void> {
  if (s.closed) return;
  if (ev.type === E.CONNECT_REQUEST) {
    const listener = ev.listenId !== undefined ? s.ids.get(ev.listenId) : undefined;
    if (!listener) {
      // The listener is gone: the request's id has nobody to answer it.
      try {
        s.ch.destroyId(ev.id);
      } catch {
        // Already gone with the channel.
      }
      return;
    }
    await listener.onRequest(s, ev);
    return;
  }
  const b = s.ids.get(ev.id);
  if (!b) return;
  try {
    await b.onEvent(s, ev);
  } catch (err) {
    // A QP transition or addon call failed while handling the event: the id
    // hears about it as rdma_cm reports such failures.
    b.fail(err);
  }
}

// ---- device contexts (rdma_cm_id.verbs) -------------------------------------

interface HeldContext {
  ctx: Promise<Context>;
  open?: Context;
  holders: number;
}

const contexts = new Map<string, HeldContext>();
/** Contexts released while the user still held PDs, CQs or QPs on them. */
const stuck = new Set<Context>();

function holdContext(name: string): Promise<Context> {
  let h = contexts.get(name);
  if (!h) {
    const dev = getDeviceList().find((d) => d.provider === 'native' && d.name === name);
    const held: HeldContext = {
      ctx: dev ? dev.open() : Promise.reject(new NotFoundError(`librdmacm chose device ${name}, which libibverbs does not list`)),
      holders: 0,
    };
    held.ctx.then(
      (c) => (held.open = c),
      () => undefined,
    );
    contexts.set(name, (h = held));
  }
  h.holders++;
  return h.ctx;
}

function closeContext(ctx: Context): void {
  try {
    ctx.close();
    stuck.delete(ctx);
  } catch {
    // The user still holds resources on id.verbs: it stays open for them, as librdmacm's device does.
    stuck.add(ctx);
  }
}

function releaseContext(name: string): void {
  const h = contexts.get(name);
  if (!h || --h.holders > 0) return;
  contexts.delete(name);
  if (h.open) closeContext(h.open);
  else h.ctx.then(closeContext, () => undefined);
}

/** What the librdmacm backend holds right now: for leak checks in tests and tools. */
export function nativeCmResources(): { channels: number; ids: number; contexts: number } {
  for (const ctx of [...stuck]) closeContext(ctx);
  return { channels: shared ? 1 : 0, ids: shared?.ids.size ?? 0, contexts: contexts.size + stuck.size };
}

// ---- which backend an id uses -------------------------------------------------

function selectedProvider(): string | undefined {
  const v = process.env[PROVIDER_ENV]?.trim();
  return v ? v : undefined;
}

function nativeDeviceNames(): string[] {
  try {
    return nativeProvider.devices().map((d) => d.name);
  } catch {
    return [];
  }
}

/**
 * Whether an id goes to librdmacm from the start: IBAL_PROVIDER=native, or
 * its `device` option names a native device.
 */
export function wantsNative(deviceName: string | undefined): boolean {
  const selected = selectedProvider();
  if (selected !== undefined) return selected === 'native';
  if (deviceName === undefined) return false;
  if (softProvider.devices().some((d) => d.name === deviceName)) return false;
  return nativeDeviceNames().includes(deviceName);
}

/**
 * Whether an address no soft device has goes to librdmacm instead: when
 * nothing restricts the choice and libibverbs lists a native device, the
 * kernel's routing decides, as rdma_resolve_addr does.
 */
export function nativeFallback(err: unknown, deviceName: string | undefined): boolean {
  return err instanceof AddressError && deviceName === undefined && selectedProvider() === undefined && nativeDeviceNames().length > 0;
}

/** The librdmacm id a CmId of a native device carries; see CmId for each call. */
export interface NativeHost {
  deviceName: string | undefined;
  /** The id's CmOptions (live: setOption changes them). */
  options: Required<CmOptions>;
  /** A new CmId on the host's current channel (for connection requests). */
  newId(opts: CreateIdOptions): CmId;
}

/** @internal Gives a CmId that librdmacm created (a connection request) its backend. */
export const kNativeChild = Symbol('ibal.cm.nativeChild');

type NativeAh = UdParam['ahAttr'] & { sgidIndex: number; hopLimit: number; trafficClass: number; flowLabel: number; sl: number };

function udAh(a: NonNullable<RdmaCmEvent['ud']>['ahAttr']): NativeAh {
  const ah: NativeAh = {
    dgid: Uint8Array.from(a.dgid),
    udpPort: ROCE_UDP_PORT,
    portNum: a.portNum,
    sgidIndex: a.sgidIndex,
    hopLimit: a.hopLimit,
    trafficClass: a.trafficClass,
    flowLabel: a.flowLabel,
    sl: a.sl,
  };
  return ah;
}

export class NativeCmId {
  readonly #id: CmId;
  readonly #host: NativeHost;
  #num: number | undefined;
  /** The native device the id is on (its context is held while this is set). */
  #device: string | undefined;
  #local: CmAddress | undefined;
  #peer: CmAddress | undefined;
  #prior: RdmaCmState = RdmaCmState.IDLE;
  #listener: NativeCmId | undefined;
  #backlog = 0;
  #pending = 0;
  /** Passive side: the CONNECT_REQUEST's parameters; after accept, what was agreed. */
  #req: ConnParam | undefined;
  #agreed: { responderResources: number; initiatorDepth: number; flowControl: number; rnrRetryCount: number } | undefined;
  /** Active side: the REQ's retry count (the REP does not echo it). */
  #retryCount = 7;
  /** As librdmacm's connect_error: after a failed CONNECT_RESPONSE, the REJECTED and DISCONNECTED that follow are not reported. */
  #connectError = false;
  #disconnectReported = false;
  #ownPd: PD | undefined;
  #ownCqs: CQ[] = [];

  constructor(id: CmId, host: NativeHost) {
    this.#id = id;
    this.#host = host;
  }

  /** CmOptions with the CM timings the kernel actually uses. */
  get options(): Readonly<Required<CmOptions>> {
    return { ...this.#host.options, ...KERNEL_CM };
  }

  describe(): string {
    const id = this.#id;
    return `CmId native${this.#device ? ` ${this.#device}` : ''} ${this.#num ?? '(no rdma_cm_id)'} ${rdmaCmStateName(id.state)}/${cmStateName(id.cmState)}`;
  }

  get localAddr(): CmAddress | undefined {
    return this.#local ? { ...this.#local } : undefined;
  }

  get peerAddr(): CmAddress | undefined {
    return this.#peer ? { ...this.#peer } : undefined;
  }

  get pendingRequests(): number {
    return this.#pending;
  }

  #assertLive(op: string): void {
    if (this.#id.destroyed) throw new ResourceClosedError(`CM id (${op})`);
  }

  #ch(): RdmaEventChannel {
    const s = shared;
    if (!s || this.#num === undefined) throw new CmStateError('the id has no rdma_cm_id yet (bind or resolve an address first)');
    return s.ch;
  }

  /** rdma_create_id, on first use. */
  #create(): number {
    if (this.#num !== undefined) return this.#num;
    const ps = this.#id.portSpace;
    if (ps !== PortSpace.TCP && ps !== PortSpace.UDP && ps !== PortSpace.IB) {
      throw new InvalidArgumentError(`the kernel's rdma_cm has no ${portSpaceName(ps)} port space (native ids take TCP, UDP or IB)`);
    }
    const want = this.#host.deviceName;
    const s = channel();
    if (want !== undefined && !nativeDeviceNames().includes(want)) {
      dropChannelIfIdle(s);
      throw new NotFoundError(`no native RDMA device named "${want}" (libibverbs lists: ${nativeDeviceNames().join(', ') || 'none'})`);
    }
    try {
      const num = s.ch.createId(this.#id.qpType, ps);
      s.ids.set(num, this);
      this.#num = num;
      return num;
    } catch (err) {
      dropChannelIfIdle(s);
      throw err;
    }
  }

  #emit(event: CmEventType, extra: Partial<CmEvent> = {}): void {
    const id = this.#id;
    if (id.destroyed) return;
    id.channel.push({ event, eventName: cmEventName(event), id, status: 0, ...extra });
  }

  /** The id is on `name` from now on: hold its context as id.verbs. */
  async #onDevice(name: string): Promise<boolean> {
    if (this.#device === name) return true;
    const want = this.#host.deviceName;
    if (want !== undefined && want !== name) return false;
    if (this.#device) releaseContext(this.#device);
    this.#device = name;
    const ctx = await holdContext(name);
    if (this.#device !== name) return false;
    this.#id.verbs = ctx;
    return true;
  }

  #checkUdpPort(a: CmAddress, what: string): void {
    if (a.udpPort !== undefined && a.udpPort !== ROCE_UDP_PORT) {
      throw new InvalidArgumentError(`${what}: native devices use RoCEv2's UDP port ${ROCE_UDP_PORT}, not ${a.udpPort}`);
    }
  }

  // ---- addresses -----------------------------------------------------------

  async bindAddr(a: CmAddress): Promise<void> {
    this.#assertLive('bindAddr');
    this.#checkUdpPort(a, 'bindAddr');
    const id = this.#id;
    if (id.state !== RdmaCmState.IDLE) throw new CmStateError(`bindAddr: the id is ${rdmaCmStateName(id.state)}, not IDLE`);
    const num = this.#create();
    const ch = this.#ch();
    try {
      ch.bindAddr(num, a.address, a.port);
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
      if (code === 'EADDRINUSE') throw new AddressInUseError(`${a.address}:${a.port} is in use in this port space (rdma_bind_addr)`);
      if (err instanceof NotFoundError || code === 'EADDRNOTAVAIL' || code === 'ENODEV') {
        throw new AddressError(`no RDMA device has address ${a.address} (${(err as Error).message})`);
      }
      throw err;
    }
    const info = ch.info(num);
    // A wildcard bind has no device until a request arrives (librdmacm listens on every device).
    if (info.device !== null && !(await this.#onDevice(info.device))) {
      throw new AddressError(`${a.address} is on native device ${info.device}, not ${this.#host.deviceName}`);
    }
    if (id.destroyed) return;
    this.#local = { address: info.srcAddr || a.address, port: info.srcPort };
    id.state = RdmaCmState.ADDR_BOUND;
  }

  resolveAddr(d: CmAddress, src: CmAddress | undefined, timeoutMs: number | undefined): void {
    this.#assertLive('resolveAddr');
    this.#checkUdpPort(d, 'resolveAddr dst');
    if (src) this.#checkUdpPort(src, 'resolveAddr src');
    const id = this.#id;
    if (id.state !== RdmaCmState.IDLE && id.state !== RdmaCmState.ADDR_BOUND) {
      throw new CmStateError(`resolveAddr: the id is ${rdmaCmStateName(id.state)}`);
    }
    const ms = timeoutMs ?? RESOLVE_MS;
    if (!(Number.isInteger(ms) && ms > 0 && ms <= 0x7fffffff)) throw new InvalidArgumentError(`resolveAddr: timeoutMs must be a positive integer, got ${String(timeoutMs)}`);
    this.#prior = id.state;
    try {
      const num = this.#create();
      this.#ch().resolveAddr(num, d.address, d.port, ms, src?.address);
    } catch (err) {
      // rdma_resolve_addr failing at once (no device, no route) is the same
      // outcome as its ADDR_ERROR event, and is reported as one.
      if (err instanceof InvalidArgumentError) throw err;
      const status = err instanceof NoDeviceError || err instanceof NotFoundError ? -errno.ENODEV : negErrno(err);
      this.#emit(E.ADDR_ERROR, { status, reason: (err as Error).message });
      return;
    }
    id.state = RdmaCmState.ADDR_QUERY;
    this.#peer = { address: d.address, port: d.port };
  }

  resolveRoute(timeoutMs?: number): void {
    this.#assertLive('resolveRoute');
    const id = this.#id;
    if (id.state !== RdmaCmState.ADDR_RESOLVED) throw new CmStateError(`resolveRoute: the id is ${rdmaCmStateName(id.state)}, not ADDR_RESOLVED`);
    const ms = timeoutMs ?? RESOLVE_MS;
    if (!(Number.isInteger(ms) && ms > 0 && ms <= 0x7fffffff)) throw new InvalidArgumentError(`resolveRoute: timeoutMs must be a positive integer, got ${String(timeoutMs)}`);
    this.#ch().resolveRoute(this.#num!, ms);
    id.state = RdmaCmState.ROUTE_QUERY;
  }

  // ---- QP --------------------------------------------------------------------

  /**
   * rdma_create_qp on the native PD: a QP of the id's type through
   * @ibal/verbs on the id's device, moved to INIT with rdma_init_qp_attr's
   * attributes (UD: on to RTS with SQ PSN 0, as librdmacm does).
   */
  createQp(pd: PD | undefined, init: CreateQpInit): QP {
    this.#assertLive('createQp');
    const id = this.#id;
    const ctx = id.verbs;
    if (!ctx || this.#num === undefined) throw new CmStateError('createQp: bind or resolve an address first (the id has no device yet)');
    if (id.qp && !id.qp.closed) throw new CmStateError('createQp: the id already has a QP');
    if (pd && (pd.context.device.provider !== 'native' || pd.context.device.name !== this.#device)) {
      throw new InvalidArgumentError(`createQp: the PD is on ${pd.context.device.provider} device ${pd.context.device.name}, not on the id's device ${this.#device}`);
    }
    const cap: QpCapInit = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, ...init.cap };
    const made: { destroy?(): void; dealloc?(): void }[] = [];
    try {
      if (!pd) made.push((pd = this.#ownPd = ctx.allocPd()));
      let sendCq = init.sendCq;
      let recvCq = init.recvCq;
      if (!sendCq) made.push((sendCq = ctx.createCq(Math.max(1, cap.maxSendWr))));
      if (!recvCq) made.push((recvCq = ctx.createCq(Math.max(1, cap.maxRecvWr))));
      const qp = verbsCreateQp(pd, { qpType: id.qpType, sendCq, recvCq, srq: init.srq, cap, sqSigAll: init.sqSigAll });
      made.push(qp);
      const a = this.initQpAttr(QpState.INIT);
      qp.modifyQp(a.attr, a.mask);
      if (id.qpType === QpType.UD) {
        qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
        qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
      }
      for (const r of made) if (r !== pd && r !== qp) this.#ownCqs.push(r as CQ);
      id.pd = pd;
      id.sendCq = sendCq;
      id.recvCq = recvCq;
      id.qp = qp;
      return qp;
    } catch (err) {
      for (const r of made.reverse()) {
        try {
          if (r.destroy) r.destroy();
          else r.dealloc?.();
        } catch {
          // Reported by the original error.
        }
      }
      this.#ownPd = undefined;
      throw err;
    }
  }

  destroyQp(): void {
    const id = this.#id;
    const qp = id.qp;
    if (qp && !qp.closed) qp.destroy();
    id.qp = undefined;
    for (const cq of this.#ownCqs.splice(0)) if (!cq.closed) cq.destroy();
    if (this.#ownPd && !this.#ownPd.closed) this.#ownPd.dealloc();
    this.#ownPd = undefined;
  }

  /** rdma_init_qp_attr. */
  initQpAttr(qpState: number): { attr: QpAttr; mask: number } {
    if (qpState !== QpState.INIT && qpState !== QpState.RTR && qpState !== QpState.RTS) {
      throw new InvalidArgumentError(`initQpAttr: want QpState.INIT, RTR or RTS, got ${String(qpState)}`);
    }
    const { attr, mask } = this.#ch().initQpAttr(this.#num!, qpState);
    return { attr, mask: mask & ~KERNEL_ONLY_MASK };
  }

  /** INIT (from RESET) then RTR and RTS, as librdmacm's ucma_modify_qp_rtr/rts, with the accept's rd_atomic values on the passive side. */
  #qpToRts(rdAtomic?: { maxDestRdAtomic: number; maxRdAtomic: number }): void {
    const qp = this.#id.qp;
    if (!qp || qp.closed) return;
    if (qp.state === QpState.RESET) {
      const a = this.initQpAttr(QpState.INIT);
      qp.modifyQp(a.attr, a.mask);
    }
    const rtr = this.initQpAttr(QpState.RTR);
    if (rdAtomic) rtr.attr.maxDestRdAtomic = rdAtomic.maxDestRdAtomic;
    qp.modifyQp(rtr.attr, rtr.mask);
    const rts = this.initQpAttr(QpState.RTS);
    if (rdAtomic) rts.attr.maxRdAtomic = rdAtomic.maxRdAtomic;
    qp.modifyQp(rts.attr, rts.mask);
  }

  #qpToErr(): void {
    const qp = this.#id.qp;
    if (!qp || qp.closed || qp.state === QpState.ERR || qp.state === QpState.RESET) return;
    try {
      qp.modifyQp({ qpState: QpState.ERR }, M.STATE);
    } catch {
      // Already failed on its own: nothing to flush.
    }
  }

  #limits(): { resp: number; init: number } {
    const a = this.#id.verbs!.queryDevice();
    return { resp: a.maxQpRdAtom, init: a.maxQpInitRdAtom };
  }

  #qpn(param: ConnectParam, what: string): number {
    const qp = this.#id.qp;
    const qpn = qp && !qp.closed ? qp.qpNum : param.qpNum;
    if (qpn === undefined) throw new CmStateError(`${what}: the id has no QP (call createQp) and param.qpNum is not given`);
    checkBits(qpn, 24, `${what}: qpNum`);
    return qpn;
  }

  #applyAckTimeout(): void {
    if (this.#id.qpType !== QpType.RC) return;
    try {
      this.#ch().setOption(this.#num!, 'ackTimeout', this.#host.options.ackTimeout);
    } catch (err) {
      // Kernels before RDMA_OPTION_ID_ACK_TIMEOUT (ENOPROTOOPT) derive it from the path's packet lifetime.
      if ((err as { errno?: number }).errno !== errno.ENOPROTOOPT) throw err;
    }
  }

  // ---- listen / connect --------------------------------------------------------

  listen(backlog: number): void {
    this.#assertLive('listen');
    const id = this.#id;
    if (id.state !== RdmaCmState.ADDR_BOUND) throw new CmStateError(`listen: bind an address first (the id is ${rdmaCmStateName(id.state)})`);
    if (!(Number.isInteger(backlog) && backlog >= 0)) throw new InvalidArgumentError(`listen: backlog must be a non-negative integer, got ${String(backlog)}`);
    this.#backlog = backlog > 0 ? backlog : 1024;
    const ch = this.#ch();
    try {
      ch.listen(this.#num!, this.#backlog);
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
      if (code === 'EADDRINUSE') throw new AddressInUseError(`port ${this.#local?.port} already has a listener (rdma_listen)`);
      throw err;
    }
    // rdma_listen fills in the port a bind to port 0 left open.
    const info = ch.info(this.#num!);
    this.#local = { address: info.srcAddr || (this.#local?.address ?? ''), port: info.srcPort };
    id.state = RdmaCmState.LISTEN;
    id.cmState = CmState.LISTEN;
  }

  connect(param: ConnectParam): void {
    this.#assertLive('connect');
    const id = this.#id;
    if (id.state !== RdmaCmState.ROUTE_RESOLVED) throw new CmStateError(`connect: resolve the route first (the id is ${rdmaCmStateName(id.state)})`);
    const hdr = cmaHeaderBytes(id.portSpace);
    const ch = this.#ch();
    if (id.qpType === QpType.UD) {
      const user = privateData(param.privateData, SIDR_REQ_PRIVATE_DATA_SIZE - hdr, 'connect');
      ch.connect(this.#num!, { privateData: user, qpNum: 0 });
      id.cmState = CmState.SIDR_REQ_SENT;
      id.state = RdmaCmState.CONNECT;
      return;
    }
    const user = privateData(param.privateData, REQ_PRIVATE_DATA_SIZE - hdr, 'connect');
    for (const [k, bits] of [['responderResources', 8], ['initiatorDepth', 8], ['retryCount', 3], ['rnrRetryCount', 3], ['flowControl', 1], ['srq', 1]] as const) {
      checkBits(param[k], bits, `connect: ${k}`);
    }
    const qpn = this.#qpn(param, 'connect');
    const lim = this.#limits();
    const qp = id.qp && !id.qp.closed ? id.qp : undefined;
    if (qp?.state === QpState.RESET) {
      const a = this.initQpAttr(QpState.INIT);
      qp.modifyQp(a.attr, a.mask);
    }
    this.#applyAckTimeout();
    this.#retryCount = param.retryCount ?? 7;
    this.#connectError = false;
    ch.connect(this.#num!, {
      privateData: user,
      responderResources: Math.min(param.responderResources ?? lim.resp, lim.resp),
      initiatorDepth: Math.min(param.initiatorDepth ?? lim.init, lim.init),
      flowControl: param.flowControl ?? 1,
      retryCount: this.#retryCount,
      rnrRetryCount: param.rnrRetryCount ?? 7,
      srq: param.srq ?? (qp?.srq ? 1 : 0),
      qpNum: qpn,
    });
    id.cmState = CmState.REQ_SENT;
    id.state = RdmaCmState.CONNECT;
  }

  // ---- passive side ----------------------------------------------------------

  /** A CONNECT_REQUEST on this listener: a new CmId for it, or a reject beyond the backlog. */
  async onRequest(s: Shared, ev: RdmaCmEvent): Promise<void> {
    const refuse = (): void => {
      // The kernel lets user space reject only as CONSUMER_DEFINED (rdma_cm has no NO_RESOURCES for it).
      try {
        s.ch.reject(ev.id, undefined, RejReason.CONSUMER_DEFINED);
      } catch {
        // The peer's CM times out instead.
      }
      s.ch.destroyId(ev.id);
    };
    if (this.#pending >= this.#backlog || this.#id.destroyed) return refuse();
    const parent = this.#id;
    let child: CmId;
    try {
      child = this.#host.newId({ portSpace: parent.portSpace, context: parent.context, device: this.#host.deviceName, ...this.#host.options });
    } catch (err) {
      // The listener's channel is closed: nobody could take the request.
      refuse();
      if (err instanceof ResourceClosedError) return;
      throw err;
    }
    const b = child[kNativeChild]();
    b.#num = ev.id;
    b.#listener = this;
    s.ids.set(ev.id, b);
    this.#pending++;
    child.state = RdmaCmState.CONNECT;
    child.cmState = child.qpType === QpType.UD ? CmState.SIDR_REQ_RCVD : CmState.REQ_RCVD;
    try {
      const info = s.ch.info(ev.id);
      b.#local = { address: info.srcAddr, port: info.srcPort };
      b.#peer = { address: info.dstAddr, port: info.dstPort };
      if (info.device === null) throw new NotFoundError('librdmacm gave the connection request no device');
      if (!(await b.#onDevice(info.device))) {
        throw new NotFoundError(`the request arrived on ${info.device}, not on ${this.#host.deviceName}`);
      }
    } catch {
      // No device to carry the connection (or not the one asked for): refuse it.
      try {
        s.ch.reject(ev.id, undefined, RejReason.CONSUMER_DEFINED);
      } catch {
        // As above.
      }
      b.destroy();
      return;
    }
    if (child.destroyed) return;
    if (this.#id.destroyed) {
      // The listener went away while the device was opened (destroy rejects the request).
      b.destroy();
      return;
    }
    const pd = ev.privateData ?? new Uint8Array(0);
    if (child.qpType === QpType.UD) {
      const ud: UdParam = { privateData: pd, ahAttr: ev.ud ? udAh(ev.ud.ahAttr) : { dgid: new Uint8Array(16), udpPort: ROCE_UDP_PORT, portNum: 1 }, qpNum: 0, qkey: 0 };
      b.#emit(E.CONNECT_REQUEST, { listenId: parent, ud });
      return;
    }
    const conn: ConnParam = {
      privateData: pd,
      responderResources: ev.responderResources ?? 0,
      initiatorDepth: ev.initiatorDepth ?? 0,
      flowControl: ev.flowControl ?? 0,
      retryCount: ev.retryCount ?? 0,
      rnrRetryCount: ev.rnrRetryCount ?? 0,
      srq: ev.srq ?? 0,
      qpNum: ev.qpNum ?? 0,
    };
    b.#req = conn;
    child.remoteQpn = conn.qpNum;
    b.#emit(E.CONNECT_REQUEST, { listenId: parent, conn });
  }

  #leavePending(): void {
    const l = this.#listener;
    const s = this.#id.cmState;
    if (l && (s === CmState.REQ_RCVD || s === CmState.SIDR_REQ_RCVD)) l.#pending--;
  }

  accept(param: ConnectParam): void {
    this.#assertLive('accept');
    const id = this.#id;
    const ch = this.#ch();
    if (id.cmState === CmState.SIDR_REQ_RCVD) {
      const pd = privateData(param.privateData, SIDR_REP_PRIVATE_DATA_SIZE, 'accept');
      const qpn = this.#qpn(param, 'accept');
      if (param.qkey !== undefined && param.qkey !== UDP_QKEY && id.portSpace === PortSpace.UDP) {
        throw new InvalidArgumentError(`accept: the kernel answers SIDR with the port space's Q_Key 0x${UDP_QKEY.toString(16)}, not 0x${param.qkey.toString(16)}`);
      }
      ch.accept(this.#num!, { privateData: pd, qpNum: qpn });
      this.#leavePending();
      id.cmState = CmState.IDLE;
      return;
    }
    if (id.cmState !== CmState.REQ_RCVD) throw new CmStateError(`accept: no connection request to accept (the id is ${cmStateName(id.cmState)})`);
    const pd = privateData(param.privateData, REP_PRIVATE_DATA_SIZE, 'accept');
    for (const [k, bits] of [['responderResources', 8], ['initiatorDepth', 8], ['rnrRetryCount', 3], ['flowControl', 1], ['srq', 1]] as const) {
      checkBits(param[k], bits, `accept: ${k}`);
    }
    const qpn = this.#qpn(param, 'accept');
    const req = this.#req!;
    const lim = this.#limits();
    const agreed = {
      responderResources: Math.min(param.responderResources ?? req.responderResources, lim.resp),
      initiatorDepth: Math.min(param.initiatorDepth ?? req.initiatorDepth, req.initiatorDepth, lim.init),
      flowControl: param.flowControl ?? 1,
      rnrRetryCount: param.rnrRetryCount ?? 7,
    };
    this.#applyAckTimeout();
    this.#qpToRts({ maxDestRdAtomic: agreed.responderResources, maxRdAtomic: agreed.initiatorDepth });
    try {
      ch.accept(this.#num!, { privateData: pd, ...agreed, srq: param.srq ?? (id.qp?.srq ? 1 : 0), qpNum: qpn });
    } catch (err) {
      this.#qpToErr();
      throw err;
    }
    this.#agreed = agreed;
    this.#leavePending();
    id.cmState = CmState.REP_SENT;
  }

  reject(pd: Uint8Array | undefined, reason: number): void {
    this.#assertLive('reject');
    const id = this.#id;
    const ch = this.#ch();
    if (id.cmState === CmState.SIDR_REQ_RCVD) {
      ch.reject(this.#num!, privateData(pd, SIDR_REP_PRIVATE_DATA_SIZE, 'reject'));
    } else if (id.cmState === CmState.REQ_RCVD) {
      if (reason !== RejReason.CONSUMER_DEFINED && reason !== RejReason.VENDOR_OPTION_NOT_SUPPORTED) {
        throw new InvalidArgumentError(
          `reject: the kernel's rdma_cm lets user space reject only with CONSUMER_DEFINED or VENDOR_OPTION_NOT_SUPPORTED, not ${rejReasonName(reason)}`,
        );
      }
      ch.reject(this.#num!, privateData(pd, REJ_PRIVATE_DATA_SIZE, 'reject'), reason);
    } else {
      throw new CmStateError(`reject: no connection request to reject (the id is ${cmStateName(id.cmState)})`);
    }
    this.#leavePending();
    id.cmState = CmState.IDLE;
    id.state = RdmaCmState.IDLE;
  }

  // ---- events ------------------------------------------------------------------

  async onEvent(s: Shared, ev: RdmaCmEvent): Promise<void> {
    const id = this.#id;
    const status = ev.status;
    switch (ev.type) {
      case E.ADDR_RESOLVED: {
        const info = s.ch.info(ev.id);
        let why = `${this.#peer?.address} resolves to ${info.device ?? 'no device'}, not to ${this.#host.deviceName ?? 'a device'}`;
        let ok = false;
        try {
          ok = info.device !== null && (await this.#onDevice(info.device));
        } catch (err) {
          why = (err as Error).message;
        }
        if (!ok) {
          if (id.destroyed) return;
          id.state = this.#prior;
          this.#emit(E.ADDR_ERROR, { status: -errno.ENODEV, reason: why });
          return;
        }
        if (id.destroyed) return;
        this.#local = { address: info.srcAddr, port: info.srcPort };
        this.#peer = { address: info.dstAddr, port: info.dstPort };
        id.state = RdmaCmState.ADDR_RESOLVED;
        this.#emit(E.ADDR_RESOLVED);
        return;
      }
      case E.ADDR_ERROR:
        id.state = this.#prior;
        this.#emit(E.ADDR_ERROR, { status, reason: errnoName(status) });
        return;
      case E.ROUTE_RESOLVED:
        id.state = RdmaCmState.ROUTE_RESOLVED;
        this.#emit(E.ROUTE_RESOLVED);
        return;
      case E.ROUTE_ERROR:
        id.state = RdmaCmState.ADDR_RESOLVED;
        this.#emit(E.ROUTE_ERROR, { status, reason: errnoName(status) });
        return;
      case E.CONNECT_RESPONSE:
        this.#onConnectResponse(s, ev);
        return;
      case E.ESTABLISHED:
        if (id.qpType === QpType.UD) {
          // SIDR_REP SUCCESS: the remote UD QP and its Q_Key.
          id.cmState = CmState.IDLE;
          id.state = RdmaCmState.ROUTE_RESOLVED;
          const u = ev.ud;
          id.remoteQpn = u?.qpNum ?? 0;
          const ud: UdParam = {
            privateData: ev.privateData ?? new Uint8Array(0),
            ahAttr: u ? udAh(u.ahAttr) : { dgid: new Uint8Array(16), udpPort: ROCE_UDP_PORT, portNum: 1 },
            qpNum: u?.qpNum ?? 0,
            qkey: u?.qkey ?? 0,
          };
          this.#emit(E.ESTABLISHED, { ud });
          return;
        }
        // The passive side's RTU: report what the REQ and this side's accept agreed.
        id.cmState = CmState.ESTABLISHED;
        this.#emit(E.ESTABLISHED, {
          conn: {
            privateData: ev.privateData ?? new Uint8Array(0),
            responderResources: this.#agreed?.responderResources ?? 0,
            initiatorDepth: this.#agreed?.initiatorDepth ?? 0,
            flowControl: this.#req?.flowControl ?? 0,
            retryCount: this.#req?.retryCount ?? 0,
            rnrRetryCount: this.#req?.rnrRetryCount ?? 0,
            srq: this.#req?.srq ?? 0,
            qpNum: this.#req?.qpNum ?? 0,
          },
        });
        return;
      case E.REJECTED: {
        if (this.#connectError) return;
        const active = this.#listener === undefined;
        this.#qpToErr();
        id.cmState = CmState.IDLE;
        if (active) id.state = RdmaCmState.ROUTE_RESOLVED;
        const conn: ConnParam = {
          privateData: ev.privateData ?? new Uint8Array(0),
          responderResources: 0,
          initiatorDepth: 0,
          flowControl: 0,
          retryCount: 0,
          rnrRetryCount: 0,
          srq: 0,
          qpNum: 0,
        };
        // IB and RoCE report the REJ's reason; iWARP a negative errno (ECONNREFUSED).
        this.#emit(E.REJECTED, { status, reason: status > 0 ? rejReasonName(status) : errnoName(status), conn });
        return;
      }
      case E.UNREACHABLE: {
        const active = this.#listener === undefined;
        this.#qpToErr();
        id.cmState = CmState.IDLE;
        if (active) id.state = RdmaCmState.ROUTE_RESOLVED;
        const extra: Partial<CmEvent> = { status, reason: status === -errno.ETIMEDOUT ? 'TIMEOUT' : status > 0 ? sidrStatusName(status) : errnoName(status) };
        if (ev.ud) extra.ud = { privateData: ev.privateData ?? new Uint8Array(0), ahAttr: udAh(ev.ud.ahAttr), qpNum: ev.ud.qpNum, qkey: ev.ud.qkey };
        this.#emit(E.UNREACHABLE, extra);
        return;
      }
      case E.CONNECT_ERROR:
        this.#qpToErr();
        id.cmState = CmState.IDLE;
        this.#emit(E.CONNECT_ERROR, { status, reason: errnoName(status) });
        return;
      case E.DISCONNECTED:
        if (this.#connectError) return;
        if (id.cmState === CmState.DREQ_SENT) {
          id.cmState = CmState.TIMEWAIT;
        } else {
          id.cmState = CmState.DREQ_RCVD;
          id.state = RdmaCmState.DISCONNECT;
        }
        if (this.#disconnectReported) return;
        this.#disconnectReported = true;
        this.#emit(E.DISCONNECTED, status ? { status, reason: status === -errno.ETIMEDOUT ? 'TIMEOUT' : errnoName(status) } : {});
        return;
      case E.TIMEWAIT_EXIT:
        id.cmState = CmState.IDLE;
        this.#emit(E.TIMEWAIT_EXIT);
        return;
      case E.DEVICE_REMOVAL:
        this.#qpToErr();
        id.state = RdmaCmState.DEVICE_REMOVAL;
        this.#emit(E.DEVICE_REMOVAL, { status });
        return;
      default:
        this.#emit(ev.type as CmEventType, status ? { status, reason: errnoName(status) } : {});
    }
  }

  /**
   * The REP arrived (the kernel reports CONNECT_RESPONSE to ids without a
   * kernel-side QP): move our QP to RTR and RTS, send the RTU with
   * rdma_establish, then report ESTABLISHED, as librdmacm does for its own
   * QPs. A QP that will not move is rejected (CONNECT_ERROR).
   */
  #onConnectResponse(s: Shared, ev: RdmaCmEvent): void {
    const id = this.#id;
    try {
      this.#qpToRts();
      s.ch.establish(ev.id);
    } catch (err) {
      this.#qpToErr();
      try {
        s.ch.reject(ev.id);
      } catch {
        // The peer's REP retries run out instead.
      }
      this.#connectError = true;
      id.cmState = CmState.IDLE;
      this.#emit(E.CONNECT_ERROR, { status: negErrno(err), reason: (err as Error).message });
      return;
    }
    id.remoteQpn = ev.qpNum ?? 0;
    id.cmState = CmState.ESTABLISHED;
    this.#emit(E.ESTABLISHED, {
      conn: {
        privateData: ev.privateData ?? new Uint8Array(0),
        responderResources: ev.responderResources ?? 0,
        initiatorDepth: ev.initiatorDepth ?? 0,
        flowControl: ev.flowControl ?? 0,
        retryCount: this.#retryCount,
        rnrRetryCount: ev.rnrRetryCount ?? 0,
        srq: ev.srq ?? 0,
        qpNum: ev.qpNum ?? 0,
      },
    });
  }

  /** An event handler threw (a QP that would not move, an addon error): CONNECT_ERROR with why. */
  fail(err: unknown): void {
    this.#qpToErr();
    this.#emit(E.CONNECT_ERROR, { status: negErrno(err), reason: err instanceof IbalError ? `${err.code}: ${err.message}` : String(err) });
  }

  // ---- teardown -----------------------------------------------------------------

  /** rdma_disconnect: the QP to ERR, then DREQ (or, after the peer's DREQ, DREP). librdmacm sends no private data with it. */
  disconnect(pd?: Uint8Array): void {
    this.#assertLive('disconnect');
    if (pd !== undefined && pd.length > 0) throw new InvalidArgumentError("disconnect: librdmacm's rdma_disconnect carries no private data");
    const id = this.#id;
    switch (id.cmState) {
      case CmState.REP_SENT:
      case CmState.ESTABLISHED:
        id.state = RdmaCmState.DISCONNECT;
        this.#qpToErr();
        this.#ch().disconnect(this.#num!);
        id.cmState = CmState.DREQ_SENT;
        return;
      case CmState.DREQ_RCVD:
        this.#qpToErr();
        this.#ch().disconnect(this.#num!);
        id.cmState = CmState.TIMEWAIT;
        return;
      case CmState.DREQ_SENT:
      case CmState.TIMEWAIT:
        return;
      default:
        throw new CmStateError(`disconnect: not connected (the id is ${cmStateName(id.cmState)})`);
    }
  }

  /**
   * rdma_destroy_id: the kernel rejects a request in progress and sends the
   * DREQ of a live connection itself. The QP is the caller's (destroyQp).
   */
  destroy(): void {
    const id = this.#id;
    if (id.destroyed) return;
    this.#leavePending();
    id.destroyed = true;
    id.state = RdmaCmState.DESTROYING;
    id.channel.ids.delete(id);
    const s = shared;
    const num = this.#num;
    this.#num = undefined;
    if (s && num !== undefined && s.ids.get(num) === this) {
      s.ids.delete(num);
      try {
        s.ch.destroyId(num);
      } catch {
        // The channel closed under it: the id went with it.
      }
      dropChannelIfIdle(s);
    }
    if (this.#device) {
      const name = this.#device;
      this.#device = undefined;
      releaseContext(name);
    }
  }
}
