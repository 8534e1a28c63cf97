// REJ: IBTA vol. 1 §12.6.7, table 108; reasons from table 109.

import { getBits, getBytes, getU16, getU32, setBits, setBytes, setU16, setU32 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const REJ_PRIVATE_DATA_SIZE = 148;
export const REJ_ARI_SIZE = 72;

/** Which message a REJ (or MRA) answers. */
export const MsgRejected = { REQ: 0, REP: 1, OTHER: 2 } as const;

/** REJ reason codes (IBTA vol. 1 table 109; Linux's enum ib_cm_rej_reason). */
export const RejReason = {
  NO_QP: 1,
  NO_EEC: 2,
  NO_RESOURCES: 3,
  TIMEOUT: 4,
  UNSUPPORTED: 5,
  INVALID_COMM_ID: 6,
  INVALID_COMM_INSTANCE: 7,
  INVALID_SERVICE_ID: 8,
  INVALID_TRANSPORT_TYPE: 9,
  STALE_CONN: 10,
  RDC_NOT_EXIST: 11,
  INVALID_GID: 12,
  INVALID_LID: 13,
  INVALID_SL: 14,
  INVALID_TRAFFIC_CLASS: 15,
  INVALID_HOP_LIMIT: 16,
  INVALID_PACKET_RATE: 17,
  INVALID_ALT_GID: 18,
  INVALID_ALT_LID: 19,
  INVALID_ALT_SL: 20,
  INVALID_ALT_TRAFFIC_CLASS: 21,
  INVALID_ALT_HOP_LIMIT: 22,
  INVALID_ALT_PACKET_RATE: 23,
  PORT_CM_REDIRECT: 24,
  PORT_REDIRECT: 25,
  INVALID_MTU: 26,
  INSUFFICIENT_RESP_RESOURCES: 27,
  CONSUMER_DEFINED: 28,
  INVALID_RNR_RETRY: 29,
  DUPLICATE_LOCAL_COMM_ID: 30,
  INVALID_CLASS_VERSION: 31,
  INVALID_FLOW_LABEL: 32,
  INVALID_ALT_FLOW_LABEL: 33,
  VENDOR_OPTION_NOT_SUPPORTED: 35,
} as const;
export type RejReason = (typeof RejReason)[keyof typeof RejReason];

const reasonNames: Record<number, string> = Object.fromEntries(Object.entries(RejReason).map(([k, v]) => [v, k]));

export function rejReasonName(reason: number): string {
  return reasonNames[reason] ?? `REJ_REASON_${reason}`;
}

export interface RejMsg {
  localCommId: number;
  remoteCommId: number;
  messageRejected: number;
  /** Bytes of ARI that are meaningful (0..72). */
  rejectedInfoLength: number;
  reason: number;
  ari: Uint8Array;
  privateData: Uint8Array;
}

export function encodeRej(r: RejMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.REJ, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setBits(m, 8, 0, 2, r.messageRejected);
  setBits(m, 9, 0, 7, r.rejectedInfoLength);
  setU16(m, 10, r.reason);
  setBytes(m, 12, REJ_ARI_SIZE, r.ari);
  setBytes(m, 84, REJ_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeRej(m: Uint8Array): RejMsg {
  return {
    localCommId: getU32(m, 0),
    remoteCommId: getU32(m, 4),
    messageRejected: getBits(m, 8, 0, 2),
    rejectedInfoLength: getBits(m, 9, 0, 7),
    reason: getU16(m, 10),
    ari: getBytes(m, 12, REJ_ARI_SIZE),
    privateData: getBytes(m, 84, REJ_PRIVATE_DATA_SIZE),
  };
}
