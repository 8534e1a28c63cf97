// REP: IBTA vol. 1 §12.6.8, table 110.

import { getBits, getBytes, getU24, getU32, getU64, getU8, setBits, setBytes, setU24, setU32, setU64, setU8 } from '../fields.js';
import { CmAttr, newCmMad } from '../mad.js';

export const REP_PRIVATE_DATA_SIZE = 196;

export interface RepMsg {
  localCommId: number;
  remoteCommId: number;
  localQkey: number;
  localQpn: number;
  localEecn: number;
  startingPsn: number;
  responderResources: number;
  initiatorDepth: number;
  targetAckDelay: number;
  failoverAccepted: number;
  endToEndFlowControl: number;
  rnrRetryCount: number;
  srq: number;
  localCaGuid: bigint;
  privateData: Uint8Array;
}

export function encodeRep(r: RepMsg, tid: bigint): Uint8Array {
  const m = newCmMad(CmAttr.REP, tid);
  setU32(m, 0, r.localCommId);
  setU32(m, 4, r.remoteCommId);
  setU32(m, 8, r.localQkey);
  setU24(m, 12, r.localQpn);
  setU24(m, 16, r.localEecn);
  setU24(m, 20, r.startingPsn);
  setU8(m, 24, r.responderResources);
  setU8(m, 25, r.initiatorDepth);
  setBits(m, 26, 0, 5, r.targetAckDelay);
  setBits(m, 26, 5, 2, r.failoverAccepted);
  setBits(m, 26, 7, 1, r.endToEndFlowControl);
  setBits(m, 27, 0, 3, r.rnrRetryCount);
  setBits(m, 27, 3, 1, r.srq);
  setU64(m, 28, r.localCaGuid);
  setBytes(m, 36, REP_PRIVATE_DATA_SIZE, r.privateData);
  return m;
}

export function decodeRep(m: Uint8Array): RepMsg {
  return {
    localCommId: getU32(m, 0),
    remoteCommId: getU32(m, 4),
    localQkey: getU32(m, 8),
    localQpn: getU24(m, 12),
    localEecn: getU24(m, 16),
    startingPsn: getU24(m, 20),
    responderResources: getU8(m, 24),
    initiatorDepth: getU8(m, 25),
    targetAckDelay: getBits(m, 26, 0, 5),
    failoverAccepted: getBits(m, 26, 5, 2),
    endToEndFlowControl: getBits(m, 26, 7, 1),
    rnrRetryCount: getBits(m, 27, 0, 3),
    srq: getBits(m, 27, 3, 1),
    localCaGuid: getU64(m, 28),
    privateData: getBytes(m, 36, REP_PRIVATE_DATA_SIZE),
  };
}
