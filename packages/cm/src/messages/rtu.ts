// RTU: IBTA vol. 1 §12.6.9, table 111.

import { getBytes, getU32, setBytes, setU32 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const RTU_PRIVATE_DATA_SIZE = 224;

export interface RtuMsg {
  localCommId: number;
  remoteCommId: number;
  privateData: Uint8Array;
}

export function encodeRtu(r: RtuMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.RTU, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setBytes(m, 8, RTU_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeRtu(m: Uint8Array): RtuMsg {
  return { localCommId: getU32(m, 0), remoteCommId: getU32(m, 4), privateData: getBytes(m, 8, RTU_PRIVATE_DATA_SIZE) };
}
