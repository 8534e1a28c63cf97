// Numeric values are libibverbs' own (verbs.h), so a C or pyverbs program
// ports line by line and a native provider passes them through unchanged.

export const QpType = { RC: 2, UC: 3, UD: 4 } as const;
export type QpType = (typeof QpType)[keyof typeof QpType];

export const QpState = { RESET: 0, INIT: 1, RTR: 2, RTS: 3, SQD: 4, SQE: 5, ERR: 6 } as const;
export type QpState = (typeof QpState)[keyof typeof QpState];

export const WrOpcode = {
  RDMA_WRITE: 0,
  RDMA_WRITE_WITH_IMM: 1,
  SEND: 2,
  SEND_WITH_IMM: 3,
  RDMA_READ: 4,
  ATOMIC_CMP_AND_SWP: 5,
  ATOMIC_FETCH_AND_ADD: 6,
  /** Invalidate a type 2 memory window's rkey (wr.invalidateRkey); a local operation. */
  LOCAL_INV: 7,
  /** Bind a type 2 memory window (wr.bindMw); a local operation. */
  BIND_MW: 8,
  /** A SEND whose receiver invalidates the type 2 window named by wr.invalidateRkey (RC). */
  SEND_WITH_INV: 9,
} as const;
export type WrOpcode = (typeof WrOpcode)[keyof typeof WrOpcode];

/** ATOMIC_CMP_AND_SWP or ATOMIC_FETCH_AND_ADD. */
export function isAtomic(op: number): boolean {
  return op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD;
}

export const WcOpcode = {
  SEND: 0,
  RDMA_WRITE: 1,
  RDMA_READ: 2,
  COMP_SWAP: 3,
  FETCH_ADD: 4,
  BIND_MW: 5,
  LOCAL_INV: 6,
  RECV: 128,
  RECV_RDMA_WITH_IMM: 129,
} as const;
export type WcOpcode = (typeof WcOpcode)[keyof typeof WcOpcode];

export const WcStatus = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_QP_OP_ERR: 2,
  LOC_EEC_OP_ERR: 3,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  MW_BIND_ERR: 6,
  BAD_RESP_ERR: 7,
  LOC_ACCESS_ERR: 8,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  REM_OP_ERR: 11,
  RETRY_EXC_ERR: 12,
  RNR_RETRY_EXC_ERR: 13,
  LOC_RDD_VIOL_ERR: 14,
  REM_INV_RD_REQ_ERR: 15,
  REM_ABORT_ERR: 16,
  INV_EECN_ERR: 17,
  INV_EEC_STATE_ERR: 18,
  FATAL_ERR: 19,
  RESP_TIMEOUT_ERR: 20,
  GENERAL_ERR: 21,
} as const;
export type WcStatus = (typeof WcStatus)[keyof typeof WcStatus];

const wcStatusNames: string[] = [];
for (const [name, value] of Object.entries(WcStatus)) wcStatusNames[value] = name;

/** The libibverbs name of a completion status, as `ibv_wc_status_str` gives it but stable. */
export function wcStatusName(status: number): string {
  return wcStatusNames[status] ?? `UNKNOWN(${status})`;
}

export const Access = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 2,
  REMOTE_READ: 4,
  REMOTE_ATOMIC: 8,
  /** An MR that memory windows may be bound to. */
  MW_BIND: 16,
  /** A type 2 window's addresses count from 0, not from the MR's address (bind access only). */
  ZERO_BASED: 32,
} as const;

/** ibv_mw_type: type 1 windows are bound with qp.bindMw, type 2 with a BIND_MW work request and tied to that QP. */
export const MwType = { TYPE_1: 1, TYPE_2: 2 } as const;
export type MwType = (typeof MwType)[keyof typeof MwType];

export const SendFlags = { FENCE: 1, SIGNALED: 2, SOLICITED: 4, INLINE: 8 } as const;

/** ibv_wc_flags; WITH_INV: the SEND invalidated wc.invalidatedRkey. */
export const WcFlags = { GRH: 1, WITH_IMM: 2, WITH_INV: 8 } as const;

export const QpAttrMask = {
  STATE: 1 << 0,
  CUR_STATE: 1 << 1,
  EN_SQD_ASYNC_NOTIFY: 1 << 2,
  ACCESS_FLAGS: 1 << 3,
  PKEY_INDEX: 1 << 4,
  PORT: 1 << 5,
  QKEY: 1 << 6,
  AV: 1 << 7,
  PATH_MTU: 1 << 8,
  TIMEOUT: 1 << 9,
  RETRY_CNT: 1 << 10,
  RNR_RETRY: 1 << 11,
  RQ_PSN: 1 << 12,
  MAX_QP_RD_ATOMIC: 1 << 13,
  ALT_PATH: 1 << 14,
  MIN_RNR_TIMER: 1 << 15,
  SQ_PSN: 1 << 16,
  MAX_DEST_RD_ATOMIC: 1 << 17,
  PATH_MIG_STATE: 1 << 18,
  CAP: 1 << 19,
  DEST_QPN: 1 << 20,
} as const;

export const SrqAttrMask = { MAX_WR: 1, LIMIT: 2 } as const;

/** ibv_mtu: the enum, not the byte count. `mtuBytes(Mtu.MTU_4096) === 4096`. */
export const Mtu = { MTU_256: 1, MTU_512: 2, MTU_1024: 3, MTU_2048: 4, MTU_4096: 5 } as const;
export type Mtu = (typeof Mtu)[keyof typeof Mtu];

export function mtuBytes(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 1 || mtu > 5) throw new RangeError(`invalid ibv_mtu ${mtu}`);
  return 128 << mtu;
}

export const PortState = { NOP: 0, DOWN: 1, INIT: 2, ARMED: 3, ACTIVE: 4, ACTIVE_DEFER: 5 } as const;

export const NodeType = { CA: 1, SWITCH: 2, ROUTER: 3, RNIC: 4 } as const;

export const LinkLayer = { UNSPECIFIED: 0, INFINIBAND: 1, ETHERNET: 2 } as const;

export const EventType = {
  CQ_ERR: 0,
  QP_FATAL: 1,
  QP_REQ_ERR: 2,
  QP_ACCESS_ERR: 3,
  COMM_EST: 4,
  SQ_DRAINED: 5,
  PATH_MIG: 6,
  PATH_MIG_ERR: 7,
  DEVICE_FATAL: 8,
  PORT_ACTIVE: 9,
  PORT_ERR: 10,
  LID_CHANGE: 11,
  PKEY_CHANGE: 12,
  SM_CHANGE: 13,
  SRQ_ERR: 14,
  SRQ_LIMIT_REACHED: 15,
  QP_LAST_WQE_REACHED: 16,
  CLIENT_REREGISTER: 17,
  GID_CHANGE: 18,
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

const eventNames: string[] = [];
for (const [name, value] of Object.entries(EventType)) eventNames[value] = name;

export function eventTypeName(type: number): string {
  return eventNames[type] ?? `UNKNOWN(${type})`;
}

const qpStateNames = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'];
export function qpStateName(state: number): string {
  return qpStateNames[state] ?? `UNKNOWN(${state})`;
}

export function qpTypeName(type: number): string {
  return type === QpType.RC ? 'RC' : type === QpType.UC ? 'UC' : type === QpType.UD ? 'UD' : `UNKNOWN(${type})`;
}
