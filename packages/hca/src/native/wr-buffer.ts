// The pre-serialised work-request layout shared with native/verbs/src/layout.h.
// Each QP (and SRQ) owns one reusable buffer of fixed-size records: postSend
// writes WRs into it through typed views and the addon reads them in place,
// so a post allocates nothing on either side. Every offset is a multiple of
// its field's size, so the views need no unaligned access.
import { WcFlags } from '../enums.js';
import type { RecvWr, SendWr, WorkCompletion } from '../provider.js';

export const LAYOUT = {
  sendWrId: 0,
  sendOpcode: 8,
  sendFlags: 12,
  sendImm: 16,
  sendNumSge: 20,
  sendRemoteAddr: 24,
  sendRkey: 32,
  sendAhId: 36,
  sendCompareAdd: 40,
  sendSwap: 48,
  sendRemoteQpn: 56,
  sendRemoteQkey: 60,
  sendHeader: 64,
  recvWrId: 0,
  recvNumSge: 8,
  recvHeader: 16,
  sgeAddr: 0,
  sgeLength: 8,
  sgeLkey: 12,
  sgeSize: 16,
  wcWrId: 0,
  wcStatus: 8,
  wcOpcode: 12,
  wcVendorErr: 16,
  wcByteLen: 20,
  wcImm: 24,
  wcQpNum: 28,
  wcSrcQp: 32,
  wcFlags: 36,
  wcPkeyIndex: 40,
  wcSlid: 42,
  wcSl: 44,
  wcDlidPathBits: 45,
  wcSize: 48,
  wrBatch: 32,
  pollBatch: 64,
} as const;

const L = LAYOUT;
const WITH_INV = WcFlags.WITH_INV;

export function sendRecordSize(maxSge: number): number {
  return L.sendHeader + L.sgeSize * maxSge;
}

export function recvRecordSize(maxSge: number): number {
  return L.recvHeader + L.sgeSize * maxSge;
}

/** What a UD WR's address handle (or a bind's window or MR) must be for the native provider: one it created. */
export interface AhId {
  readonly id: number;
  readonly closed: boolean;
}

/** Writes send WRs into a QP's record buffer. */
export class SendWrWriter {
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly u64: BigUint64Array;
  private readonly rec: number;

  constructor(
    buffer: ArrayBuffer,
    readonly maxSge: number,
    private readonly ud: boolean,
  ) {
    this.f64 = new Float64Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.u64 = new BigUint64Array(buffer);
    this.rec = sendRecordSize(maxSge);
  }

