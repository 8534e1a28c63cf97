// The provider interface: what an rdma-core provider library plus its kernel
// driver offer to libibverbs. @ibal/verbs validates arguments and owns the
// user-facing resource classes; a provider executes. The soft HCA implements
// it in TypeScript; the native provider (libibverbs through node-addon-api)
// implements the same shapes, so one verbs test suite runs on both.
//
// Addresses (`addr`, `remoteAddr`) are virtual addresses as plain numbers: a
// native provider passes real pointers (< 2^53 on every 64-bit ABI), the soft
// HCA hands out its own I/O virtual addresses per MR. Work requests and
// completions are plain objects so postSend/poll can reuse them without
// allocating.

export type Gid = Uint8Array; // 16 bytes, network order

export interface Sge {
  addr: number;
  length: number;
  lkey: number;
}

export interface AhAttr {
  /** Destination GID; for RoCEv2 an IPv4-mapped or IPv6 address. */
  dgid: Gid;
  sgidIndex?: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  sl?: number;
  portNum?: number;
  /**
   * ibal extension: the UDP port the destination device listens on. RoCEv2
   * fixes it at 4791, which is the default; the soft HCA lets several
   * devices share one IP address by using other ports.
   */
  udpPort?: number;
}

export interface SendWr {
  wrId: number;
  opcode: number;
  sgList: Sge[];
  sendFlags?: number;
  /** 32-bit immediate data, host order. */
  immData?: number;
  /** LOCAL_INV and SEND_WITH_INV: the rkey of the type 2 memory window to invalidate (ibv_send_wr's invalidate_rkey). */
  invalidateRkey?: number;
  /** BIND_MW: the window, its new rkey (incRkey of its current one) and what to bind it to. */
  bindMw?: { mw: HcaMw; rkey: number; bindInfo: MwBindInfo };
  rdma?: { remoteAddr: number; rkey: number };
  atomic?: { remoteAddr: number; rkey: number; compareAdd: bigint; swap?: bigint };
  ud?: { ah: HcaAh; remoteQpn: number; remoteQkey: number };
}

export interface RecvWr {
  wrId: number;
  sgList: Sge[];
}

/**
 * ibv_wc. `immData` is meaningful when `wcFlags & WcFlags.WITH_IMM`,
 * `invalidatedRkey` when `wcFlags & WcFlags.WITH_INV` (a union in C).
 */
export interface WorkCompletion {
  wrId: number;
  status: number;
  opcode: number;
  vendorErr: number;
  byteLen: number;
  immData: number;
  invalidatedRkey: number;
  /**
   * When the HCA generated the completion, in ns of its clock, on CQs created
   * with timestamps (createCq's `timestamps`); 0 otherwise. The soft HCA's
   * clock is performance.now() in ns (ticking from performance.timeOrigin).
   */
  completionTs: number;
  qpNum: number;
  srcQp: number;
  wcFlags: number;
  pkeyIndex: number;
  slid: number;
  sl: number;
  dlidPathBits: number;
}

export function newWorkCompletion(): WorkCompletion {
  return {
    wrId: 0,
    status: 0,
    opcode: 0,
    vendorErr: 0,
    byteLen: 0,
    immData: 0,
    invalidatedRkey: 0,
    completionTs: 0,
    qpNum: 0,
    srcQp: 0,
    wcFlags: 0,
    pkeyIndex: 0,
    slid: 0,
    sl: 0,
    dlidPathBits: 0,
  };
}

export interface QpCap {
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineData: number;
}

export interface QpInitAttr {
  qpType: number;
  sendCq: HcaCq;
  recvCq: HcaCq;
  srq?: HcaSrq;
  cap: QpCap;
  /** When true every send WR generates a completion, whatever its SIGNALED flag. */
  sqSigAll?: boolean;
}

/** ibv_qp_attr; which fields count is given by the QpAttrMask passed beside it. */
export interface QpAttr {
  qpState?: number;
  curQpState?: number;
  pathMtu?: number;
  qkey?: number;
  rqPsn?: number;
  sqPsn?: number;
  destQpNum?: number;
  qpAccessFlags?: number;
  cap?: QpCap;
  ahAttr?: AhAttr;
  pkeyIndex?: number;
  enSqdAsyncNotify?: number;
  sqDraining?: number;
  maxRdAtomic?: number;
  maxDestRdAtomic?: number;
  minRnrTimer?: number;
  portNum?: number;
  /** Local ACK timeout exponent: 4.096 µs * 2^timeout; 0 means infinite. */
  timeout?: number;
  retryCnt?: number;
  /** 7 means retry forever. */
  rnrRetry?: number;
}

