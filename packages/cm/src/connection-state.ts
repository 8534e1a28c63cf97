// The two state machines a connection id walks: the IB CM's (IBTA vol. 1
// §12.9, Linux's enum ib_cm_state) and rdma_cm's above it (enum
// rdma_cm_state), which adds address and route resolution.

export const CmState = {
  IDLE: 0,
  LISTEN: 1,
  REQ_SENT: 2,
  REQ_RCVD: 3,
  MRA_REQ_SENT: 4,
  MRA_REQ_RCVD: 5,
  REP_SENT: 6,
  REP_RCVD: 7,
  MRA_REP_SENT: 8,
  MRA_REP_RCVD: 9,
  ESTABLISHED: 10,
  DREQ_SENT: 11,
  DREQ_RCVD: 12,
  TIMEWAIT: 13,
  SIDR_REQ_SENT: 14,
  SIDR_REQ_RCVD: 15,
} as const;
export type CmState = (typeof CmState)[keyof typeof CmState];

const cmStateNames = Object.keys(CmState);

export function cmStateName(s: number): string {
  return cmStateNames[s] ?? `CmState(${s})`;
}

export const RdmaCmState = {
  IDLE: 0,
  ADDR_QUERY: 1,
  ADDR_RESOLVED: 2,
  ROUTE_QUERY: 3,
  ROUTE_RESOLVED: 4,
  CONNECT: 5,
  DISCONNECT: 6,
  ADDR_BOUND: 7,
  LISTEN: 8,
  DEVICE_REMOVAL: 9,
  DESTROYING: 10,
} as const;
export type RdmaCmState = (typeof RdmaCmState)[keyof typeof RdmaCmState];

const rdmaStateNames = Object.keys(RdmaCmState);

export function rdmaCmStateName(s: number): string {
  return rdmaStateNames[s] ?? `RdmaCmState(${s})`;
}
