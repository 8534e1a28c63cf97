// rdma_cm_id: one endpoint of a connection (or a listener), carrying both
// rdma_cm's state (address, route, port space) and the IB CM's (REQ, REP,
// RTU, DREQ, DREP and their retransmissions, MRA, timewait). The CM moves the
// id's QP through INIT, RTR and RTS from the negotiated attributes, as
// librdmacm does, and reports progress as events on the id's channel.

import { randomInt } from 'node:crypto';
import {
  Access,
  InvalidArgumentError,
  NotSupportedError,
  gidFromIp,
  QpAttrMask as M,
  QpState,
  QpType,
  ResourceClosedError,
  type MadAddress,
  type QpAttr,
} from '@ibal/hca';
import { createQp as verbsCreateQp, type Context, type CQ, type PD, type QP, type QpCapInit, type SRQ } from '@ibal/verbs';
import { ROCE_UDP_PORT, ipVersion, isWildcard, parseAddress, type CmAddress, type CmAddressInput } from './address.js';
import { CmDevice, deviceFor, gidKey, ipFromGid } from './cm-device.js';
import { CMA_HEADER_SIZE, readCmaHeader, writeCmaHeader } from './cma-header.js';
import { findListener, publishListener, withdrawListener } from './local-listeners.js';
import { CmState, RdmaCmState, cmStateName, rdmaCmStateName } from './connection-state.js';
import { AddressError, AddressInUseError, CmStateError } from './errors.js';
import { CmEventType, EventChannel, cmEventName, type CmEvent, type ConnParam, type UdParam } from './event-channel.js';
import { REJ_PRIVATE_DATA_SIZE, RejReason, MsgRejected, rejReasonName, type RejMsg } from './messages/rej.js';
import { DREQ_PRIVATE_DATA_SIZE, type DreqMsg } from './messages/dreq.js';
import { encodeDrep } from './messages/drep.js';
import { encodeMra, type MraMsg } from './messages/mra.js';
import { REP_PRIVATE_DATA_SIZE, encodeRep, type RepMsg } from './messages/rep.js';
import { REQ_PRIVATE_DATA_SIZE, CmTransport, encodeReq, newReq, type ReqMsg } from './messages/req.js';
import { encodeRtu, type RtuMsg } from './messages/rtu.js';
import { SIDR_REP_PRIVATE_DATA_SIZE, SIDR_REQ_PRIVATE_DATA_SIZE, SidrStatus, encodeSidrReq, sidrStatusName, type SidrRepMsg, type SidrReqMsg } from './messages/sidr.js';
import { PortSpace, checkPortSpace, cmaHeaderBytes, serviceId } from './service-id.js';
import { ibaTimeMs } from './timers.js';
import { NativeCmId, kNativeChild, nativeFallback, wantsNative } from './native-id.js';

/** librdmacm's Q_Key for UDP port-space ids. */
export const RDMA_UDP_QKEY = 0x01234567;
/** The destination QP number of every multicast send. */
const MCAST_QPN = 0xffffff;

const ETIMEDOUT = -110;
const EADDRNOTAVAIL = -99;
const GSI_QKEY = 0x80010000;

/** Timing of the CM protocol for an id (rdma_set_option's CM knobs, plus ibal's). */
export interface CmOptions {
  /** CM response timeout exponent (4.096 µs · 2^n) advertised in REQs and used for retransmission; rdma_cm uses 20 (~4 s). */
  cmResponseTimeout?: number;
  /** Retransmissions of REQ, REP, DREQ and SIDR_REQ before giving up (0..15); rdma_cm uses 15. */
  maxCmRetries?: number;
  /** The QP's local ACK timeout exponent (RDMA_OPTION_ID_ACK_TIMEOUT). */
  ackTimeout?: number;
  /** How long a closed connection's comm ID and QPN stay reserved (timewait), in ms. */
  timewaitMs?: number;
  /** MRA service timeout exponent sent when a REQ is repeated before the user answers it. */
  mraServiceTimeout?: number;
}

const DEFAULTS: Required<CmOptions> = {
  cmResponseTimeout: 20,
  maxCmRetries: 15,
  ackTimeout: 14,
  timewaitMs: 100,
  mraServiceTimeout: 22,
};

export interface CreateIdOptions extends CmOptions {
  /** PortSpace.TCP (RC, the default), UDP (UD with SIDR), SDP, IB. */
  portSpace?: number;
  /** The user's own value, carried on the id and its events (rdma_cm_id.context). */
  context?: unknown;
  /** Use this device instead of choosing by address. */
  device?: string;
}

/** rdma_conn_param for connect and accept. Every field is optional. */
export interface ConnectParam {
  privateData?: Uint8Array;
  /** RDMA READs/atomics this side accepts at once (its max_dest_rd_atomic). */
  responderResources?: number;
  /** RDMA READs/atomics this side issues at once (its max_rd_atomic). */
  initiatorDepth?: number;
  flowControl?: number;
  /** Transport retries (3 bits). */
  retryCount?: number;
  /** RNR retries (3 bits; 7 is forever). */
  rnrRetryCount?: number;
  srq?: number;
  /** QP number to advertise when the id has no QP of its own. */
  qpNum?: number;
  /** UD accept: the Q_Key to return (default RDMA_UDP_QKEY). */
  qkey?: number;
}

export interface CreateQpInit {
  sendCq?: CQ;
  recvCq?: CQ;
  srq?: SRQ;
  cap?: Partial<QpCapInit>;
  sqSigAll?: boolean;
}

function checkBits(v: number | undefined, bits: number, name: string): void {
  if (v === undefined) return;
  if (!(Number.isInteger(v) && v >= 0 && v < 2 ** bits)) throw new InvalidArgumentError(`${name} must be an integer in 0..${2 ** bits - 1}, got ${String(v)}`);
}

function checkPrivateData(pd: Uint8Array | undefined, max: number, what: string): Uint8Array {
  if (pd === undefined) return new Uint8Array(0);
  if (!(pd instanceof Uint8Array)) throw new InvalidArgumentError(`${what}: privateData must be a Uint8Array`);
  if (pd.length > max) throw new InvalidArgumentError(`${what}: privateData is ${pd.length} bytes; at most ${max} fit`);
  return pd;
}

function respMs(exp: number): number {
  // The advertised response time plus twice a (loopback-sized) packet lifetime.
  return ibaTimeMs(exp) + 2;
}

export class CmId {
  channel: EventChannel;
  readonly portSpace: number;
  readonly qpType: number;
  context: unknown;
  /** The device context (rdma_cm_id.verbs), once an address is bound or resolved. */
  verbs: Context | undefined;
  pd: PD | undefined;
  qp: QP | undefined;
  sendCq: CQ | undefined;
  recvCq: CQ | undefined;
  /** rdma_cm's state. */
  state: RdmaCmState = RdmaCmState.IDLE;
  /** The IB CM's state. */
  cmState: CmState = CmState.IDLE;
  destroyed = false;
  localCommId = 0;
  remoteCommId = 0;
  remoteCaGuid = 0n;
  remoteQpn = 0;

  #dev: CmDevice | undefined;
  #deviceName: string | undefined;
  readonly #opts: Required<CmOptions>;
  #local: CmAddress | undefined;
  #peer: CmAddress | undefined;
  #boundPort = 0;
  #listening: bigint | undefined;
  #backlog = 0;
  #pending = 0;
  #listener: CmId | undefined;
  #dest: MadAddress | undefined;
  #remoteGid: Uint8Array | undefined;
  #tid = 0n;
  #req: ReqMsg | undefined;
  #rep: RepMsg | undefined;
  #repMad: Uint8Array | undefined;
  #rtuMad: Uint8Array | undefined;
  #mraMad: Uint8Array | undefined;
  #drepMad: Uint8Array | undefined;
  #dreqTid = 0n;
  #localPsn = 0;
  #timer: NodeJS.Timeout | undefined;
  #retry: { ms: number; left: number } | undefined;
  #retryTick: (() => void) | undefined;
  #tables = false;
  #lingering = false;
  #disconnectReported = false;
  #sidrId = 0;
  #sidrKey: string | undefined;
  #sidrReq: SidrReqMsg | undefined;
  #sidrReply: Uint8Array | undefined;
  #sidrHold = false;
  #ownPd: PD | undefined;
  #ownCqs: CQ[] = [];
  /** On a native device librdmacm carries the id (native-id.ts); every call below goes there. */
  #native: NativeCmId | undefined;

