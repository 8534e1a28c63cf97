// DREP: IBTA vol. 1 §12.6.11, table 113.

import { getBytes, getU32, setBytes, setU32 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const DREP_PRIVATE_DATA_SIZE = 224;

export interface DrepMsg {
  localCommId: number;
  remoteCommId: number;
  privateData: Uint8Array;
}

export function encodeDrep(r: DrepMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.DREP, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setBytes(m, 8, DREP_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeDrep(m: Uint8Array): DrepMsg {
  return { localCommId: getU32(m, 0), remoteCommId: getU32(m, 4), privateData: getBytes(m, 8, DREP_PRIVATE_DATA_SIZE) };
}
