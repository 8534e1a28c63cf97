// The MAD common header (IBTA vol. 1 §13.4.2) and the CM class's constants.
// Every CM message is one 256-byte MAD: a 24-byte header, then the
// message's 232 bytes, whose fields messages/*.ts place at the offsets of
// IBTA vol. 1 chapter 12's tables (offsets there count from the end of this
// header, as here).

export const MAD_SIZE = 256;
export const MAD_HEADER_SIZE = 24;
export const MAD_DATA_SIZE = MAD_SIZE - MAD_HEADER_SIZE;

export const MAD_BASE_VERSION = 1;
/** Management class of the communication manager. */
export const MGMT_CLASS_CM = 0x07;
/** CM class version 2 (IBTA 1.2 and later), what Linux's CM speaks. */
export const CM_CLASS_VERSION = 2;

export const MadMethod = {
  GET: 0x01,
  SET: 0x02,
  SEND: 0x03,
  GET_RESP: 0x81,
} as const;

/** Attribute IDs of the CM class (IBTA vol. 1 table 104). */
export const CmAttr = {
  CLASS_PORT_INFO: 0x0001,
  REQ: 0x0010,
  MRA: 0x0011,
  REJ: 0x0012,
  REP: 0x0013,
  RTU: 0x0014,
  DREQ: 0x0015,
  DREP: 0x0016,
  SIDR_REQ: 0x0017,
  SIDR_REP: 0x0018,
  LAP: 0x0019,
  APR: 0x001a,
} as const;

const attrNames: Record<number, string> = Object.fromEntries(Object.entries(CmAttr).map(([k, v]) => [v, k]));

export function cmAttrName(id: number): string {
  return attrNames[id] ?? `attr 0x${id.toString(16).padStart(4, '0')}`;
}

/** MAD status: "unsupported method/attribute combination" (§13.4.7). */
export const MAD_STATUS_UNSUPPORTED_METHOD_ATTR = 0x000c;

export interface MadHeader {
  baseVersion: number;
  mgmtClass: number;
  classVersion: number;
  method: number;
  status: number;
  classSpecific: number;
  tid: bigint;
  attrId: number;
  attrMod: number;
}

export function writeMadHeader(mad: Uint8Array, h: Pick<MadHeader, 'method' | 'tid' | 'attrId'> & Partial<MadHeader>): void {
  const v = view(mad);
  mad[0] = h.baseVersion ?? MAD_BASE_VERSION;
  mad[1] = h.mgmtClass ?? MGMT_CLASS_CM;
  mad[2] = h.classVersion ?? CM_CLASS_VERSION;
  mad[3] = h.method;
  v.setUint16(4, h.status ?? 0);
  v.setUint16(6, h.classSpecific ?? 0);
  v.setBigUint64(8, BigInt.asUintN(64, h.tid));
  v.setUint16(16, h.attrId);
  v.setUint16(18, 0);
  v.setUint32(20, h.attrMod ?? 0);
}

export function readMadHeader(mad: Uint8Array): MadHeader {
  const v = view(mad);
  return {
    baseVersion: mad[0]!,
    mgmtClass: mad[1]!,
    classVersion: mad[2]!,
    method: mad[3]!,
    status: v.getUint16(4),
    classSpecific: v.getUint16(6),
    tid: v.getBigUint64(8),
    attrId: v.getUint16(16),
    attrMod: v.getUint32(20),
  };
}

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A fresh zeroed MAD with a CM SEND header. */
export function newCmMad(attrId: number, tid: bigint): Uint8Array {
  const mad = new Uint8Array(MAD_SIZE);
  writeMadHeader(mad, { method: MadMethod.SEND, tid, attrId });
  return mad;
}
