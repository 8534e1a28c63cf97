// DREQ: IBTA vol. 1 §12.6.10, table 112.

import { getBytes, getU24, getU32, setBytes, setU24, setU32 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const DREQ_PRIVATE_DATA_SIZE = 220;

export interface DreqMsg {
  localCommId: number;
  remoteCommId: number;
  remoteQpn: number;
  privateData: Uint8Array;
}

export function encodeDreq(r: DreqMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.DREQ, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setU24(m, 8, r.remoteQpn);
  setBytes(m, 12, DREQ_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeDreq(m: Uint8Array): DreqMsg {
  return { localCommId: getU32(m, 0), remoteCommId: getU32(m, 4), remoteQpn: getU24(m, 8), privateData: getBytes(m, 12, DREQ_PRIVATE_DATA_SIZE) };
}
