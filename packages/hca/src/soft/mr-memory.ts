// Memory the soft HCA hands out for regMr(pd, length): large regions live in
// anonymous shared memory (memfd) instead of the V8 heap. A peer process on
// the same host can then map the region and move a large RDMA WRITE or READ
// with one memcpy (vm-path.ts), as fast as the CPU copies, where
// process_vm_readv/writev pays for pinning pages on every call.
//
// The region has no name: its descriptor stays open while the memory lives,
// and a peer of the same user maps it through /proc/<pid>/fd/<fd> (the
// kernel asks for the same ptrace access as process_vm_*). A process that
// dies leaves nothing in /dev/shm; its descriptors close with it. Because a
// closed descriptor's number is reused, the region's first page holds a
// random nonce that every descriptor also carries: a mapping is used only
// while the nonce in it matches. The caller's bytes start after that page.
//
// Only this process's MRs can name a region, and rkey, bounds and access
// checks still decide what a peer may do: mapping only lets the peer's HCA
// copy faster what it may copy anyway.
//
// A peer's mapping keeps the region's pages alive after the owner lets go of
// them, so the header also counts the MRs registered over the region: a peer
// unmaps what it cached of a region nobody has registered any more (an SDP
// connection's closed 8 MiB window, say) instead of holding it until 64 newer
// regions push it out.
import { randomFillSync } from 'node:crypto';
import { sys } from '../sys/load.js';
import { sysStatus } from '../sys/status.js';

/** Below this, regions stay on the heap: the by-reference path starts at 64 KiB anyway. */
export const SHARED_MR_MIN_BYTES = 64 << 10;

/** The first page of a region: magic, MRs registered over it, nonce; the caller's bytes follow. */
export const REGION_HEADER = 4096;
const MAGIC = 0x49424d52; // 'IBMR'
/** Header word counting the MRs over the region, kept by the owner with Atomics. */
const USERS = 1;

export interface SharedRegion {
  /** The descriptor that keeps it, in this process. */
  readonly fd: number;
  /** The header's words, for the count of MRs over the region. */
  readonly head: Uint32Array;
  /** The random identity stored in its first page, as two 32-bit halves. */
  readonly nonceHi: number;
  readonly nonceLo: number;
}

const regions = new WeakMap<ArrayBuffer, SharedRegion>();

/** IBAL_SOFT_SHM=0 or IBAL_SOFT_VM=0 keep every region on the heap, like the rest of the same-host path. */
function sharedAllowed(): boolean {
  if (process.env.IBAL_SOFT_SHM === '0' || process.env.IBAL_SOFT_VM === '0') return false;
  return sysStatus().shm.on;
}

/**
 * Zeroed memory for an MR of `length` bytes: a shared region when it is
 * large and shared memory works here, else the heap.
 */
export function allocRegionMemory(length: number): Uint8Array {
  if (length >= SHARED_MR_MIN_BYTES && sharedAllowed()) {
    try {
      const { buffer, fd } = sys().memfdMap(REGION_HEADER + length);
      const head = new Uint32Array(buffer, 0, 4);
      randomFillSync(head, 2, 2);
      head[0] = MAGIC;
      regions.set(buffer, { fd, head, nonceHi: head[2]!, nonceLo: head[3]! });
      return new Uint8Array(buffer, REGION_HEADER, length);
    } catch {
      // Out of memory for tmpfs, or no addon after all: the heap serves.
    }
  }
  return new Uint8Array(length);
}

/** The region behind `mem`, when it is shared memory this process allocated. */
export function sharedRegionOf(mem: Uint8Array): SharedRegion | undefined {
  return regions.get(mem.buffer as ArrayBuffer);
}

/**
 * An MR over `mem` was registered (+1) or deregistered (-1): peers keep
 * their mappings of a region only while some MR is over it. When the last
 * MR goes, so does the region's descriptor (GC, which would close it with
 * the memory, counts memory, not descriptors: registering and deregistering
 * 64 KiB MRs in a loop ran out of them at the default limit of 1024), and
 * the memory is plain memory from then on: registered again, it is moved
 * with process_vm_* instead of a peer's mapping.
 */