export interface SrqAttr {
  maxWr: number;
  maxSge: number;
  /** When the number of posted WRs drops below this, SRQ_LIMIT_REACHED fires once and the limit disarms. */
  srqLimit: number;
}

export interface DeviceAttr {
  fwVer: string;
  nodeGuid: bigint;
  sysImageGuid: bigint;
  maxMrSize: number;
  pageSizeCap: number;
  vendorId: number;
  vendorPartId: number;
  hwVer: number;
  maxQp: number;
  maxQpWr: number;
  deviceCapFlags: number;
  maxSge: number;
  maxCq: number;
  maxCqe: number;
  maxMr: number;
  maxMw: number;
  maxPd: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxResRdAtom: number;
  maxSrq: number;
  maxSrqWr: number;
  maxSrqSge: number;
  maxAh: number;
  maxPkeys: number;
  atomicCap: number;
  physPortCnt: number;
  maxInlineData: number;
}

/** ibv_device_attr_ex: the extended attributes ibal knows. */
export interface DeviceAttrEx {
  origAttr: DeviceAttr;
  /** The bits of readCompletionTs that count (0: the device has no completion timestamps). */
  completionTimestampMask: bigint;
  /** The clock readCompletionTs counts in, in kHz (the soft HCA's: 1 GHz, so ns). */
  hcaCoreClock: number;
  /** IBV_DEVICE_* capability bits beyond 32 (device_cap_flags_ex). */
  deviceCapFlagsEx: bigint;
  physPortCntEx: number;
}

export interface PortAttr {
  state: number;
  maxMtu: number;
  activeMtu: number;
  gidTblLen: number;
  portCapFlags: number;
  maxMsgSz: number;
  pkeyTblLen: number;
  lid: number;
  smLid: number;
  lmc: number;
  maxVlNum: number;
  activeWidth: number;
  activeSpeed: number;
  physState: number;
  linkLayer: number;
  /** ibal extension: the UDP port the device's wire listens on. */
  udpPort: number;
  /** ibal extension: the wire in use, e.g. "udp4", "udp6". */
  wire: string;
}

export interface AsyncEvent {
  eventType: number;
  qp?: HcaQp;
  cq?: HcaCq;
  srq?: HcaSrq;
  portNum?: number;
}

export interface HcaProvider {
  readonly name: string;
  devices(): HcaDevice[];
  /** Why devices() is empty (no hardware, driver not built...), for error messages; optional. */
  noDeviceReason?(): string | undefined;
}

export interface HcaDevice {
  readonly name: string;
  readonly guid: bigint;
  readonly nodeType: number;
  readonly provider: string;
  /** Async because opening may bind the device's wire (a UDP socket for the soft HCA). */
  open(): Promise<HcaContext>;
}

export interface HcaContext {
  readonly device: HcaDevice;
  queryDevice(): DeviceAttr;
  /** Optional: ibv_query_device_ex. */
  queryDeviceEx?(): DeviceAttrEx;
  queryPort(portNum: number): PortAttr;
  queryGid(portNum: number, index: number): Gid;
  allocPd(): HcaPd;
  /**
   * `onNotify` is called (asynchronously, once per arm) after reqNotify when
   * a completion is added. With `timestamps` (ibv_create_cq_ex's
   * IBV_WC_EX_WITH_COMPLETION_TIMESTAMP) every completion carries
   * `completionTs`; a provider that cannot throws NotSupportedError.
   */
  createCq(cqe: number, onNotify: () => void, options?: { timestamps?: boolean }): HcaCq;
  /** Async events are delivered to this callback; there is one per context. */
  setAsyncEventHandler(handler: (event: AsyncEvent) => void): void;
  /**
   * Optional GSI access, as libibumad's umad_register gives it: send and
   * receive management datagrams of one class through QP1. Providers whose
   * kernel owns QP1 (the native one) leave it out.
   */
  registerMadAgent?(opts: MadAgentOptions, onMad: MadHandler): HcaMadAgent;
  /**
   * Optional manual progress, for providers with no engine of their own
   * (the soft HCA): moves whatever has arrived now and returns how many
   * packets it handled. Hardware progresses by itself and leaves it out.
   */
  progress?(): number;
  /**
   * Optional, ibal extension (Node's handle.ref()/unref()): whether this
   * context keeps the event loop alive. A provider whose device runs on the
   * loop (the soft HCA) keeps it alive while any open context is ref'd.
   */
  setRef?(on: boolean): void;
  close(): void;
}

