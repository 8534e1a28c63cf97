// Large RDMA WRITE and READ between two processes of one host, in one copy.
// Over a negotiated shared-memory link (shm-link.ts) whose peer showed it
// may use process_vm_readv/writev on us, the requester does not cut such a
// message into MTU packets: it sends one WRITE ONLY (or READ REQUEST) packet
// whose payload, instead of data, lists where the data lives in its own
// process (pid and address ranges), marked by a reserved BTH bit. The
// responder makes exactly the checks it makes for packets (PSN, QP access
// flags, rkey, bounds, permissions) and then moves the bytes itself:
// process_vm_readv from the requester straight into the registered memory
// for a WRITE, process_vm_writev from the registered memory straight into
// the requester's buffers for a READ (answered by an empty READ RESPONSE
// ONLY with the same bit). Such a message spans one PSN at both ends.
//
// A responder accepts the mark only on packets that came through its ring
// from the peer process named in the descriptor, never from the network.
//
// When the requester's buffer is a shared region (mr-memory.ts: what
// regMr(pd, length) allocates), the descriptor names the region too, and
// the responder maps it and copies with memcpy: no page pinning per call,
// so the copy runs at memory speed. Other buffers go by process_vm_*.
import { Access } from '../enums.js';
import { VmFaultError, VmNoProcessError } from '../sys/errors.js';
import { addressOf, vmRead, vmWrite } from '../sys/vm.js';
import { peerRegion, sharedRegionOf } from './mr-memory.js';
import type { MrTable, PdRef } from './mr.js';
import type { SgList } from './sgl.js';

/** Messages from this size up take the single-copy path. */
export const VM_MIN_BYTES = 64 << 10;
/** BTH byte 8 (A | resv7): the lowest reserved bit marks a by-reference payload. */
const VM_FLAG = 0x01;
/**
 * Per range: address u64, length u32, then the shared region it lies in
 * (mr-memory.ts): its descriptor + 1 u32 (0: none), the offset in it u64,
 * its nonce u32 u32.
 */
const SEG_BYTES = 32;

/**
 * Transfers done by reference in this process: as the responder (pulls for
 * WRITE, pushes for READ), as a READ's requester copying from the
 * responder's region (readPulls), and READs done with no responder at all
 * (direct: directory.ts).
 */
export const vmCounters = { pulls: 0, pushes: 0, bytes: 0, mapped: 0, readPulls: 0, direct: 0 };

/** Buffers that arrived through a shared-memory ring (not from the network). */
export const fromRing = new WeakSet<Uint8Array>();

export function isVmRef(buf: Uint8Array): boolean {
  return (buf[8]! & VM_FLAG) !== 0;
}

export function markVmRef(buf: Uint8Array): void {
  buf[8] = buf[8]! | VM_FLAG;
}

/** Bytes a descriptor of `numSge` ranges takes. */
export function vmDescBytes(numSge: number): number {
  return 8 + numSge * SEG_BYTES;
}

/**
 * Writes the descriptor of `sgl` (this process's pid and the real address of
 * each SGE's bytes) at `off` of `buf`. Returns its length, or -1 when an SGE
 * no longer resolves.
 */
export function encodeVmDesc(buf: Uint8Array, off: number, mrs: MrTable, pd: PdRef, sgl: SgList, access: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset + off, vmDescBytes(sgl.numSge));
  dv.setUint32(0, process.pid);
  dv.setUint32(4, sgl.numSge);
  for (let i = 0; i < sgl.numSge; i++) {
    const key = sgl.sgeKey[i]!;
    const len = sgl.sgeLen[i]!;
    const mrOff = mrs.resolve(key, pd, sgl.sgeAddr[i]!, len, access);
    if (mrOff < 0) return -1;
    const mem = mrs.bufferOf(key);
    const at = 8 + i * SEG_BYTES;
    dv.setBigUint64(at, addressOf(mem) + BigInt(mrOff));
    dv.setUint32(at + 8, len);
    const region = sharedRegionOf(mem);
    dv.setUint32(at + 12, region ? region.fd + 1 : 0);
    dv.setBigUint64(at + 16, BigInt(region ? mem.byteOffset + mrOff : 0));
    dv.setUint32(at + 24, region ? region.nonceHi : 0);
    dv.setUint32(at + 28, region ? region.nonceLo : 0);
  }
  return vmDescBytes(sgl.numSge);
}

export const enum VmResult {
  OK,
  /** The descriptor is malformed or does not add up to the message length. */
  BAD_DESC,
  /** The other process refused or its memory is not there (EPERM, EFAULT). */
  FAULT,
  /** The other process is gone (ESRCH). */
  GONE,
}

/**
 * Moves `length` bytes between `mem[memOff...]` and the ranges of the
 * descriptor at `buf[off, off + len)`, whose pid must be `pid`: pull reads
 * from the peer into mem (WRITE), push writes mem into the peer (READ).
 */
