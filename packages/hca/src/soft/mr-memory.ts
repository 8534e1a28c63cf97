// Memory the soft HCA hands out for regMr(pd, length): large regions live in
// a POSIX shared-memory segment instead of the V8 heap. A peer process on the
// same host can then map the segment and move a large RDMA WRITE or READ with
// one memcpy (vm-path.ts), as fast as the CPU copies, where
// process_vm_readv/writev pays for pinning pages on every call. The name
// stays linked as long as the memory lives (a peer opens it by name when a
// descriptor first names it) and follows /ibal-<pid>-<n>, so a crashed
// process's segments are swept like its rings. Only this process's MRs can
// name it, and rkey, bounds and access checks still decide what a peer may
// do; the name only lets the peer's HCA copy faster what it may copy anyway.
import { sys } from '../sys/load.js';
import { sysStatus } from '../sys/status.js';
import { ShmSegment } from '../sys/shm.js';

/** Below this, regions stay on the heap: the by-reference path starts at 64 KiB anyway. */
export const SHARED_MR_MIN_BYTES = 64 << 10;

export interface SharedRegion {
  /** The segment's name. */
  readonly name: string;
  /** Its number: the name is /ibal-<pid>-<num - 1 in base 36> (0 means no segment in a descriptor). */
  readonly num: number;
  readonly size: number;
  /** Drops the name (the memory stays valid for whoever holds it). */
  unlink(): void;
}

const regions = new WeakMap<ArrayBuffer, SharedRegion>();

function unlinkName(name: string): void {
  try {
    sys().shmUnlink(name);
  } catch {
    // swept already
  }
}

// The segment's name is removed when its memory is collected, if the MR
// did not remove it first. (The held value is the name alone: anything
// holding the buffer would keep it alive forever.)
const unlinkOnCollect = new FinalizationRegistry<string>(unlinkName);

/** IBAL_SOFT_SHM=0 keeps every region on the heap, like the rest of the same-host path. */
function sharedAllowed(): boolean {
  if (process.env.IBAL_SOFT_SHM === '0' || process.env.IBAL_SOFT_VM === '0') return false;
  return sysStatus().shm.on;
}

/**
 * Zeroed memory for an MR of `length` bytes: a shared segment when the
 * region is large and shared memory works here, else the heap.
 */
export function allocRegionMemory(length: number): Uint8Array {
  if (length >= SHARED_MR_MIN_BYTES && sharedAllowed()) {
    try {
      const seg = ShmSegment.create(length);
      const buffer = seg.buffer;
      const name = seg.name;
      let linked = true;
      const region: SharedRegion = {
        name,
        num: parseInt(name.slice(name.lastIndexOf('-') + 1), 36) + 1,
        size: seg.size,
        unlink: () => {
          if (linked) unlinkName(name);
          linked = false;
        },
      };
      regions.set(buffer, region);
      unlinkOnCollect.register(buffer, name, region);
      // The segment object is dropped, not closed: closing would detach the
      // buffer under the caller. The mapping goes when the buffer is collected.
      return new Uint8Array(buffer);
    } catch {
      // Out of /dev/shm, or no addon after all: the heap serves.
    }
  }
  return new Uint8Array(length);
}

/** The segment behind `mem`, when it is shared memory this process created. */
export function sharedRegionOf(mem: Uint8Array): SharedRegion | undefined {
  return regions.get(mem.buffer as ArrayBuffer);
}

/** The name of segment `num` of process `pid` (see SharedRegion.num). */
export function regionName(pid: number, num: number): string {
  return `/ibal-${pid}-${(num - 1).toString(36)}`;
}

// Peers' regions this process has mapped, by "pid:num". Bounded: each holds
// a mapping (and keeps the peer's memory alive) until evicted.
const MAX_MAPPED = 64;
const mapped = new Map<string, ShmSegment | null>();

/**
 * The bytes of a peer's shared region, mapped on first use; undefined when
 * it cannot be opened (deregistered meanwhile, another user's): the caller
 * falls back to process_vm_*.
 */
export function peerRegion(pid: number, num: number): Uint8Array | undefined {
  const key = `${pid}:${num}`;
  let seg = mapped.get(key);
  if (seg === undefined) {
    try {
      seg = ShmSegment.open(regionName(pid, num));
    } catch {
      seg = null;
    }
    if (mapped.size >= MAX_MAPPED) {
      const [oldKey, old] = mapped.entries().next().value!;
      mapped.delete(oldKey);
      old?.close();
    }
    mapped.set(key, seg);
  }
  return seg ? new Uint8Array(seg.buffer) : undefined;
}

/** A peer process is gone (or replaced): unmap what we mapped of it. */
export function forgetPeerRegions(pid: number): void {
  const prefix = `${pid}:`;
  for (const [key, seg] of mapped) {
    if (key.startsWith(prefix)) {
      mapped.delete(key);
      seg?.close();
    }
  }
}
