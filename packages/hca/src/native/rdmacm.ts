// librdmacm for packages/cm on native devices: an event channel (its fd
// watched by uv_poll, no thread) and rdma_cm_ids. Names follow librdmacm
// (rdma_resolve_addr -> resolveAddr). QPs are created with the verbs
// provider on the id's device; initQpAttr (rdma_init_qp_attr) gives the
// modifyQp attributes for each state, and connect/accept carry the qp_num.
import { ResourceClosedError } from '../errors.js';
import type { QpAttr } from '../provider.js';
import { NativeUnavailableError, call } from './errno.js';
import { tryVerbs, verbsUnavailableReason } from './load.js';

/** enum rdma_cm_event_type. */
export const RdmaCmEventType = {
  ADDR_RESOLVED: 0,
  ADDR_ERROR: 1,
  ROUTE_RESOLVED: 2,
  ROUTE_ERROR: 3,
  CONNECT_REQUEST: 4,
  CONNECT_RESPONSE: 5,
  CONNECT_ERROR: 6,
  UNREACHABLE: 7,
  REJECTED: 8,
  ESTABLISHED: 9,
  DISCONNECTED: 10,
  DEVICE_REMOVAL: 11,
  MULTICAST_JOIN: 12,
  MULTICAST_ERROR: 13,
  ADDR_CHANGE: 14,
  TIMEWAIT_EXIT: 15,
} as const;

/** ibv_ah_attr as librdmacm reports it (rdma_ud_param.ah_attr, rdma_init_qp_attr's AV). */
export interface RdmaAhAttr {
  dgid: Uint8Array;
  sgidIndex: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;
  sl: number;
  portNum: number;
  dlid: number;
  isGlobal: number;
}

/** An rdma_cm_event, already acknowledged (its private data copied out). */
export interface RdmaCmEvent {
  type: number;
  /** rdma_event_str(type), e.g. "RDMA_CM_EVENT_ESTABLISHED". */
  name: string;
  status: number;
  /** The id the event is for; for CONNECT_REQUEST, a new id for the request. */
  id: number;
  /** CONNECT_REQUEST: the listening id. */
  listenId?: number;
  privateData?: Uint8Array;
  /** rdma_conn_param (RC ids) on CONNECT_REQUEST, CONNECT_RESPONSE, ESTABLISHED, REJECTED, UNREACHABLE, DISCONNECTED. */
  responderResources?: number;
  initiatorDepth?: number;
  flowControl?: number;
  retryCount?: number;
  rnrRetryCount?: number;
  srq?: number;
  qpNum?: number;
  /** rdma_ud_param (UD ids) on the same events: the remote QP SIDR learned. */
  ud?: { qpNum: number; qkey: number; ahAttr: RdmaAhAttr };
}

/** rdma_conn_param. */
export interface RdmaConnParam {
  privateData?: Uint8Array;
  responderResources?: number;
  initiatorDepth?: number;
  flowControl?: number;
  retryCount?: number;
  rnrRetryCount?: number;
  /** The QP (created through the verbs provider) this connection uses. */
  qpNum: number;
  srq?: number;
}

export interface RdmaIdInfo {
  device: string | null;
  portNum: number;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
}

/** rdma_set_option(RDMA_OPTION_ID, ...) options the binding passes through. */
export type RdmaIdOption = 'ackTimeout' | 'tos' | 'reuseAddr' | 'afOnly';

interface NativeEventChannel {
  createId(qpType: number, portSpace?: number): number;
  destroyId(id: number): void;
  bindAddr(id: number, host: string, port: number): void;
  resolveAddr(id: number, host: string, port: number, timeoutMs: number, src?: string): void;
  resolveRoute(id: number, timeoutMs: number): void;
  listen(id: number, backlog: number): void;
  connect(id: number, param: RdmaConnParam): void;
  accept(id: number, param: RdmaConnParam): void;
  reject(id: number, privateData?: Uint8Array, reason?: number): void;
  disconnect(id: number): void;
  establish(id: number): void;
  setOption(id: number, name: RdmaIdOption, value: number): void;
  initQpAttr(id: number, qpState: number): { attr: QpAttr; mask: number };
  info(id: number): RdmaIdInfo;
  close(): void;
}

interface RdmaCmAddon {
  EventChannel: new (onEvent: (e: RdmaCmEvent) => void) => NativeEventChannel;
}

function addon(): RdmaCmAddon {
  const a = tryVerbs();
  if (!a) throw new NativeUnavailableError(`librdmacm is unavailable: ${verbsUnavailableReason()}`);
  if (!a.rdmacm) throw new NativeUnavailableError('librdmacm is unavailable: the ibal_verbs addon was built without it');
  return a.rdmacm as RdmaCmAddon;
}