export function regionUsers(mem: Uint8Array, delta: 1 | -1): void {
  const region = sharedRegionOf(mem);
  // A region detached under its MR (transferred away) has no header left to count in.
  if (!region || region.head.length <= USERS) return;
  if (Atomics.add(region.head, USERS, delta) + delta > 0) return;
  const release = sys().releaseFd;
  if (!release) return;
  regions.delete(mem.buffer as ArrayBuffer);
  release.call(sys(), mem.buffer as ArrayBuffer);
}

// Peers' regions this process has mapped, by "pid:fd:nonce". Bounded: each
// holds a mapping (and keeps the peer's memory alive) until evicted, by
// room, by its owner deregistering every MR over it (seen at the next
// mapping or sweep), or by the owner's link going away.
const MAX_MAPPED = 64;
const mapped = new Map<string, Uint8Array | null>();
/** How often cached mappings are checked for regions their owner no longer uses, while any are cached. */
const SWEEP_MS = 1000;
let sweeper: NodeJS.Timeout | undefined;

function nonceMatches(view: Uint8Array, hi: number, lo: number): boolean {
  if (view.byteLength < REGION_HEADER) return false;
  const head = new Uint32Array(view.buffer, view.byteOffset, 4);
  return head[0] === MAGIC && head[2] === hi && head[3] === lo;
}

/**
 * A new mapping of a peer's region (its first page included), which the
 * caller owns and must detach; undefined when it cannot be mapped or is not
 * the region the descriptor means.
 */
export function mapPeerRegion(pid: number, fd: number, hi: number, lo: number): Uint8Array | undefined {
  try {
    const v = new Uint8Array(sys().fileMap(`/proc/${pid}/fd/${fd}`));
    if (nonceMatches(v, hi, lo)) return v;
    sys().detach(v.buffer);
  } catch {
    // gone, or not ours to map
  }
  return undefined;
}

/**
 * The bytes of a peer's region (its first page included, so offsets are
 * the peer's byteOffsets), mapped on first use; undefined when it cannot be
 * mapped or is not the region the descriptor means: the caller falls back
 * to process_vm_*.
 */
export function peerRegion(pid: number, fd: number, hi: number, lo: number): Uint8Array | undefined {
  const key = `${pid}:${fd}:${hi}:${lo}`;
  let view = mapped.get(key);
  if (view === undefined) {
    sweepPeerRegions();
    view = mapPeerRegion(pid, fd, hi, lo) ?? null;
    if (mapped.size >= MAX_MAPPED) evict(mapped.keys().next().value!);
    mapped.set(key, view);
    if (view) sweeper ??= setInterval(sweepPeerRegions, SWEEP_MS).unref();
  }
  return view ?? undefined;
}

/**
 * Unmaps cached regions that no MR is over any more. Views handed out are
 * used at once, never kept across a turn of the event loop, so none is in
 * use here.
 */
export function sweepPeerRegions(): void {
  for (const [key, v] of mapped) {
    if (v && Atomics.load(new Uint32Array(v.buffer, v.byteOffset, 2), USERS) === 0) evict(key);
  }
}

function evict(key: string): void {
  const v = mapped.get(key);
  mapped.delete(key);
  if (v) sys().detach(v.buffer as ArrayBuffer);
  if (sweeper && mappedPeerRegions() === 0) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/** How many peer regions this process holds mapped (tests watch it). */
export function mappedPeerRegions(): number {
  let n = 0;
  for (const v of mapped.values()) if (v) n++;
  return n;
}

/** A peer process is gone (or replaced): unmap what we mapped of it. */
export function forgetPeerRegions(pid: number): void {
  const prefix = `${pid}:`;
  for (const key of [...mapped.keys()]) if (key.startsWith(prefix)) evict(key);
}
