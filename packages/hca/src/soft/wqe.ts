import type { MwBindInfo, RecvWr, SendWr, Sge } from '../provider.js';
import type { SoftAh } from './ah.js';
import type { SoftMw } from './mw.js';
import type { SgList } from './sgl.js';

/** Copy an SGE list into a WQE's parallel arrays; returns the total length. */
function loadSgl(dst: SgList, sg: readonly Sge[]): number {
  let total = 0;
  for (let i = 0; i < sg.length; i++) {
    const s = sg[i]!;
    dst.sgeAddr[i] = s.addr;
    dst.sgeLen[i] = s.length;
    dst.sgeKey[i] = s.lkey >>> 0;
    total += s.length;
  }
  dst.numSge = sg.length;
  return total;
}

/**
 * Work queue entries are preallocated and copied into at post time, as an
 * HCA copies a WQE into its ring: the caller may reuse its WR objects the
 * moment postSend returns, and posting allocates nothing.
 */
export class SendWqe {
  wrId = 0;
  opcode = 0;
  sendFlags = 0;
  immData = 0;
  remoteAddr = 0;
  rkey = 0;
  compareAdd = 0n;
  swap = 0n;
  ah: SoftAh | undefined = undefined;
  remoteQpn = 0;
  remoteQkey = 0;
  /** LOCAL_INV, SEND_WITH_INV: the rkey to invalidate. */
  invRkey = 0;
  /** BIND_MW: the window, its new rkey and the bind; read when the WQE starts. */
  mw: SoftMw | undefined = undefined;
  bindRkey = 0;
  bindInfo: MwBindInfo | undefined = undefined;
  numSge = 0;
  readonly sgeAddr: number[];
  readonly sgeLen: number[];
  readonly sgeKey: number[];
  /** Inline payload copied at post time; `inlineLen < 0` means not inline. */
  readonly inline: Uint8Array;
  inlineLen = -1;
  length = 0;
  signaled = false;

  // Transport progress, owned by the requester.
  /** PSN of the first packet; the WQE spans `npkts` PSNs (a READ spans its responses). */
  psn = 0;
  npkts = 0;
  started = false;
  /** READ: packets of response received. */
  respPkts = 0;
  /** A large WRITE/READ to a same-host peer, sent by reference (vm-path.ts): one PSN. */
  vm = false;
  /** A READ done at start, copied straight out of the peer's memory (directory.ts): no packets, no PSN. */
  direct = false;
  done = false;
  status = 0;

  constructor(maxSge: number, maxInline: number) {
    this.sgeAddr = new Array<number>(maxSge).fill(0);
    this.sgeLen = new Array<number>(maxSge).fill(0);
    this.sgeKey = new Array<number>(maxSge).fill(0);
    this.inline = new Uint8Array(maxInline);
  }

  load(wr: SendWr, sigAll: boolean): void {
    this.wrId = wr.wrId;
    this.opcode = wr.opcode;
    this.sendFlags = wr.sendFlags ?? 0;
    this.immData = (wr.immData ?? 0) >>> 0;
    const r = wr.rdma;
    const a = wr.atomic;
    if (a) {
      this.remoteAddr = a.remoteAddr;
      this.rkey = a.rkey >>> 0;
      this.compareAdd = a.compareAdd;
      this.swap = a.swap ?? 0n;
    } else if (r) {
      this.remoteAddr = r.remoteAddr;
      this.rkey = r.rkey >>> 0;
    } else {
      this.remoteAddr = 0;
      this.rkey = 0;
    }
    const ud = wr.ud;
    this.ah = ud ? (ud.ah as SoftAh) : undefined;
    this.remoteQpn = ud ? ud.remoteQpn : 0;
    this.remoteQkey = ud ? ud.remoteQkey >>> 0 : 0;
    this.invRkey = (wr.invalidateRkey ?? 0) >>> 0;
    const b = wr.bindMw;
    if (b) {
      this.mw = b.mw as SoftMw;
      this.bindRkey = b.rkey >>> 0;
      // Copied: the caller may reuse its WR objects once postSend returns.
      this.bindInfo = { mr: b.bindInfo.mr, addr: b.bindInfo.addr, length: b.bindInfo.length, mwAccessFlags: b.bindInfo.mwAccessFlags };
    } else if (this.mw) {
      this.mw = undefined;
      this.bindInfo = undefined;
    }
    this.length = loadSgl(this, wr.sgList);
    this.inlineLen = -1;
    this.signaled = sigAll || (this.sendFlags & 2) !== 0;
    this.psn = 0;
    this.npkts = 0;
    this.started = false;
    this.direct = false;
    this.respPkts = 0;
    this.done = false;
    this.status = 0;
  }
}

export class RecvWqe {
  wrId = 0;
  numSge = 0;
  length = 0;
  readonly sgeAddr: number[];
  readonly sgeLen: number[];
  readonly sgeKey: number[];

  constructor(maxSge: number) {
    this.sgeAddr = new Array<number>(maxSge).fill(0);
    this.sgeLen = new Array<number>(maxSge).fill(0);
    this.sgeKey = new Array<number>(maxSge).fill(0);
  }

  load(wr: RecvWr): void {
    this.wrId = wr.wrId;
    this.length = loadSgl(this, wr.sgList);
  }
}

/** A fixed ring of WQEs with monotonically increasing head/tail counters. */
export class Ring<T> {
  readonly slots: T[];
  head = 0;
  tail = 0;
  constructor(
    readonly capacity: number,
    make: () => T,
  ) {
    this.slots = Array.from({ length: capacity }, make);
  }
  get size(): number {
    return this.tail - this.head;
  }
  get full(): boolean {
    return this.tail - this.head >= this.capacity;
  }
  at(index: number): T {
    return this.slots[index % this.capacity]!;
  }
  /** The slot to fill for a new entry; call commit() after filling it. */
  reserve(): T {
    return this.slots[this.tail % this.capacity]!;
  }
  commit(): void {
    this.tail++;
  }
  shift(): T {
    return this.slots[this.head++ % this.capacity]!;
  }
  clear(): void {
    this.head = this.tail = 0;
  }
}