/**
 * rdma_create_event_channel. Events arrive through `onEvent` on the event
 * loop; an id in use (resolving, connecting, connected, listening, or a
 * connection request) keeps the process alive, as an open socket does, until
 * it fails (ADDR_ERROR, ROUTE_ERROR, REJECTED, UNREACHABLE, CONNECT_ERROR,
 * DEVICE_REMOVAL), leaves timewait (TIMEWAIT_EXIT) or is destroyed.
 */
export class RdmaEventChannel {
  private readonly h: NativeEventChannel;
  closed = false;

  constructor(onEvent: (event: RdmaCmEvent) => void) {
    const cm = addon();
    this.h = call('rdma_create_event_channel', () => new cm.EventChannel(onEvent));
  }

  private op<T>(what: string, fn: (h: NativeEventChannel) => T): T {
    if (this.closed) throw new ResourceClosedError('rdma event channel');
    return call(what, () => fn(this.h));
  }

  /**
   * rdma_create_id: RDMA_PS_TCP for RC/UC, RDMA_PS_UDP for UD (QpType
   * values), unless `portSpace` (an enum rdma_port_space value) says which.
   */
  createId(qpType: number, portSpace?: number): number {
    return this.op('rdma_create_id', (h) => h.createId(qpType, portSpace));
  }
  destroyId(id: number): void {
    this.op('rdma_destroy_id', (h) => h.destroyId(id));
  }
  bindAddr(id: number, host: string, port: number): void {
    this.op('rdma_bind_addr', (h) => h.bindAddr(id, host, port));
  }
  resolveAddr(id: number, host: string, port: number, timeoutMs: number, srcHost?: string): void {
    this.op('rdma_resolve_addr', (h) => h.resolveAddr(id, host, port, timeoutMs, srcHost));
  }
  resolveRoute(id: number, timeoutMs: number): void {
    this.op('rdma_resolve_route', (h) => h.resolveRoute(id, timeoutMs));
  }
  listen(id: number, backlog: number): void {
    this.op('rdma_listen', (h) => h.listen(id, backlog));
  }
  connect(id: number, param: RdmaConnParam): void {
    this.op('rdma_connect', (h) => h.connect(id, param));
  }
  accept(id: number, param: RdmaConnParam): void {
    this.op('rdma_accept', (h) => h.accept(id, param));
  }
  /**
   * rdma_reject, or rdma_reject_ece for reason 35: the kernel lets user
   * space reject only with CONSUMER_DEFINED (28, the default) or
   * VENDOR_OPTION_NOT_SUPPORTED (35).
   */
  reject(id: number, privateData?: Uint8Array, reason?: number): void {
    this.op('rdma_reject', (h) => h.reject(id, privateData, reason));
  }
  /** rdma_establish: the active side's RTU, once its own QP is in RTS after CONNECT_RESPONSE. */
  establish(id: number): void {
    this.op('rdma_establish', (h) => h.establish(id));
  }
  /** rdma_set_option at the RDMA_OPTION_ID level. */
  setOption(id: number, name: RdmaIdOption, value: number): void {
    this.op('rdma_set_option', (h) => h.setOption(id, name, value));
  }
  disconnect(id: number): void {
    this.op('rdma_disconnect', (h) => h.disconnect(id));
  }
  /** rdma_init_qp_attr: the attributes and mask for modifyQp to `qpState`. */
  initQpAttr(id: number, qpState: number): { attr: QpAttr; mask: number } {
    return this.op('rdma_init_qp_attr', (h) => h.initQpAttr(id, qpState));
  }
  /** The id's device (once bound or resolved), port and addresses. */
  info(id: number): RdmaIdInfo {
    return this.op('rdma_cm_id', (h) => h.info(id));
  }

  /** rdma_destroy_event_channel, after destroying every id still open on it. */
  close(): void {
    if (this.closed) throw new ResourceClosedError('rdma event channel');
    this.closed = true;
    this.h.close();
  }

  [Symbol.dispose](): void {
    if (!this.closed) this.close();
  }
}

/** Whether librdmacm works here (an event channel can be created), and why not. */
export function rdmacmProbe(): { on: boolean; reason?: string } {
  let cm: RdmaCmAddon;
  try {
    cm = addon();
  } catch (err) {
    return { on: false, reason: (err as Error).message };
  }
  try {
    new cm.EventChannel(() => {}).close();
    return { on: true };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENODEV' || code === 'ENOENT') {
      return { on: false, reason: `librdmacm has no RDMA CM device here (/dev/infiniband/rdma_cm: ${code}; no kernel RDMA support)` };
    }
    return { on: false, reason: `librdmacm: ${(err as Error).message}` };
  }
}