/** Where a MAD came from or goes to (ib_mad_addr / ib_user_mad_hdr's address part). */
export interface MadAddress {
  /** The remote port's GID; for RoCEv2 an IPv4-mapped or IPv6 address. */
  dgid: Gid;
  /** ibal extension, as in AhAttr: the remote device's UDP port (default 4791). */
  udpPort?: number;
  /** 1 for the GSI. */
  remoteQpn: number;
  /** 0x80010000, the GSI's well-known Q_Key. */
  remoteQkey: number;
  /** The P_Key the MAD carried (received MADs); sends use the default 0xFFFF. */
  pkey?: number;
}

export interface MadAgentOptions {
  portNum: number;
  /** Management class, e.g. 0x07 for the communication manager. */
  mgmtClass: number;
  classVersion: number;
}

/** Called with a private copy of each MAD (always 256 bytes) for the agent's class. */
export type MadHandler = (mad: Uint8Array, src: MadAddress) => void;

export interface MadAgentCounters {
  txMads: number;
  rxMads: number;
}

export interface HcaMadAgent {
  readonly counters: Readonly<MadAgentCounters>;
  /** Sends one 256-byte MAD as a UD SEND to the destination's QP (no retries: the class agent retransmits). */
  send(mad: Uint8Array, dest: MadAddress): void;
  unregister(): void;
}

export interface HcaPd {
  regMr(buf: Uint8Array, access: number): HcaMr;
  /**
   * Optional: zeroed memory of `length` bytes that this provider moves
   * fastest, for regMr(pd, length). The native binding owns memory it can
   * pin without a copy; the soft HCA puts large regions in shared memory
   * that a same-host peer maps.
   */
  allocBuffer?(length: number): Uint8Array;
  /**
   * Optional: ibv_alloc_mw. A provider without memory windows leaves it out
   * (libibverbs then fails with EOPNOTSUPP).
   */
  allocMw?(type: number): HcaMw;
  createQp(init: QpInitAttr): HcaQp;
  createSrq(attr: SrqAttr): HcaSrq;
  createAh(attr: AhAttr): HcaAh;
  dealloc(): void;
}

export interface HcaMr {
  readonly lkey: number;
  readonly rkey: number;
  readonly addr: number;
  readonly length: number;
  readonly buf: Uint8Array;
  dereg(): void;
}

/** ibv_mw_bind_info: the part of an MR a window opens, and to what. */
export interface MwBindInfo {
  /** Unused when `length` is 0: binding a type 1 window to nothing unbinds it. */
  mr: HcaMr | undefined;
  addr: number;
  length: number;
  /** Access bits REMOTE_READ, REMOTE_WRITE, REMOTE_ATOMIC, and ZERO_BASED for type 2. */
  mwAccessFlags: number;
}

/** ibv_mw: a memory window. Its rkey changes with every bind. */
export interface HcaMw {
  readonly type: number;
  readonly rkey: number;
  /**
   * ibv_bind_mw (type 1): binds through `qp`'s send queue, completing with
   * WcOpcode.BIND_MW when signaled. Returns the window's new rkey: `rkey`
   * (incRkey of the old one) where the provider lets the caller choose, as
   * the soft HCA does; libibverbs' own choice on the native provider.
   */
  bind(qp: HcaQp, wrId: number, sendFlags: number, rkey: number, info: MwBindInfo): number;
  dealloc(): void;
}

export interface HcaCq {
  readonly cqe: number;
  /** Fill up to `n` entries of `out` (reusing its objects), return how many. */
  poll(n: number, out: WorkCompletion[]): number;
  reqNotify(solicitedOnly: boolean): void;
  /**
   * Optional: ibv_resize_cq. Afterwards `cqe` is at least `cqe`; the
   * completions queued stay, in order. Fewer entries than are queued:
   * CapacityError (EINVAL).
   */
  resize?(cqe: number): void;
  destroy(): void;
}

export interface HcaQp {
  readonly qpNum: number;
  readonly qpType: number;
  readonly state: number;
  /** Validated by the caller against the IBTA state machine; the provider applies it. */
  modify(attr: QpAttr, mask: number): void;
  query(): QpAttr;
  /** Throws PostError naming the index of the first WR it refused. */
  postSend(wrs: readonly SendWr[]): void;
  postRecv(wrs: readonly RecvWr[]): void;
  /**
   * Optional: ibv_attach_mcast (UD). Resolves once the QP receives what the
   * group does (a soft device joins the IP group first).
   */
  attachMcast?(gid: Gid, lid: number): Promise<void>;
  /** Optional: ibv_detach_mcast. */
  detachMcast?(gid: Gid, lid: number): void;
  destroy(): void;
}

export interface HcaSrq {
  modify(attr: Partial<SrqAttr>, mask: number): void;
  query(): SrqAttr;
  postRecv(wrs: readonly RecvWr[]): void;
  destroy(): void;
}

export interface HcaAh {
  readonly attr: Readonly<AhAttr>;
  destroy(): void;
}