  /** Writes WR `wr` as record `i`; returns why it cannot be posted, or undefined. */
  write(i: number, wr: SendWr): string | undefined {
    const sg = wr.sgList;
    if (sg.length > this.maxSge) return `${sg.length} SGEs exceed max_send_sge ${this.maxSge}`;
    const b = i * this.rec;
    const w = b >>> 2;
    const d = b >>> 3;
    this.f64[d] = wr.wrId;
    this.u32[w + 2] = wr.opcode;
    this.u32[w + 3] = wr.sendFlags ?? 0;
    // ibv_send_wr keeps imm_data and invalidate_rkey in one union; so does the record.
    this.u32[w + 4] = (wr.invalidateRkey ?? wr.immData ?? 0) >>> 0;
    this.u32[w + 5] = sg.length;
    if (this.ud) {
      const ud = wr.ud;
      const ah = ud?.ah as unknown as AhId | undefined;
      if (!ud || !ah || typeof ah.id !== 'number' || ah.closed) return 'UD work request without a live address handle';
      this.u32[w + 9] = ah.id;
      this.u32[w + 14] = ud.remoteQpn >>> 0;
      this.u32[w + 15] = ud.remoteQkey >>> 0;
    } else if (wr.bindMw) {
      // The record's header slots, as native/verbs/src/wr.cc reads a BIND_MW.
      const b = wr.bindMw;
      const mw = b.mw as unknown as AhId;
      const mr = b.bindInfo.mr as unknown as AhId | undefined;
      if (typeof mw?.id !== 'number' || mw.closed) return 'BIND_MW names a deallocated window';
      if (mr && (typeof mr.id !== 'number' || mr.closed)) return 'BIND_MW names a deregistered MR';
      this.u32[w + 9] = mw.id;
      this.u32[w + 8] = b.rkey >>> 0;
      this.u32[w + 14] = mr ? mr.id : 0;
      this.f64[d + 3] = b.bindInfo.addr;
      this.u64[d + 5] = BigInt(b.bindInfo.length);
      this.u32[w + 15] = b.bindInfo.mwAccessFlags >>> 0;
    } else if (wr.atomic) {
      const a = wr.atomic;
      this.f64[d + 3] = a.remoteAddr;
      this.u32[w + 8] = a.rkey >>> 0;
      this.u64[d + 5] = BigInt.asUintN(64, a.compareAdd);
      this.u64[d + 6] = BigInt.asUintN(64, a.swap ?? 0n);
    } else if (wr.rdma) {
      this.f64[d + 3] = wr.rdma.remoteAddr;
      this.u32[w + 8] = wr.rdma.rkey >>> 0;
    } else {
      this.f64[d + 3] = 0;
      this.u32[w + 8] = 0;
    }
    for (let s = 0; s < sg.length; s++) {
      const e = sg[s]!;
      const o = b + L.sendHeader + s * L.sgeSize;
      this.f64[o >>> 3] = e.addr;
      this.u32[(o >>> 2) + 2] = e.length >>> 0;
      this.u32[(o >>> 2) + 3] = e.lkey >>> 0;
    }
    return undefined;
  }
}

/** Writes receive WRs into a QP's or SRQ's record buffer. */
export class RecvWrWriter {
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly rec: number;

  constructor(
    buffer: ArrayBuffer,
    readonly maxSge: number,
  ) {
    this.f64 = new Float64Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.rec = recvRecordSize(maxSge);
  }

  write(i: number, wr: RecvWr): string | undefined {
    const sg = wr.sgList;
    if (sg.length > this.maxSge) return `${sg.length} SGEs exceed max_sge ${this.maxSge}`;
    const b = i * this.rec;
    this.f64[b >>> 3] = wr.wrId;
    this.u32[(b >>> 2) + 2] = sg.length;
    for (let s = 0; s < sg.length; s++) {
      const e = sg[s]!;
      const o = b + L.recvHeader + s * L.sgeSize;
      this.f64[o >>> 3] = e.addr;
      this.u32[(o >>> 2) + 2] = e.length >>> 0;
      this.u32[(o >>> 2) + 3] = e.lkey >>> 0;
    }
    return undefined;
  }
}

/** Reads the completion records the addon's poll writes. */
export class WcReader {
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private readonly u8: Uint8Array;

  constructor(buffer: ArrayBuffer) {
    this.f64 = new Float64Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u8 = new Uint8Array(buffer);
  }

  read(i: number, wc: WorkCompletion): void {
    const b = i * L.wcSize;
    const w = b >>> 2;
    wc.wrId = this.f64[b >>> 3]!;
    wc.status = this.u32[w + 2]!;
    wc.opcode = this.u32[w + 3]!;
    wc.vendorErr = this.u32[w + 4]!;
    wc.byteLen = this.u32[w + 5]!;
    const flags = this.u32[w + 9]!;
    // The addon stores ibv_wc's imm_data / invalidated_rkey union in one field, host order.
    const imm = this.u32[w + 6]!;
    wc.immData = flags & WITH_INV ? 0 : imm;
    wc.invalidatedRkey = flags & WITH_INV ? imm : 0;
    wc.completionTs = 0;
    wc.qpNum = this.u32[w + 7]!;
    wc.srcQp = this.u32[w + 8]!;
    wc.wcFlags = flags;
    wc.pkeyIndex = this.u16[(b >>> 1) + 20]!;
    wc.slid = this.u16[(b >>> 1) + 21]!;
    wc.sl = this.u8[b + 44]!;
    wc.dlidPathBits = this.u8[b + 45]!;
  }
}
