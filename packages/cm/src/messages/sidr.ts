// SIDR_REQ and SIDR_REP: IBTA vol. 1 §12.11, tables 119 and 120. A UD
// client asks for a service's QPN and Q_Key; no connection is made.

import { getBytes, getU16, getU24, getU32, getU64, getU8, setBytes, setU16, setU24, setU32, setU64, setU8 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const SIDR_REQ_PRIVATE_DATA_SIZE = 216;
export const SIDR_REP_PRIVATE_DATA_SIZE = 136;
export const SIDR_REP_ADD_INFO_SIZE = 72;

/** SIDR_REP Status (IBTA vol. 1 table 121). */
export const SidrStatus = {
  SUCCESS: 0,
  UNSUPPORTED: 1,
  REJECT: 2,
  NO_QP: 3,
  REDIRECT: 4,
  UNSUPPORTED_VERSION: 5,
} as const;

const statusNames: Record<number, string> = Object.fromEntries(Object.entries(SidrStatus).map(([k, v]) => [v, `SIDR_${k}`]));

export function sidrStatusName(s: number): string {
  return statusNames[s] ?? `SIDR_STATUS_${s}`;
}

export interface SidrReqMsg {
  requestId: number;
  pkey: number;
  serviceId: bigint;
  privateData: Uint8Array;
}

export interface SidrRepMsg {
  requestId: number;
  status: number;
  addInfoLength: number;
  qpn: number;
  serviceId: bigint;
  qkey: number;
  addInfo: Uint8Array;
  privateData: Uint8Array;
}

export function encodeSidrReq(r: SidrReqMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.SIDR_REQ, tid);
  setU32(m, 0, r.requestId);
  setU16(m, 4, r.pkey);
  setU64(m, 8, r.serviceId);
  setBytes(m, 16, SIDR_REQ_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeSidrReq(m: Uint8Array): SidrReqMsg {
  return { requestId: getU32(m, 0), pkey: getU16(m, 4), serviceId: getU64(m, 8), privateData: getBytes(m, 16, SIDR_REQ_PRIVATE_DATA_SIZE) };
}

export function encodeSidrRep(r: SidrRepMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.SIDR_REP, tid);
  setU32(m, 0, r.requestId);
  setU8(m, 4, r.status);
  setU8(m, 5, r.addInfoLength);
  setU24(m, 8, r.qpn);
  setU64(m, 12, r.serviceId);
  setU32(m, 20, r.qkey);
  setBytes(m, 24, SIDR_REP_ADD_INFO_SIZE, r.addInfo);
  setBytes(m, 96, SIDR_REP_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeSidrRep(m: Uint8Array): SidrRepMsg {
  return {
    requestId: getU32(m, 0),
    status: getU8(m, 4),
    addInfoLength: getU8(m, 5),
    qpn: getU24(m, 8),
    serviceId: getU64(m, 12),
    qkey: getU32(m, 20),
    addInfo: getBytes(m, 24, SIDR_REP_ADD_INFO_SIZE),
    privateData: getBytes(m, 96, SIDR_REP_PRIVATE_DATA_SIZE),
  };
}
