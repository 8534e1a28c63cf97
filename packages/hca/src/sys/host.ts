// "Same host" for the fast path means: one kernel boot (so one physical
// memory, one futex namespace) and one network namespace (so the addresses a
// peer announced mean the same thing to both). The pid is not part of the
// key: two processes with equal keys can share memory.
import fs from 'node:fs';

export interface HostIdentity {
  /** /proc/sys/kernel/random/boot_id: changes on every boot. */
  bootId: string;
  /** The inode of /proc/self/ns/net. */
  netns: number;
  pid: number;
}

let cached: { bootId: string; netns: number } | undefined;

/** This process's host identity, or undefined where /proc does not tell. */
export function hostIdentity(): HostIdentity | undefined {
  if (!cached) {
    try {
      const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const netns = fs.statSync('/proc/self/ns/net').ino;
      cached = { bootId, netns };
    } catch {
      return undefined;
    }
  }
  return { ...cached, pid: process.pid };
}

/** "<boot id>/<netns inode>": equal keys mean the shared-memory path can be used. */
export function sameHostKey(): string | undefined {
  const id = hostIdentity();
  return id ? `${id.bootId}/${id.netns}` : undefined;
}
