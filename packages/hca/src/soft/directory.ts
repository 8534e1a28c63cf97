// What a device lets its same-host peers READ without asking it. A large
// RDMA READ otherwise waits for the responder's process to run: its
// JavaScript reads the request off the ring, checks it, and answers (or
// copies), and only then can the requester go on. A real HCA reads host
// memory with no help from the host's CPU; this is the soft HCA's way of
// doing the same between two processes of one host.
//
// Each device publishes, in a shared region (mr-memory.ts) whose descriptor
// its shm HELLO carries, one entry per QP and one per remotely readable MR:
// exactly what its responder checks for a READ (the QP's state, access
// flags, PD and the peer it is connected to; the MR's key, bounds, PD and
// permissions), and where the MR's bytes are (its shared region, or its
// address in the process). A requester whose READ passes every check
// copies the bytes itself, out of the responder's mapped region or with
// process_vm_readv, and completes the READ at once: no packet, no PSN. So
// a READ of a busy process's memory need not wait for it to run its event
// loop. A READ that fails any check, or meets an entry being rewritten,
// goes to the responder as before, whose own checks then decide and report
// (REM_ACCESS_ERR and so on). The entries can therefore only let through a READ the responder
// would have let through; they never refuse one.
//
// Entries are seqlocks: the owner makes an entry's first word odd, writes
// the rest, then makes it even again. A reader takes the word, reads, copies
// the bytes, and takes the word again; a change means the entry moved under
// it (an MR deregistered mid-copy) and the READ goes the slow way, which
// overwrites what the copy left. Every word is written and read with
// Atomics, whose order holds on any CPU (plain accesses may be reordered
// around the sequence word on ARM, say); numbers past 32 bits are kept as
// two words.
import { Access, QpState, QpType } from '../enums.js';
import { processExists } from '../sys/host.js';
import { sys } from '../sys/load.js';
import { addressOf } from '../sys/vm.js';
import { REGION_HEADER, allocRegionMemory, peerRegion, sharedRegionOf } from './mr-memory.js';
import type { SoftMr } from './mr.js';

/** MRs (by key index, rkey >>> 8) and QPs (by QPN modulo) a directory has room for; others are not published. */
const MR_SLOTS = 4096;
const QP_SLOTS = 1024;
/**
 * Words per entry. MR: seq, rkey, pd, region fd + 1 (0: not in a region),
 * nonce hi, nonce lo, access, 0, then as two words each its iova, length,
 * and the offset of its bytes in the region or, outside one, their address
 * in the process.
 */
const MR_WORDS = 16;
/** QP: seq, qpn, readable, pd, dest QPN, peer token, 0, 0. */
const QP_WORDS = 8;
const HEAD_WORDS = 16;
const MR_BASE = HEAD_WORDS;
const QP_BASE = MR_BASE + MR_SLOTS * MR_WORDS;
const BYTES = (QP_BASE + QP_SLOTS * QP_WORDS) * 4;
const MAGIC = 0x49424452; // 'IBDR'
const VERSION = 2;

/** What a HELLO carries so the peer can map a directory. */
export interface DirectoryDesc {
  fd: number;
  hi: number;
  lo: number;
}

/** The QP fields an entry is made of. */
export interface DirectoryQp {
  readonly qpNum: number;
  readonly qpType: number;
  readonly state: number;
  readonly accessFlags: number;
  readonly maxDestRdAtomic: number;
  readonly pd: { readonly id: number };
  readonly destQpNum: number;
  readonly peer: { readonly token: number } | undefined;
}

/** Where `buf`'s bytes are in this process, or -1 without the addon. */
function processAddress(buf: Uint8Array): number {
  try {
    return Number(addressOf(buf));
  } catch {
    return -1;
  }
}

const TWO32 = 2 ** 32;

/** Writes a number below 2^53 as two words at `at` (high first). */
function putNum(u32: Uint32Array, at: number, v: number): void {
  Atomics.store(u32, at, Math.floor(v / TWO32));
  Atomics.store(u32, at + 1, v >>> 0);
}

function getNum(u32: Uint32Array, at: number): number {
  return Atomics.load(u32, at) * TWO32 + Atomics.load(u32, at + 1);
}