  /** @internal Use createId(). */
  constructor(channel: EventChannel, opts: CreateIdOptions | null = {}) {
    if (!(channel instanceof EventChannel)) throw new InvalidArgumentError('createId: channel must be an EventChannel');
    opts ??= {};
    if (typeof opts !== 'object') throw new InvalidArgumentError('createId: options must be an object');
    if (channel.closed) throw new ResourceClosedError('event channel');
    this.portSpace = checkPortSpace(opts.portSpace ?? PortSpace.TCP);
    this.qpType = this.portSpace === PortSpace.UDP ? QpType.UD : QpType.RC;
    this.context = opts.context;
    this.#deviceName = opts.device;
    this.#opts = { ...DEFAULTS };
    this.setOption(opts);
    this.channel = channel;
    channel.ids.add(this);
  }

  /** rdma_set_option for the CM's timing knobs. */
  setOption(opts: CmOptions): void {
    if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError('setOption: options must be an object');
    checkBits(opts.cmResponseTimeout, 5, 'cmResponseTimeout');
    checkBits(opts.maxCmRetries, 4, 'maxCmRetries');
    checkBits(opts.ackTimeout, 5, 'ackTimeout');
    checkBits(opts.mraServiceTimeout, 5, 'mraServiceTimeout');
    if (opts.timewaitMs !== undefined && !(Number.isFinite(opts.timewaitMs) && opts.timewaitMs >= 0)) {
      throw new InvalidArgumentError(`timewaitMs must be a non-negative number, got ${String(opts.timewaitMs)}`);
    }
    for (const k of Object.keys(DEFAULTS) as (keyof CmOptions)[]) {
      const v = opts[k];
      if (v !== undefined) this.#opts[k] = v;
    }
  }