export function vmMove(pull: boolean, buf: Uint8Array, off: number, len: number, pid: number, mem: Uint8Array, memOff: number, length: number): VmResult {
  if (len < 8) return VmResult.BAD_DESC;
  const dv = new DataView(buf.buffer, buf.byteOffset + off, len);
  const n = dv.getUint32(4);
  if (dv.getUint32(0) !== pid || n === 0 || len < vmDescBytes(n)) return VmResult.BAD_DESC;
  let total = 0;
  for (let i = 0; i < n; i++) total += dv.getUint32(8 + i * SEG_BYTES + 8);
  if (total !== length) return VmResult.BAD_DESC;
  try {
    let at = memOff;
    for (let i = 0; i < n; i++) {
      const rec = 8 + i * SEG_BYTES;
      const l = dv.getUint32(rec + 8);
      if (l === 0) continue;
      const view = mem.subarray(at, at + l);
      const fd1 = dv.getUint32(rec + 12);
      const region = fd1 !== 0 ? peerRegion(pid, fd1 - 1, dv.getUint32(rec + 24), dv.getUint32(rec + 28)) : undefined;
      const segOff = Number(dv.getBigUint64(rec + 16));
      if (region && segOff + l <= region.length) {
        if (pull) view.set(region.subarray(segOff, segOff + l));
        else region.set(view, segOff);
        vmCounters.mapped++;
      } else {
        const addr = dv.getBigUint64(rec);
        if (pull) vmRead(pid, addr, view);
        else vmWrite(pid, addr, view);
      }
      at += l;
    }
    if (pull) vmCounters.pulls++;
    else vmCounters.pushes++;
    vmCounters.bytes += length;
  } catch (err) {
    if (err instanceof VmNoProcessError) return VmResult.GONE;
    if (err instanceof VmFaultError) return VmResult.FAULT;
    return VmResult.FAULT;
  }
  return VmResult.OK;
}

// A READ whose source is a shared region (regMr(pd, length) memory) is
// answered differently: the responder makes its checks and replies with
// where the bytes lie in its region, and the requester copies them itself.
// The copy then runs in the process that waits for the bytes (the sink of
// a stream is often idle, its source busy filling the buffer it reads from)
// and as a memcpy out of a mapping kept per region. Correct programs cannot
// tell: the requester completes the READ only after its copy, and nothing
// tells the responder's application that a READ happened before that.
// Layout: pid u32, region descriptor + 1 u32, address u64 (for
// process_vm_readv when the region cannot be mapped), offset in the region
// u64 (its header page included), nonce u32 u32.
export const VM_SOURCE_BYTES = 32;

/**
 * Writes where `mem[memOff...]` lies (a shared region of this process) at
 * `off` of `buf`; returns VM_SOURCE_BYTES, or 0 when `mem` is not a shared
 * region (the responder then pushes the bytes itself).
 */
export function encodeVmSource(buf: Uint8Array, off: number, mem: Uint8Array, memOff: number): number {
  const region = sharedRegionOf(mem);
  if (!region) return 0;
  const dv = new DataView(buf.buffer, buf.byteOffset + off, VM_SOURCE_BYTES);
  dv.setUint32(0, process.pid);
  dv.setUint32(4, region.fd + 1);
  dv.setBigUint64(8, addressOf(mem) + BigInt(memOff));
  dv.setBigUint64(16, BigInt(mem.byteOffset + memOff));
  dv.setUint32(24, region.nonceHi);
  dv.setUint32(28, region.nonceLo);
  return VM_SOURCE_BYTES;
}

/**
 * The `length` bytes a READ response's source descriptor names, in process
 * `pid` (the peer the response came from): a view of the peer's mapped
 * region, or a copy read with process_vm_readv when it cannot be mapped.
 * Undefined when the descriptor is malformed or names another process;
 * throws the VmError of a failed process_vm_readv.
 */
export function vmSourceBytes(buf: Uint8Array, off: number, len: number, pid: number, length: number): Uint8Array | undefined {
  if (len !== VM_SOURCE_BYTES) return undefined;
  const dv = new DataView(buf.buffer, buf.byteOffset + off, len);
  const fd1 = dv.getUint32(4);
  if (dv.getUint32(0) !== pid || fd1 === 0) return undefined;
  const segOff = Number(dv.getBigUint64(16));
  const region = peerRegion(pid, fd1 - 1, dv.getUint32(24), dv.getUint32(28));
  let bytes: Uint8Array;
  if (region && segOff + length <= region.length) {
    bytes = region.subarray(segOff, segOff + length);
    vmCounters.mapped++;
  } else {
    bytes = new Uint8Array(length);
    vmRead(pid, dv.getBigUint64(8), bytes);
  }
  vmCounters.readPulls++;
  vmCounters.bytes += length;
  return bytes;
}

/** Access a requester's SGEs need for a by-reference message: READ lands in them. */
export function vmLocalAccess(isRead: boolean): number {
  return isRead ? Access.LOCAL_WRITE : 0;
}