/** Begins rewriting the entry at word `at` (odd sequence). */
function begin(u32: Uint32Array, at: number): number {
  const seq = (Atomics.load(u32, at) + 1) | 1;
  Atomics.store(u32, at, seq);
  return seq;
}

/** The owner's side: one per device. */
export class Directory {
  private readonly u32: Uint32Array;

  private constructor(
    mem: Uint8Array,
    readonly desc: DirectoryDesc,
  ) {
    this.u32 = new Uint32Array(mem.buffer, mem.byteOffset, BYTES / 4);
    this.u32[1] = VERSION;
    this.u32[2] = MR_SLOTS;
    this.u32[3] = QP_SLOTS;
    Atomics.store(this.u32, 0, MAGIC);
  }

  /**
   * Unmaps the directory and closes its descriptor at once, when its wire
   * closes: a device opened and closed in a loop otherwise kept one of each
   * per turn until a GC. Peers keep their own mappings until their links go down.
   */
  close(): void {
    sys().detach(this.u32.buffer as ArrayBuffer);
  }

  /** A directory in shared memory, or undefined where regions stay on the heap (nobody could map it). */
  static create(): Directory | undefined {
    const mem = allocRegionMemory(BYTES);
    const region = sharedRegionOf(mem);
    return region ? new Directory(mem, { fd: region.fd, hi: region.nonceHi, lo: region.nonceLo }) : undefined;
  }

  /** Publishes `mr` when a peer could READ it (remote read), else clears its slot. */
  publishMr(mr: SoftMr): void {
    const index = mr.rkey >>> 8;
    if (index >= MR_SLOTS) return;
    const readable = (mr.access & Access.REMOTE_READ) !== 0 && mr.buf.length > 0;
    const region = readable ? sharedRegionOf(mr.buf) : undefined;
    const where = region ? mr.buf.byteOffset : readable ? processAddress(mr.buf) : -1;
    const u = this.u32;
    const at = MR_BASE + index * MR_WORDS;
    const seq = begin(u, at);
    if (where >= 0) {
      Atomics.store(u, at + 1, mr.rkey);
      Atomics.store(u, at + 2, mr.pd.id);
      Atomics.store(u, at + 3, region ? region.fd + 1 : 0);
      Atomics.store(u, at + 4, region ? region.nonceHi : 0);
      Atomics.store(u, at + 5, region ? region.nonceLo : 0);
      Atomics.store(u, at + 6, mr.access);
      putNum(u, at + 8, mr.addr);
      putNum(u, at + 10, mr.buf.length);
      putNum(u, at + 12, where);
    } else {
      Atomics.store(u, at + 1, 0);
    }
    Atomics.store(u, at, seq + 1);
  }

  clearMr(mr: SoftMr): void {
    const index = mr.rkey >>> 8;
    if (index >= MR_SLOTS) return;
    const at = MR_BASE + index * MR_WORDS;
    if (Atomics.load(this.u32, at + 1) !== mr.rkey) return;
    const seq = begin(this.u32, at);
    Atomics.store(this.u32, at + 1, 0);
    Atomics.store(this.u32, at, seq + 1);
  }

  /** Publishes what a READ to `qp` is checked against; called on every change of it. */
  publishQp(qp: DirectoryQp): void {
    const u = this.u32;
    const at = QP_BASE + (qp.qpNum % QP_SLOTS) * QP_WORDS;
    const seq = begin(u, at);
    const s = qp.state;
    const readable =
      qp.qpType === QpType.RC &&
      (s === QpState.RTR || s === QpState.RTS || s === QpState.SQD) &&
      qp.maxDestRdAtomic > 0 &&
      (qp.accessFlags & Access.REMOTE_READ) !== 0 &&
      qp.peer !== undefined;
    Atomics.store(u, at + 1, qp.qpNum);
    Atomics.store(u, at + 2, readable ? 1 : 0);
    Atomics.store(u, at + 3, qp.pd.id);
    Atomics.store(u, at + 4, qp.destQpNum);
    Atomics.store(u, at + 5, qp.peer?.token ?? 0);
    Atomics.store(u, at, seq + 1);
  }

  clearQp(qpNum: number): void {
    const at = QP_BASE + (qpNum % QP_SLOTS) * QP_WORDS;
    if (Atomics.load(this.u32, at + 1) !== qpNum) return;
    const seq = begin(this.u32, at);
    Atomics.store(this.u32, at + 1, 0);
    Atomics.store(this.u32, at + 2, 0);
    Atomics.store(this.u32, at, seq + 1);
  }
}

