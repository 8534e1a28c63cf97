// MRA (message receipt acknowledgement): IBTA vol. 1 §12.6.6, table 107.

import { getBits, getBytes, getU32, setBits, setBytes, setU32 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const MRA_PRIVATE_DATA_SIZE = 222;

export interface MraMsg {
  localCommId: number;
  remoteCommId: number;
  /** MsgRejected values: 0 REQ, 1 REP, 2 LAP. */
  messageMraed: number;
  /** How much longer the sender of the MRA needs (exponent, 4.096 µs · 2^n). */
  serviceTimeout: number;
  privateData: Uint8Array;
}

export function encodeMra(r: MraMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.MRA, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setBits(m, 8, 0, 2, r.messageMraed);
  setBits(m, 9, 0, 5, r.serviceTimeout);
  setBytes(m, 10, MRA_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeMra(m: Uint8Array): MraMsg {
  return {
    localCommId: getU32(m, 0),
    remoteCommId: getU32(m, 4),
    messageMraed: getBits(m, 8, 0, 2),
    serviceTimeout: getBits(m, 9, 0, 5),
    privateData: getBytes(m, 10, MRA_PRIVATE_DATA_SIZE),
  };
}