  get options(): Readonly<Required<CmOptions>> {
    if (this.#native) return this.#native.options;
    return this.#opts;
  }

  describe(): string {
    if (this.#native) return this.#native.describe();
    return `CmId ${this.localCommId ? `0x${this.localCommId.toString(16)}` : '(unconnected)'} ${rdmaCmStateName(this.state)}/${cmStateName(this.cmState)}`;
  }

  /** rdma_get_local_addr. */
  get localAddr(): CmAddress | undefined {
    if (this.#native) return this.#native.localAddr;
    return this.#local ? { ...this.#local } : undefined;
  }

  /** rdma_get_peer_addr. */
  get peerAddr(): CmAddress | undefined {
    if (this.#native) return this.#native.peerAddr;
    return this.#peer ? { ...this.#peer } : undefined;
  }

  getSrcPort(): number {
    if (this.#native) return this.#native.localAddr?.port ?? 0;
    return this.#local?.port ?? 0;
  }

  getDstPort(): number {
    if (this.#native) return this.#native.peerAddr?.port ?? 0;
    return this.#peer?.port ?? 0;
  }

  /** Requests waiting for accept or reject on a listener. */
  get pendingRequests(): number {
    if (this.#native) return this.#native.pendingRequests;
    return this.#pending;
  }

  #assertLive(op: string): void {
    if (this.destroyed) throw new ResourceClosedError(`CM id (${op})`);
  }

  #refd = true;

  /** Whether this id keeps the event loop alive (see unref). */
  get refd(): boolean {
    return this.#refd;
  }

  /** ibal extension, as a Node handle's ref(): the id keeps the event loop alive (the default). */
  ref(): this {
    this.#refd = true;
    this.#dev?.updateRef();
    return this;
  }

  /**
   * ibal extension, as a Node handle's unref(): the id (a listener, a
   * connection) no longer keeps the event loop alive; the soft device under
   * it lets the process exit once every id on it is unref'd and works as
   * usual while something else keeps the process running. A no-op on a
   * native device.
   */
  unref(): this {
    this.#refd = false;
    this.#dev?.updateRef();
    return this;
  }

  #attach(dev: CmDevice): void {
    if (this.#dev === dev) return;
    this.#dev = dev;
    dev.hold(this);
    dev.onReq ??= CmId.#handleReq;
    dev.onSidrReq ??= CmId.#handleSidrReq;
    this.verbs = dev.ctx;
  }

  #emit(event: CmEventType, extra: Partial<CmEvent> = {}): void {
    if (this.destroyed) return;
    this.channel.push({ event, eventName: cmEventName(event), id: this, status: 0, ...extra });
  }

  // ---- addresses -------------------------------------------------------

  /** rdma_bind_addr: choose the local device by IP (and UDP port) and reserve the port. */
  async bindAddr(addr: CmAddressInput): Promise<void> {
    this.#assertLive('bindAddr');
    const a = parseAddress(addr, 'bindAddr');
    if (this.#native || wantsNative(this.#deviceName)) return this.#useNative().bindAddr(a);
    if (this.state !== RdmaCmState.IDLE) throw new CmStateError(`bindAddr: the id is ${rdmaCmStateName(this.state)}, not IDLE`);
    let dev: CmDevice;
    try {
      dev = isWildcard(a.address) ? await wildcardDevice(a, this.#deviceName) : await deviceFor(a, undefined, this.#deviceName);
    } catch (err) {
      if (!this.destroyed && nativeFallback(err, this.#deviceName)) return this.#useNative().bindAddr(a);
      throw err;
    }
    if (this.destroyed) return dev.dropIfIdle();
    const port = dev.bindPort(this.portSpace, a.port, true);
    if (port === undefined) {
      dev.dropIfIdle();
      throw new AddressInUseError(`${a.address}:${a.port} is in use in this port space`);
    }
    this.#attach(dev);
    this.#boundPort = port;
    this.#local = { address: dev.address, port, udpPort: dev.udpPort };
    this.state = RdmaCmState.ADDR_BOUND;
  }

  /**
   * rdma_resolve_addr: pick the local device for `dst` (or `src`), then
   * ADDR_RESOLVED (or ADDR_ERROR) arrives on the channel.
   */
  resolveAddr(dst: CmAddressInput, opts: { src?: CmAddressInput; timeoutMs?: number } | null = {}): void {
    opts ??= {};
    this.#assertLive('resolveAddr');
    const d = parseAddress(dst, 'resolveAddr dst');
    const s = opts.src !== undefined ? parseAddress(opts.src, 'resolveAddr src') : undefined;
    if (this.#native || wantsNative(this.#deviceName)) return this.#useNative().resolveAddr(d, s, opts.timeoutMs);
    if (this.state !== RdmaCmState.IDLE && this.state !== RdmaCmState.ADDR_BOUND) {
      throw new CmStateError(`resolveAddr: the id is ${rdmaCmStateName(this.state)}`);
    }
    const prior = this.state;
    this.state = RdmaCmState.ADDR_QUERY;
    const bound = this.#dev;
    if (bound && ipVersion(bound.address) !== ipVersion(d.address)) {
      // A bound id keeps its device; a destination of the other IP version has no route from it (no packet would ever come back).
      setImmediate(() => {
        if (this.destroyed) return;
        this.state = prior;
        this.#emit(CmEventType.ADDR_ERROR, { status: EADDRNOTAVAIL, reason: `the id is bound to ${bound.address} (IPv${ipVersion(bound.address)}); ${d.address} is IPv${ipVersion(d.address)}` });
      });
      return;
    }
    void (async () => {
      try {
        const dev = this.#dev ?? (await deviceFor(s, d, this.#deviceName));
        if (this.destroyed) return dev.dropIfIdle();
        this.#attach(dev);
        this.#local = { address: dev.address, port: this.#boundPort, udpPort: dev.udpPort };
        // No UDP port named: a listener of this host's may have said which (local-listeners.ts).
        this.#peer = { address: d.address, port: d.port, udpPort: d.udpPort ?? findListener(this.portSpace, d.port, d.address) ?? ROCE_UDP_PORT };
        this.state = RdmaCmState.ADDR_RESOLVED;
        this.#emit(CmEventType.ADDR_RESOLVED);
      } catch (err) {
        this.state = prior;
        let why = err;
        if (!this.destroyed && nativeFallback(err, this.#deviceName)) {
          try {
            return this.#useNative().resolveAddr(d, s, opts.timeoutMs);
          } catch (e) {
            why = e;
          }
        }
        this.#emit(CmEventType.ADDR_ERROR, { status: EADDRNOTAVAIL, reason: why instanceof Error ? why.message : String(why) });
      }
    })();
  }

  /** rdma_resolve_route: on RoCE the route is the two GIDs; ROUTE_RESOLVED follows. */
  resolveRoute(_timeoutMs?: number): void {
    if (this.#native) return this.#native.resolveRoute(_timeoutMs);
    this.#assertLive('resolveRoute');
    if (this.state !== RdmaCmState.ADDR_RESOLVED) throw new CmStateError(`resolveRoute: the id is ${rdmaCmStateName(this.state)}, not ADDR_RESOLVED`);
    this.state = RdmaCmState.ROUTE_QUERY;
    setImmediate(() => {
      if (this.destroyed || this.state !== RdmaCmState.ROUTE_QUERY) return;
      this.state = RdmaCmState.ROUTE_RESOLVED;
      this.#emit(CmEventType.ROUTE_RESOLVED);
    });
  }

  // ---- QP --------------------------------------------------------------

  /**
   * rdma_create_qp: a QP of the id's type on its device, moved to INIT (UD:
   * to RTS, with RDMA_UDP_QKEY). Without a PD or CQs, the id makes its own
   * and destroyQp releases them.
   */
  createQp(pd?: PD, init: CreateQpInit | null = {}): QP {
    init ??= {};
    if (this.#native) return this.#native.createQp(pd, init);
    this.#assertLive('createQp');
    const ctx = this.verbs;
    if (!ctx) throw new CmStateError('createQp: bind or resolve an address first (the id has no device yet)');
    if (this.qp && !this.qp.closed) throw new CmStateError('createQp: the id already has a QP');
    const cap: QpCapInit = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, ...init.cap };
    if (!pd) pd = this.#ownPd = ctx.allocPd();
    let sendCq = init.sendCq;
    let recvCq = init.recvCq;
    if (!sendCq) this.#ownCqs.push((sendCq = ctx.createCq(Math.max(1, cap.maxSendWr))));
    if (!recvCq) this.#ownCqs.push((recvCq = ctx.createCq(Math.max(1, cap.maxRecvWr))));
    const qp = verbsCreateQp(pd, { qpType: this.qpType, sendCq, recvCq, srq: init.srq, cap, sqSigAll: init.sqSigAll });
    this.pd = pd;
    this.sendCq = sendCq;
    this.recvCq = recvCq;
    this.qp = qp;
    if (this.qpType === QpType.UD) {
      qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: RDMA_UDP_QKEY }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
      qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
      qp.modifyQp({ qpState: QpState.RTS, sqPsn: randomInt(0, 0xffffff) }, M.STATE | M.SQ_PSN);
    } else {
      const { attr, mask } = this.initQpAttr(QpState.INIT);
      qp.modifyQp(attr, mask);
    }
    return qp;
  }

  /** rdma_destroy_qp: the QP, and the PD and CQs createQp made for it. */
  destroyQp(): void {
    if (this.#native) return this.#native.destroyQp();
    const qp = this.qp;
    if (qp && !qp.closed) qp.destroy();
    this.qp = undefined;
    for (const cq of this.#ownCqs.splice(0)) if (!cq.closed) cq.destroy();
    if (this.#ownPd && !this.#ownPd.closed) this.#ownPd.dealloc();
    this.#ownPd = undefined;
  }

  /**
   * rdma_init_qp_attr: the attributes (and mask) that move a QP to `qpState`
   * for this connection, for code that manages its own QP.
   */
  initQpAttr(qpState: number): { attr: QpAttr; mask: number } {
    if (this.#native) return this.#native.initQpAttr(qpState);
    const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
    if (qpState === QpState.INIT) {
      if (this.qpType === QpType.UD) return { attr: { qpState, pkeyIndex: 0, portNum: 1, qkey: RDMA_UDP_QKEY }, mask: M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY };
      return { attr: { qpState, pkeyIndex: 0, portNum: 1, qpAccessFlags: access }, mask: M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS };
    }
    const n = this.#negotiated();
    if (!n) throw new CmStateError(`initQpAttr: no connection parameters yet (the id is ${cmStateName(this.cmState)})`);
    if (qpState === QpState.RTR) {
      return {
        attr: {
          qpState,
          pathMtu: n.mtu,
          destQpNum: this.remoteQpn,
          rqPsn: n.rqPsn,
          maxDestRdAtomic: n.maxDestRdAtomic,
          minRnrTimer: 12,
          ahAttr: { dgid: this.#remoteGid!, udpPort: this.#dest?.udpPort ?? ROCE_UDP_PORT, portNum: 1, hopLimit: 64 },
        },
        mask: M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
      };
    }
    if (qpState === QpState.RTS) {
      return {
        attr: { qpState, sqPsn: this.#localPsn, timeout: n.ackTimeout, retryCnt: n.retryCount, rnrRetry: n.rnrRetry, maxRdAtomic: n.maxRdAtomic },
        mask: M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC,
      };
    }
    throw new InvalidArgumentError(`initQpAttr: want QpState.INIT, RTR or RTS, got ${String(qpState)}`);
  }

  /** What the REQ/REP exchange settled, from this side's point of view. */
  #negotiated(): { mtu: number; rqPsn: number; maxDestRdAtomic: number; maxRdAtomic: number; ackTimeout: number; retryCount: number; rnrRetry: number } | undefined {
    const req = this.#req;
    const rep = this.#rep;
    if (!req || !rep) return undefined;
    const active = this.#listener === undefined;
    const mtu = Math.min(req.pathMtu || this.#dev!.activeMtu, this.#dev!.activeMtu);
    if (active) {
      return {
        mtu,
        rqPsn: rep.startingPsn,
        maxDestRdAtomic: req.responderResources,
        maxRdAtomic: Math.min(rep.responderResources, req.initiatorDepth),
        ackTimeout: req.primary.localAckTimeout,
        retryCount: req.retryCount,
        rnrRetry: rep.rnrRetryCount,
      };
    }
    return {
      mtu,
      rqPsn: req.startingPsn,
      maxDestRdAtomic: rep.responderResources,
      maxRdAtomic: rep.initiatorDepth,
      ackTimeout: req.primary.localAckTimeout,
      retryCount: req.retryCount,
      rnrRetry: req.rnrRetryCount,
    };
  }

  #qpToRts(): void {
    const qp = this.qp;
    if (!qp || qp.closed) return;
    if (qp.state === QpState.RESET) {
      const init = this.initQpAttr(QpState.INIT);
      qp.modifyQp(init.attr, init.mask);
    }
    const rtr = this.initQpAttr(QpState.RTR);
    qp.modifyQp(rtr.attr, rtr.mask);
    const rts = this.initQpAttr(QpState.RTS);
    qp.modifyQp(rts.attr, rts.mask);
  }

  #qpToErr(): void {
    const qp = this.qp;
    if (!qp || qp.closed || qp.state === QpState.ERR || qp.state === QpState.RESET) return;
    try {
      qp.modifyQp({ qpState: QpState.ERR }, M.STATE);
    } catch {
      // Already failed on its own: nothing to flush.
    }
  }

  // ---- retransmission ---------------------------------------------------

  #cancelTimer(): void {
    this.#dev?.timers.cancel(this.#timer);
    this.#timer = undefined;
  }

  /** Send `mad` now and again every `ms` until answered, `retries` times; then `giveUp`. */
  #sendWithRetry(mad: Uint8Array, ms: number, retries: number, giveUp: () => void): void {
    const dev = this.#dev!;
    this.#cancelTimer();
    dev.send(mad, this.#dest!);
    const r = { ms, left: retries };
    this.#retry = r;
    const tick = (): void => {
      this.#timer = undefined;
      if (r.left-- > 0) {
        dev.counters.retransmits++;
        dev.send(mad, this.#dest!);
        this.#timer = dev.timers.start(r.ms, tick);
      } else {
        dev.counters.timeouts++;
        giveUp();
      }
    };
    this.#retryTick = tick;
    this.#timer = dev.timers.start(ms, tick);
  }

  /**
   * An MRA: the peer needs `ms` more. As the kernel's MAD layer does, the
   * outstanding message keeps its remaining retries but waits this long
   * between them.
   */
  #stretchRetry(ms: number): void {
    const r = this.#retry;
    const tick = this.#retryTick;
    if (!r || !tick || this.#timer === undefined) return;
    this.#cancelTimer();
    r.ms = Math.max(r.ms, ms);
    this.#timer = this.#dev!.timers.start(r.ms, tick);
  }

  // ---- tables -----------------------------------------------------------

  #registerLocal(): void {
    const dev = this.#dev!;
    this.localCommId = dev.allocCommId();
    dev.byLocalId.set(this.localCommId, this);
    this.#tables = true;
  }

  #qpnKey(): string {
    return `${this.remoteQpn}:${gidKey(this.#remoteGid!, this.#dest?.udpPort)}`;
  }

  #registerRemote(): void {
    const dev = this.#dev!;
    dev.byRemote.set(`${this.remoteCommId}:${this.remoteCaGuid}`, this);
    dev.byRemoteQpn.set(this.#qpnKey(), this);
  }

  /** Drop the connection from every table; the comm ID may be reused. */
  #forgetConnection(): void {
    this.#cancelTimer();
    const dev = this.#dev;
    if (dev && this.#tables) {
      if (dev.byLocalId.get(this.localCommId) === this) dev.byLocalId.delete(this.localCommId);
      const rk = `${this.remoteCommId}:${this.remoteCaGuid}`;
      if (dev.byRemote.get(rk) === this) dev.byRemote.delete(rk);
      if (this.#remoteGid) {
        const qk = this.#qpnKey();
        if (dev.byRemoteQpn.get(qk) === this) dev.byRemoteQpn.delete(qk);
      }
    }
    this.#tables = false;
    if (dev && this.#sidrId && dev.sidrOut.get(this.#sidrId) === this) dev.sidrOut.delete(this.#sidrId);
    this.#sidrId = 0;
    this.cmState = CmState.IDLE;
    if (this.#lingering) this.#finish();
  }

  #finish(): void {
    this.#lingering = false;
    const dev = this.#dev;
    if (!dev) return;
    if (this.#boundPort) dev.unbindPort(this.portSpace, this.#boundPort);
    this.#boundPort = 0;
    dev.release(this);
  }

  #leavePending(): void {
    const l = this.#listener;
    if (l && (this.cmState === CmState.REQ_RCVD || this.cmState === CmState.MRA_REQ_SENT || this.cmState === CmState.SIDR_REQ_RCVD)) l.#pending--;
  }

  // ---- listen / connect ---------------------------------------------------

  /** rdma_listen: CONNECT_REQUEST events arrive for the bound port; beyond `backlog` unanswered requests, REQs are rejected (NO_RESOURCES). */
  listen(backlog = 1024): void {
    if (this.#native) return this.#native.listen(backlog);
    this.#assertLive('listen');
    if (this.state !== RdmaCmState.ADDR_BOUND) throw new CmStateError(`listen: bind an address first (the id is ${rdmaCmStateName(this.state)})`);
    if (!(Number.isInteger(backlog) && backlog >= 0)) throw new InvalidArgumentError(`listen: backlog must be a non-negative integer, got ${String(backlog)}`);
    const dev = this.#dev!;
    const sid = serviceId(this.portSpace, this.#boundPort);
    if (dev.listeners.has(sid)) throw new AddressInUseError(`port ${this.#boundPort} already has a listener`);
    dev.listeners.set(sid, this);
    this.#listening = sid;
    publishListener(this.portSpace, this.#boundPort, dev.address, dev.udpPort);
    this.#backlog = backlog > 0 ? backlog : 1024;
    this.state = RdmaCmState.LISTEN;
    this.cmState = CmState.LISTEN;
  }

  /** rdma_connect: REQ (or SIDR_REQ for UDP ids); ESTABLISHED, REJECTED, UNREACHABLE or CONNECT_ERROR follows. */
  connect(param: ConnectParam | null = {}): void {
    param ??= {};
    if (this.#native) return this.#native.connect(param);
    this.#assertLive('connect');
    if (this.state !== RdmaCmState.ROUTE_RESOLVED) throw new CmStateError(`connect: resolve the route first (the id is ${rdmaCmStateName(this.state)})`);
    const hdr = cmaHeaderBytes(this.portSpace);
    const dev = this.#dev!;
    const peer = this.#peer!;
    if (!this.#boundPort) {
      const p = dev.bindPort(this.portSpace, 0, true);
      if (p === undefined) throw new AddressInUseError('no free local port');
      this.#boundPort = p;
      this.#local!.port = p;
    }
    this.#remoteGid = gidFromIp(peer.address);
    this.#dest = { dgid: this.#remoteGid, udpPort: peer.udpPort ?? ROCE_UDP_PORT, remoteQpn: 1, remoteQkey: GSI_QKEY };
    const sid = serviceId(this.portSpace, peer.port);
    if (this.portSpace === PortSpace.UDP) {
      const user = checkPrivateData(param.privateData, SIDR_REQ_PRIVATE_DATA_SIZE - hdr, 'connect');
      const pd = this.#withHeader(user, hdr, SIDR_REQ_PRIVATE_DATA_SIZE);
      this.#sidrId = dev.allocCommId();
      dev.sidrOut.set(this.#sidrId, this);
      this.#tid = dev.newTid();
      this.cmState = CmState.SIDR_REQ_SENT;
      this.state = RdmaCmState.CONNECT;
      const mad = encodeSidrReq({ requestId: this.#sidrId, pkey: 0xffff, serviceId: sid, privateData: pd }, this.#tid);
      this.#sendWithRetry(mad, respMs(this.#opts.cmResponseTimeout), this.#opts.maxCmRetries, () => {
        this.#forgetConnection();
        this.state = RdmaCmState.ROUTE_RESOLVED;
        this.#emit(CmEventType.UNREACHABLE, { status: ETIMEDOUT, reason: 'TIMEOUT' });
      });
      return;
    }
    const user = checkPrivateData(param.privateData, REQ_PRIVATE_DATA_SIZE - hdr, 'connect');
    for (const [k, bits] of [['responderResources', 8], ['initiatorDepth', 8], ['retryCount', 3], ['rnrRetryCount', 3], ['flowControl', 1], ['srq', 1]] as const) {
      checkBits(param[k], bits, `connect: ${k}`);
    }
    const qpn = this.qp && !this.qp.closed ? this.qp.qpNum : param.qpNum;
    if (qpn === undefined) throw new CmStateError('connect: the id has no QP (call createQp) and param.qpNum is not given');
    checkBits(qpn, 24, 'connect: qpNum');
    const req = newReq();
    this.#registerLocal();
    this.#localPsn = randomInt(0, 0xffffff);
    req.localCommId = this.localCommId;
    req.serviceId = sid;
    req.localCaGuid = dev.guid;
    req.localQpn = qpn;
    req.responderResources = Math.min(param.responderResources ?? dev.maxRdAtomic, dev.maxRdAtomic);
    req.initiatorDepth = Math.min(param.initiatorDepth ?? dev.maxRdAtomic, dev.maxRdAtomic);
    req.remoteCmResponseTimeout = this.#opts.cmResponseTimeout;
    req.localCmResponseTimeout = this.#opts.cmResponseTimeout;
    req.transportServiceType = CmTransport.RC;
    req.endToEndFlowControl = param.flowControl ?? 1;
    req.startingPsn = this.#localPsn;
    req.retryCount = param.retryCount ?? 7;
    req.rnrRetryCount = param.rnrRetryCount ?? 7;
    req.pathMtu = dev.activeMtu;
    req.maxCmRetries = this.#opts.maxCmRetries;
    req.srq = param.srq ?? (this.qp?.srq ? 1 : 0);
    req.primary.localGid = dev.gid;
    req.primary.remoteGid = this.#remoteGid;
    req.primary.hopLimit = 64;
    req.primary.localAckTimeout = this.#opts.ackTimeout;
    req.privateData = this.#withHeader(user, hdr, REQ_PRIVATE_DATA_SIZE);
    this.#req = req;
    this.#tid = dev.newTid();
    this.cmState = CmState.REQ_SENT;
    this.state = RdmaCmState.CONNECT;
    this.#sendWithRetry(encodeReq(req, this.#tid), respMs(req.remoteCmResponseTimeout), req.maxCmRetries, () => {
      this.#forgetConnection();
      this.state = RdmaCmState.ROUTE_RESOLVED;
      this.#emit(CmEventType.UNREACHABLE, { status: ETIMEDOUT, reason: 'TIMEOUT' });
    });
  }

  #withHeader(user: Uint8Array, hdr: number, size: number): Uint8Array {
    const pd = new Uint8Array(size);
    if (hdr) {
      const v = this.#local!.address.includes(':') ? 6 : 4;
      writeCmaHeader(pd, { ipVersion: v, srcPort: this.#local!.port, srcAddress: this.#local!.address, dstAddress: this.#peer!.address });
    }
    pd.set(user, hdr);
    return pd;
  }

  // ---- passive side -------------------------------------------------------

  /** A REQ for a service: find the listener and make the new id, or reject. */
  static #handleReq(dev: CmDevice, req: ReqMsg, tid: bigint, src: MadAddress): void {
    const dest: MadAddress = { ...src, remoteQpn: 1, remoteQkey: GSI_QKEY };
    const listener = dev.listeners.get(req.serviceId);
    const rej = (reason: number, ari?: Uint8Array) => dev.sendRej(tid, dest, 0, req.localCommId, MsgRejected.REQ, reason, undefined, ari);
    if (!listener || listener.destroyed) return rej(RejReason.INVALID_SERVICE_ID);
    if (listener.qpType !== QpType.RC || req.transportServiceType !== CmTransport.RC) return rej(RejReason.INVALID_TRANSPORT_TYPE);
    const qk = `${req.localQpn}:${gidKey(src.dgid, src.udpPort)}`;
    const old = dev.byRemoteQpn.get(qk);
    if (old && old.cmState !== CmState.TIMEWAIT && old.cmState !== CmState.IDLE) {
      // The peer reuses a QPN we still think is connected: it lost that connection.
      dev.counters.staleRejects++;
      rej(RejReason.STALE_CONN);
      old.#staleTeardown();
      return;
    }
    const hdrBytes = cmaHeaderBytes(listener.portSpace);
    const hdr = hdrBytes ? readCmaHeader(req.privateData) : undefined;
    if (hdrBytes && !hdr) return rej(RejReason.CONSUMER_DEFINED);
    if (listener.#pending >= listener.#backlog) return rej(RejReason.NO_RESOURCES);
    const child = listener.#child(dev, src, hdr ? { address: hdr.srcAddress, port: hdr.srcPort } : undefined);
    child.#req = req;
    child.#tid = tid;
    child.remoteCommId = req.localCommId;
    child.remoteCaGuid = req.localCaGuid;
    child.remoteQpn = req.localQpn;
    child.#registerLocal();
    child.#registerRemote();
    child.cmState = CmState.REQ_RCVD;
    const conn: ConnParam = {
      privateData: req.privateData.slice(hdrBytes),
      responderResources: req.initiatorDepth,
      initiatorDepth: req.responderResources,
      flowControl: req.endToEndFlowControl,
      retryCount: req.retryCount,
      rnrRetryCount: req.rnrRetryCount,
      srq: req.srq,
      qpNum: req.localQpn,
    };
    child.#emit(CmEventType.CONNECT_REQUEST, { listenId: listener, conn });
  }

  static #handleSidrReq(dev: CmDevice, req: SidrReqMsg, tid: bigint, src: MadAddress, key: string): void {
    const dest: MadAddress = { ...src, remoteQpn: 1, remoteQkey: GSI_QKEY };
    const listener = dev.listeners.get(req.serviceId);
    if (!listener || listener.destroyed || listener.qpType !== QpType.UD) {
      dev.sendSidrRep(tid, dest, req.requestId, SidrStatus.UNSUPPORTED, req.serviceId);
      return;
    }
    const hdrBytes = cmaHeaderBytes(listener.portSpace);
    const hdr = hdrBytes ? readCmaHeader(req.privateData) : undefined;
    if ((hdrBytes && !hdr) || listener.#pending >= listener.#backlog) {
      dev.sendSidrRep(tid, dest, req.requestId, SidrStatus.REJECT, req.serviceId);
      return;
    }
    const child = listener.#child(dev, src, hdr ? { address: hdr.srcAddress, port: hdr.srcPort } : undefined);
    child.#tid = tid;
    child.#sidrReq = req;
    child.#sidrKey = key;
    dev.sidrIn.set(key, child);
    child.cmState = CmState.SIDR_REQ_RCVD;
    const ud: UdParam = {
      privateData: req.privateData.slice(hdrBytes),
      ahAttr: { dgid: Uint8Array.from(src.dgid), udpPort: src.udpPort ?? ROCE_UDP_PORT, portNum: 1 },
      qpNum: 0,
      qkey: 0,
    };
    child.#emit(CmEventType.CONNECT_REQUEST, { listenId: listener, ud });
  }

  #child(dev: CmDevice, src: MadAddress, from: { address: string; port: number } | undefined): CmId {
    const child = new CmId(this.channel, { portSpace: this.portSpace, context: this.context, ...this.#opts });
    child.#attach(dev);
    child.#listener = this;
    this.#pending++;
    child.#remoteGid = Uint8Array.from(src.dgid);
    child.#dest = { dgid: child.#remoteGid, udpPort: src.udpPort ?? ROCE_UDP_PORT, remoteQpn: 1, remoteQkey: GSI_QKEY };
    child.#local = { address: dev.address, port: this.#local!.port, udpPort: dev.udpPort };
    child.#peer = { address: from?.address ?? ipFromGid(src.dgid), port: from?.port ?? 0, udpPort: src.udpPort ?? ROCE_UDP_PORT };
    child.state = RdmaCmState.CONNECT;
    return child;
  }

  /** rdma_accept: REP (the QP goes to RTR and RTS first), or SIDR_REP for UDP ids. */
  accept(param: ConnectParam | null = {}): void {
    param ??= {};
    if (this.#native) return this.#native.accept(param);
    this.#assertLive('accept');
    const dev = this.#dev;
    if (this.cmState === CmState.SIDR_REQ_RCVD) {
      const pd = checkPrivateData(param.privateData, SIDR_REP_PRIVATE_DATA_SIZE, 'accept');
      const qpn = this.qp && !this.qp.closed ? this.qp.qpNum : param.qpNum;
      if (qpn === undefined) throw new CmStateError('accept: the id has no QP (call createQp) and param.qpNum is not given');
      checkBits(qpn, 24, 'accept: qpNum');
      this.#answerSidr(SidrStatus.SUCCESS, qpn, param.qkey ?? RDMA_UDP_QKEY, pd);
      return;
    }
    if (this.cmState !== CmState.REQ_RCVD && this.cmState !== CmState.MRA_REQ_SENT) {
      throw new CmStateError(`accept: no connection request to accept (the id is ${cmStateName(this.cmState)})`);
    }
    const pd = checkPrivateData(param.privateData, REP_PRIVATE_DATA_SIZE, 'accept');
    for (const [k, bits] of [['responderResources', 8], ['initiatorDepth', 8], ['rnrRetryCount', 3], ['flowControl', 1], ['srq', 1]] as const) {
      checkBits(param[k], bits, `accept: ${k}`);
    }
    const req = this.#req!;
    const qpn = this.qp && !this.qp.closed ? this.qp.qpNum : param.qpNum;
    if (qpn === undefined) throw new CmStateError('accept: the id has no QP (call createQp) and param.qpNum is not given');
    checkBits(qpn, 24, 'accept: qpNum');
    this.#localPsn = randomInt(0, 0xffffff);
    const rep: RepMsg = {
      localCommId: this.localCommId,
      remoteCommId: this.remoteCommId,
      localQkey: 0,
      localQpn: qpn,
      localEecn: 0,
      startingPsn: this.#localPsn,
      responderResources: Math.min(param.responderResources ?? req.initiatorDepth, dev!.maxRdAtomic),
      initiatorDepth: Math.min(param.initiatorDepth ?? req.responderResources, req.responderResources, dev!.maxRdAtomic),
      targetAckDelay: 0,
      failoverAccepted: 0,
      endToEndFlowControl: param.flowControl ?? 1,
      rnrRetryCount: param.rnrRetryCount ?? 7,
      srq: param.srq ?? (this.qp?.srq ? 1 : 0),
      localCaGuid: dev!.guid,
      privateData: pd,
    };
    this.#rep = rep;
    this.#qpToRts();
    this.#leavePending();
    this.#repMad = encodeRep(rep, this.#tid);
    this.cmState = CmState.REP_SENT;
    this.#sendWithRetry(this.#repMad, respMs(req.localCmResponseTimeout), req.maxCmRetries, () => this.#repTimedOut());
  }

  #repTimedOut(): void {
    this.#dev!.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REP, RejReason.TIMEOUT, undefined, guidBytes(this.#dev!.guid));
    this.#qpToErr();
    this.#forgetConnection();
    this.#emit(CmEventType.UNREACHABLE, { status: ETIMEDOUT, reason: 'TIMEOUT' });
  }

  #answerSidr(status: number, qpn: number, qkey: number, pd?: Uint8Array): void {
    const dev = this.#dev!;
    this.#leavePending();
    this.#sidrReply = dev.sendSidrRep(this.#tid, this.#dest!, this.#sidrReq!.requestId, status, this.#sidrReq!.serviceId, qpn, qkey, pd);
    this.cmState = CmState.IDLE;
    // Repeated SIDR_REQs within timewait get the same answer.
    const key = this.#sidrKey!;
    this.#sidrHold = true;
    dev.timers.start(this.#opts.timewaitMs, () => {
      if (dev.sidrIn.get(key) === this) dev.sidrIn.delete(key);
      this.#sidrHold = false;
      if (this.destroyed) this.#finish();
    });
  }

  /** rdma_reject: REJ (reason CONSUMER_DEFINED unless given) or SIDR_REP REJECT, with private data. */
  reject(privateData?: Uint8Array, reason: number = RejReason.CONSUMER_DEFINED): void {
    if (this.#native) return this.#native.reject(privateData, reason);
    this.#assertLive('reject');
    if (this.cmState === CmState.SIDR_REQ_RCVD) {
      this.#answerSidr(SidrStatus.REJECT, 0, 0, checkPrivateData(privateData, SIDR_REP_PRIVATE_DATA_SIZE, 'reject'));
      return;
    }
    if (this.cmState !== CmState.REQ_RCVD && this.cmState !== CmState.MRA_REQ_SENT) {
      throw new CmStateError(`reject: no connection request to reject (the id is ${cmStateName(this.cmState)})`);
    }
    checkBits(reason, 16, 'reject: reason');
    const pd = checkPrivateData(privateData, REJ_PRIVATE_DATA_SIZE, 'reject');
    this.#leavePending();
    this.#dev!.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REQ, reason, pd);
    this.#forgetConnection();
    this.state = RdmaCmState.IDLE;
  }

  // ---- incoming messages (called by CmDevice) -----------------------------

  /** @internal */
  onDuplicateReq(_tid: bigint): void {
    const dev = this.#dev!;
    dev.counters.duplicates++;
    switch (this.cmState) {
      case CmState.REQ_RCVD: {
        // The user has not answered yet: tell the active side to wait longer.
        const mra: MraMsg = { localCommId: this.localCommId, remoteCommId: this.remoteCommId, messageMraed: MsgRejected.REQ, serviceTimeout: this.#opts.mraServiceTimeout, privateData: new Uint8Array(0) };
        this.#mraMad = encodeMra(mra, this.#tid);
        this.cmState = CmState.MRA_REQ_SENT;
        dev.counters.mraSent++;
        dev.send(this.#mraMad, this.#dest!);
        return;
      }
      case CmState.MRA_REQ_SENT:
        dev.counters.mraSent++;
        dev.send(this.#mraMad!, this.#dest!);
        return;
      case CmState.REP_SENT:
      case CmState.MRA_REP_RCVD:
        dev.send(this.#repMad!, this.#dest!);
        return;
      case CmState.TIMEWAIT:
        dev.counters.staleRejects++;
        dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REQ, RejReason.STALE_CONN);
        return;
      default:
        return;
    }
  }

  /** @internal */
  onRep(rep: RepMsg, _tid: bigint): void {
    const dev = this.#dev!;
    if (this.cmState === CmState.ESTABLISHED && rep.localCommId === this.remoteCommId && this.#rtuMad) {
      // Our RTU was lost: the passive side repeats its REP.
      dev.counters.duplicates++;
      dev.send(this.#rtuMad, this.#dest!);
      return;
    }
    if (this.cmState !== CmState.REQ_SENT && this.cmState !== CmState.MRA_REQ_RCVD) {
      dev.counters.rxBadState++;
      return;
    }
    this.#cancelTimer();
    this.remoteCommId = rep.localCommId;
    this.remoteCaGuid = rep.localCaGuid;
    this.remoteQpn = rep.localQpn;
    const old = dev.byRemoteQpn.get(this.#qpnKey());
    if (old && old !== this && old.cmState !== CmState.TIMEWAIT && old.cmState !== CmState.IDLE) {
      dev.counters.staleRejects++;
      dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REP, RejReason.STALE_CONN);
      old.#staleTeardown();
      this.#forgetConnection();
      this.state = RdmaCmState.ROUTE_RESOLVED;
      this.#emit(CmEventType.REJECTED, { status: RejReason.STALE_CONN, reason: rejReasonName(RejReason.STALE_CONN) });
      return;
    }
    this.#registerRemote();
    this.#rep = rep;
    this.cmState = CmState.REP_RCVD;
    try {
      this.#qpToRts();
    } catch (err) {
      dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REP, RejReason.CONSUMER_DEFINED);
      this.#forgetConnection();
      this.#emit(CmEventType.CONNECT_ERROR, { status: -22, reason: err instanceof Error ? err.message : String(err) });
      return;
    }
    const rtu: RtuMsg = { localCommId: this.localCommId, remoteCommId: this.remoteCommId, privateData: new Uint8Array(0) };
    this.#rtuMad = encodeRtu(rtu, this.#tid);
    dev.send(this.#rtuMad, this.#dest!);
    this.cmState = CmState.ESTABLISHED;
    this.#emit(CmEventType.ESTABLISHED, {
      conn: {
        privateData: rep.privateData,
        responderResources: rep.responderResources,
        initiatorDepth: rep.initiatorDepth,
        flowControl: rep.endToEndFlowControl,
        retryCount: this.#req!.retryCount,
        rnrRetryCount: rep.rnrRetryCount,
        srq: rep.srq,
        qpNum: rep.localQpn,
      },
    });
  }

  /** @internal */
  onRtu(rtu: RtuMsg): void {
    if (this.cmState !== CmState.REP_SENT && this.cmState !== CmState.MRA_REP_RCVD) {
      if (this.cmState !== CmState.ESTABLISHED) this.#dev!.counters.rxBadState++;
      return;
    }
    this.#cancelTimer();
    this.cmState = CmState.ESTABLISHED;
    const req = this.#req!;
    const rep = this.#rep!;
    this.#emit(CmEventType.ESTABLISHED, {
      conn: {
        privateData: rtu.privateData,
        responderResources: rep.responderResources,
        initiatorDepth: rep.initiatorDepth,
        flowControl: req.endToEndFlowControl,
        retryCount: req.retryCount,
        rnrRetryCount: req.rnrRetryCount,
        srq: req.srq,
        qpNum: req.localQpn,
      },
    });
  }

  /** @internal */
  onRej(rej: RejMsg): void {
    const s = this.cmState;
    const activeWait = s === CmState.REQ_SENT || s === CmState.MRA_REQ_RCVD || s === CmState.REP_RCVD;
    const passiveWait = s === CmState.REP_SENT || s === CmState.MRA_REP_RCVD;
    if (!activeWait && !passiveWait) {
      this.#dev!.counters.rxBadState++;
      return;
    }
    if (passiveWait && rej.localCommId !== this.remoteCommId) {
      this.#dev!.counters.rxUnmatched++;
      return;
    }
    if (passiveWait) this.#qpToErr();
    this.#forgetConnection();
    if (activeWait) this.state = RdmaCmState.ROUTE_RESOLVED;
    this.#emit(CmEventType.REJECTED, { status: rej.reason, reason: rejReasonName(rej.reason), conn: rejConn(rej) });
  }

  /** @internal */
  onMra(mra: MraMsg): void {
    const wait = ibaTimeMs(mra.serviceTimeout) + respMs(0);
    if (mra.messageMraed === MsgRejected.REQ && this.cmState === CmState.REQ_SENT) {
      this.cmState = CmState.MRA_REQ_RCVD;
      this.#stretchRetry(wait);
      return;
    }
    if (mra.messageMraed === MsgRejected.REP && this.cmState === CmState.REP_SENT) {
      this.cmState = CmState.MRA_REP_RCVD;
      this.#stretchRetry(wait);
      return;
    }
    if (this.cmState !== CmState.MRA_REQ_RCVD && this.cmState !== CmState.MRA_REP_RCVD) this.#dev!.counters.rxBadState++;
  }

  /** @internal */
  onDreq(_dreq: DreqMsg, tid: bigint): void {
    this.#dreqReceived(tid);
  }

  #dreqReceived(tid: bigint): void {
    const dev = this.#dev!;
    switch (this.cmState) {
      case CmState.ESTABLISHED:
      case CmState.REP_SENT:
      case CmState.MRA_REP_RCVD:
        this.#cancelTimer();
        this.#dreqTid = tid;
        this.cmState = CmState.DREQ_RCVD;
        if (this.destroyed) {
          this.#sendDrepAndWait();
          return;
        }
        this.state = RdmaCmState.DISCONNECT;
        this.#reportDisconnect(0);
        return;
      case CmState.DREQ_SENT:
        // Both sides disconnected at once: answer and wait out timewait.
        this.#cancelTimer();
        this.#dreqTid = tid;
        this.#sendDrepAndWait();
        this.#reportDisconnect(0);
        return;
      case CmState.TIMEWAIT:
        dev.counters.duplicates++;
        if (this.#drepMad) dev.send(this.#drepMad, this.#dest!);
        else dev.send(encodeDrep({ localCommId: this.localCommId, remoteCommId: this.remoteCommId, privateData: new Uint8Array(0) }, tid), this.#dest!);
        return;
      case CmState.DREQ_RCVD:
        dev.counters.duplicates++;
        return;
      default:
        dev.counters.rxBadState++;
    }
  }

  /**
   * @internal The process behind this connection's peer (on this host) has
   * exited. Its kernel would have sent a DREQ for each of its connections
   * (ib_cm does so when a process's ids are destroyed at exit); a soft
   * HCA's process takes its CM with it, so this side acts as if that DREQ
   * had come: DISCONNECTED now, rather than when the QP's retries run out.
   */
  onPeerExit(gid: Uint8Array, udpPort: number): void {
    if (!this.#remoteGid || !this.#dest || gidKey(this.#remoteGid, this.#dest.udpPort) !== gidKey(gid, udpPort)) return;
    switch (this.cmState) {
      case CmState.ESTABLISHED:
      case CmState.REP_SENT:
      case CmState.MRA_REP_RCVD:
        this.#dreqReceived(this.#dev!.newTid());
        return;
      case CmState.DREQ_SENT:
        this.onDrep();
        return;
      default:
      // Connecting (its REQ or REP goes unanswered and times out) or already disconnecting.
    }
  }

  /** @internal */
  onDrep(): void {
    if (this.cmState !== CmState.DREQ_SENT) {
      if (this.cmState !== CmState.TIMEWAIT) this.#dev!.counters.rxBadState++;
      return;
    }
    this.#cancelTimer();
    this.#enterTimewait();
    this.#reportDisconnect(0);
  }

  /** @internal */
  onDuplicateSidrReq(): void {
    const dev = this.#dev!;
    dev.counters.duplicates++;
    if (this.#sidrReply) dev.send(this.#sidrReply, this.#dest!);
  }

  /** @internal */
  onSidrRep(rep: SidrRepMsg, src: MadAddress): void {
    if (this.cmState !== CmState.SIDR_REQ_SENT) {
      this.#dev!.counters.rxBadState++;
      return;
    }
    this.#forgetConnection();
    this.state = RdmaCmState.ROUTE_RESOLVED;
    const ud: UdParam = {
      privateData: rep.privateData,
      ahAttr: { dgid: Uint8Array.from(src.dgid), udpPort: src.udpPort ?? ROCE_UDP_PORT, portNum: 1 },
      qpNum: rep.qpn,
      qkey: rep.qkey,
    };
    if (rep.status === SidrStatus.SUCCESS) this.#emit(CmEventType.ESTABLISHED, { ud });
    else this.#emit(CmEventType.UNREACHABLE, { status: rep.status, reason: sidrStatusName(rep.status), ud });
  }

  // ---- multicast ----------------------------------------------------------

  /** Groups joined with joinMulticast, by address. */
  readonly #groups = new Set<string>();

  /**
   * rdma_join_multicast: joins the id's device to the multicast group `addr`
   * (an IPv4 224.0.0.0/4 or IPv6 ff00::/8 address; on RoCE the kernel's
   * IGMP/MLD join, no subnet manager) and attaches the id's QP, if it has
   * one, then reports MULTICAST_JOIN whose `ud` names the group for createAh
   * and UD sends (qpNum 0xFFFFFF, qkey RDMA_UDP_QKEY), or MULTICAST_ERROR.
   * The id must be bound (bindAddr or resolveAddr) and in the UDP port space.
   */
  joinMulticast(addr: CmAddressInput, context?: unknown): void {
    if (this.#native) throw new NotSupportedError('joinMulticast: not bound for native devices yet (rdma_join_multicast); use the soft HCA or ibv_attach_mcast on the id\'s QP');
    this.#assertLive('joinMulticast');
    if (this.portSpace !== PortSpace.UDP) throw new CmStateError('joinMulticast: only ids of the UDP port space join groups (EINVAL)');
    if (!this.verbs || !this.#dev) throw new CmStateError('joinMulticast: bind or resolve an address first (the id has no device yet)');
    const a = parseAddress(addr, 'joinMulticast');
    const dgid = gidFromIp(a.address);
    const v4 = ipVersion(a.address) === 4;
    const first = v4 ? Number(a.address.split('.')[0]) : 0;
    if (v4 ? !(first >= 224 && first <= 239) : !a.address.toLowerCase().startsWith('ff')) {
      throw new InvalidArgumentError(`joinMulticast: ${a.address} is not a multicast address`);
    }
    const ud: UdParam = { privateData: new Uint8Array(0), ahAttr: { dgid, udpPort: ROCE_UDP_PORT, portNum: 1 }, qpNum: MCAST_QPN, qkey: RDMA_UDP_QKEY };
    const qp = this.qp && !this.qp.closed ? this.qp : undefined;
    this.#groups.add(a.address);
    const joined = qp ? qp.attachMcast(dgid) : Promise.resolve();
    joined.then(
      () => this.#emit(CmEventType.MULTICAST_JOIN, { ud, context }),
      (err: unknown) => {
        this.#groups.delete(a.address);
        this.#emit(CmEventType.MULTICAST_ERROR, { ud, context, status: -22, reason: err instanceof Error ? err.message : String(err) });
      },
    );
  }

  /** rdma_leave_multicast: detaches the id's QP from a group joinMulticast joined. */
  leaveMulticast(addr: CmAddressInput): void {
    if (this.#native) throw new NotSupportedError('leaveMulticast: not bound for native devices yet');
    this.#assertLive('leaveMulticast');
    const a = parseAddress(addr, 'leaveMulticast');
    if (!this.#groups.delete(a.address)) throw new InvalidArgumentError(`leaveMulticast: the id has not joined ${a.address}`);
    const qp = this.qp;
    if (qp && !qp.closed) {
      try {
        qp.detachMcast(gidFromIp(a.address));
      } catch {
        // Not attached (the QP was created after the join): nothing to undo.
      }
    }
  }

  // ---- teardown -----------------------------------------------------------

  #reportDisconnect(status: number): void {
    if (this.#disconnectReported) return;
    this.#disconnectReported = true;
    this.#emit(CmEventType.DISCONNECTED, status ? { status, reason: 'TIMEOUT' } : {});
  }

  #sendDreq(privateData?: Uint8Array): void {
    const dev = this.#dev!;
    this.#qpToErr();
    this.#dreqTid = dev.newTid();
    const active = this.#listener === undefined;
    const exp = active ? this.#opts.cmResponseTimeout : this.#req!.localCmResponseTimeout;
    const retries = active ? this.#opts.maxCmRetries : this.#req!.maxCmRetries;
    const mad = dev.encodeDreqFor(this.localCommId, this.remoteCommId, this.remoteQpn, this.#dreqTid, privateData);
    this.cmState = CmState.DREQ_SENT;
    this.#sendWithRetry(mad, respMs(exp), retries, () => {
      this.#enterTimewait();
      this.#reportDisconnect(ETIMEDOUT);
    });
  }

  #sendDrepAndWait(): void {
    this.#qpToErr();
    this.#drepMad = encodeDrep({ localCommId: this.localCommId, remoteCommId: this.remoteCommId, privateData: new Uint8Array(0) }, this.#dreqTid);
    this.#dev!.send(this.#drepMad, this.#dest!);
    this.#enterTimewait();
  }

  #enterTimewait(): void {
    this.#cancelTimer();
    this.cmState = CmState.TIMEWAIT;
    const dev = this.#dev!;
    this.#timer = dev.timers.start(this.#opts.timewaitMs, () => {
      this.#timer = undefined;
      this.#forgetConnection();
      this.#emit(CmEventType.TIMEWAIT_EXIT);
    });
  }

  /** A new REQ or REP from the same peer QPN: the peer forgot this connection. */
  #staleTeardown(): void {
    if (this.cmState === CmState.ESTABLISHED) {
      this.#sendDreq();
      this.#reportDisconnect(0);
    } else if (this.cmState === CmState.DREQ_SENT) {
      // Our DREQ will get no DREP from a peer that no longer knows the connection; waiting out its
      // retries would make every new connection to that peer's QPN stale meanwhile.
      this.#enterTimewait();
      this.#reportDisconnect(0);
    }
  }

  /**
   * rdma_disconnect: moves the QP to ERR and sends a DREQ (or, after the
   * peer's DREQ, the DREP); DISCONNECTED follows, then TIMEWAIT_EXIT.
   */
  disconnect(privateData?: Uint8Array): void {
    if (this.#native) return this.#native.disconnect(privateData);
    this.#assertLive('disconnect');
    const pd = checkPrivateData(privateData, DREQ_PRIVATE_DATA_SIZE, 'disconnect');
    switch (this.cmState) {
      case CmState.REP_SENT:
      case CmState.MRA_REP_RCVD:
      case CmState.ESTABLISHED:
        this.state = RdmaCmState.DISCONNECT;
        this.#sendDreq(pd);
        return;
      case CmState.DREQ_RCVD:
        this.#sendDrepAndWait();
        return;
      case CmState.DREQ_SENT:
      case CmState.TIMEWAIT:
        return;
      default:
        throw new CmStateError(`disconnect: not connected (the id is ${cmStateName(this.cmState)})`);
    }
  }

  /** rdma_migrate_id: future (and queued) events of this id go to `channel`. */
  migrateId(channel: EventChannel): void {
    this.#assertLive('migrateId');
    if (!(channel instanceof EventChannel) || channel.closed) throw new InvalidArgumentError('migrateId: channel must be an open EventChannel');
    if (channel === this.channel) return;
    this.channel.moveEvents(this, channel);
    this.channel.ids.delete(this);
    this.channel = channel;
    channel.ids.add(this);
  }

  /**
   * rdma_destroy_id. A connection in progress is rejected; an established
   * one is disconnected, and its comm ID lingers through timewait (without
   * events) before the device is released. The QP is the caller's
   * (destroyQp), as in librdmacm.
   */
  destroy(): void {
    if (this.#native) return this.#native.destroy();
    if (this.destroyed) return;
    // As rdma_destroy_id, leave every group the id joined.
    for (const g of [...this.#groups]) this.leaveMulticast({ address: g, port: 0 });
    const dev = this.#dev;
    this.#leavePending();
    this.destroyed = true;
    this.state = RdmaCmState.DESTROYING;
    this.channel.ids.delete(this);
    if (this.#listening !== undefined && dev) {
      if (dev.listeners.get(this.#listening) === this) dev.listeners.delete(this.#listening);
      this.#listening = undefined;
      withdrawListener(this.portSpace, this.#boundPort, dev.address, dev.udpPort);
    }
    if (!dev) return;
    const guid = guidBytes(dev.guid);
    switch (this.cmState) {
      case CmState.REQ_SENT:
      case CmState.MRA_REQ_RCVD:
        dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REQ, RejReason.TIMEOUT, undefined, guid);
        this.#forgetConnection();
        break;
      case CmState.REQ_RCVD:
      case CmState.MRA_REQ_SENT:
        dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REQ, RejReason.CONSUMER_DEFINED);
        this.#forgetConnection();
        break;
      case CmState.REP_SENT:
      case CmState.MRA_REP_RCVD:
      case CmState.REP_RCVD:
      case CmState.MRA_REP_SENT:
        dev.sendRej(this.#tid, this.#dest!, this.localCommId, this.remoteCommId, MsgRejected.REP, RejReason.CONSUMER_DEFINED);
        this.#qpToErr();
        this.#forgetConnection();
        break;
      case CmState.ESTABLISHED:
        this.#lingering = true;
        this.#sendDreq();
        return;
      case CmState.DREQ_RCVD:
        this.#lingering = true;
        this.#sendDrepAndWait();
        return;
      case CmState.DREQ_SENT:
      case CmState.TIMEWAIT:
        this.#lingering = true;
        return;
      case CmState.SIDR_REQ_SENT:
        this.#forgetConnection();
        break;
      case CmState.SIDR_REQ_RCVD:
        this.#answerSidr(SidrStatus.REJECT, 0, 0);
        return;
      default:
        if (this.#sidrHold) return;
        this.#forgetConnection();
    }
    this.#finish();
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  #useNative(): NativeCmId {
    return (this.#native ??= new NativeCmId(this, {
      deviceName: this.#deviceName,
      options: this.#opts,
      newId: (opts) => new CmId(this.channel, opts),
    }));
  }

  /** @internal native-id.ts: an id librdmacm made for a connection request gets its backend. */
  [kNativeChild](): NativeCmId {
    return this.#useNative();
  }
}

function rejConn(rej: RejMsg): ConnParam {
  return { privateData: rej.privateData, responderResources: 0, initiatorDepth: 0, flowControl: 0, retryCount: 0, rnrRetryCount: 0, srq: 0, qpNum: 0 };
}

function guidBytes(guid: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, guid);
  return b;
}

/** rdma_create_id. */
export function createId(channel: EventChannel, opts: CreateIdOptions = {}): CmId {
  return new CmId(channel, opts);
}

export { CMA_HEADER_SIZE };

/**
 * The device a wildcard bind attaches to: one of the wildcard's IP version
 * ('::' an IPv6 device), else, for '::', an IPv4 one, as an IPv6 socket
 * bound to in6addr_any also serves IPv4.
 */
async function wildcardDevice(a: CmAddress, deviceName: string | undefined): Promise<CmDevice> {
  if (ipVersion(a.address) === 4 || deviceName !== undefined) return deviceFor({ udpPort: a.udpPort }, undefined, deviceName);
  try {
    return await deviceFor({ udpPort: a.udpPort }, { address: '::', port: 0 }, deviceName);
  } catch (err) {
    if (!(err instanceof AddressError)) throw err;
    return deviceFor({ udpPort: a.udpPort }, undefined, deviceName);
  }
}