/** A peer's directory, mapped here: checks a READ the way the peer's responder would. */
export class PeerDirectory {
  private readonly u32: Uint32Array;
  private mrAt = 0;
  private mrSeq = 0;
  private qpAt = 0;
  private qpSeq = 0;
  /** The access flags of the MR the last successful check() named. */
  access = 0;
  /**
   * Where the bytes the last successful check() named lie: a view of the
   * peer's mapped region, or (view undefined) their address in the peer,
   * for process_vm_readv.
   */
  view: Uint8Array | undefined;
  address = 0;

  private constructor(readonly mapping: Uint8Array) {
    this.u32 = new Uint32Array(mapping.buffer, mapping.byteOffset + REGION_HEADER, BYTES / 4);
  }

  /** Wraps a mapping of a peer's directory region; undefined when it is not one this code can read. */
  static of(mapping: Uint8Array): PeerDirectory | undefined {
    if (mapping.byteLength < REGION_HEADER + BYTES) return undefined;
    const d = new PeerDirectory(mapping);
    const u = d.u32;
    return Atomics.load(u, 0) === MAGIC && u[1] === VERSION && u[2] === MR_SLOTS && u[3] === QP_SLOTS ? d : undefined;
  }

  /**
   * Whether every check the peer's responder makes for a READ of
   * [va, va + len) with `rkey` on its QP `destQpn` passes: that QP accepts
   * READs and is connected to our QP `fromQpn` on the link that knows us as
   * `token`, and `rkey` names an MR of its PD allowing remote reads that
   * covers the range. Then `view` or `address` says where the bytes are.
   * Call valid() after copying them.
   */
  check(pid: number, destQpn: number, fromQpn: number, token: number, rkey: number, va: number, len: number): boolean {
    // A dead process's memory stays mapped here, entries and all; a READ
    // from it must end as one to any lost peer does (RETRY_EXC_ERR), not
    // return what it left behind. The link notices too, but up to a
    // liveness period later.
    if (!processExists(pid)) return false;
    const u = this.u32;
    const qa = QP_BASE + (destQpn % QP_SLOTS) * QP_WORDS;
    const qs = Atomics.load(u, qa);
    if (qs & 1 || token === 0) return false;
    if (Atomics.load(u, qa + 1) !== destQpn || Atomics.load(u, qa + 2) !== 1 || Atomics.load(u, qa + 4) !== fromQpn || Atomics.load(u, qa + 5) !== token) return false;
    const index = rkey >>> 8;
    if (index >= MR_SLOTS || rkey === 0) return false;
    const ma = MR_BASE + index * MR_WORDS;
    const ms = Atomics.load(u, ma);
    if (ms & 1 || Atomics.load(u, ma + 1) !== rkey >>> 0 || Atomics.load(u, ma + 2) !== Atomics.load(u, qa + 3)) return false;
    const access = Atomics.load(u, ma + 6);
    if (!(access & Access.REMOTE_READ)) return false;
    const off = va - getNum(u, ma + 8);
    if (!(off >= 0) || len < 0 || off + len > getNum(u, ma + 10)) return false;
    const fd1 = Atomics.load(u, ma + 3);
    const start = getNum(u, ma + 12) + off;
    let view: Uint8Array | undefined;
    if (fd1 !== 0) {
      const region = peerRegion(pid, fd1 - 1, Atomics.load(u, ma + 4), Atomics.load(u, ma + 5));
      if (!region || start + len > region.length) return false;
      view = region.subarray(start, start + len);
    }
    // The entries we read must still be the ones whose sequence we took.
    if (Atomics.load(u, qa) !== qs || Atomics.load(u, ma) !== ms) return false;
    this.qpAt = qa;
    this.qpSeq = qs;
    this.mrAt = ma;
    this.mrSeq = ms;
    this.access = access;
    this.view = view;
    this.address = start;
    return true;
  }

  /** Neither entry the last check() passed has changed since: what was copied from its view is what a READ returns. */
  valid(): boolean {
    return Atomics.load(this.u32, this.qpAt) === this.qpSeq && Atomics.load(this.u32, this.mrAt) === this.mrSeq;
  }
}
