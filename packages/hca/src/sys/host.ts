// "Same host" for the fast path means: one kernel boot (so one physical
// memory, one futex namespace), one network namespace (so the addresses a
// peer announced mean the same thing to both) and one PID namespace (so the
// pid a peer announced is that process here: liveness checks, the pipe a
// waker writes through /proc/<pid>/fd, process_vm_* and the CM's reaction to
// a peer's exit all name it), and one /dev/shm (so a segment one creates by
// name the other can open: containers that share the host's network and
// PIDs but not its IPC, as Docker's --network host --pid host without
// --ipc host, each have a /dev/shm of their own, and an MPI init between
// them failed on the peer's segment). The pid is not part of the key: two
// processes with equal keys can share memory.
import fs from 'node:fs';

export interface HostIdentity {
  /** /proc/sys/kernel/random/boot_id: changes on every boot. */
  bootId: string;
  /** The inode of /proc/self/ns/net. */
  netns: number;
  /** The inode of /proc/self/ns/pid. */
  pidns: number;
  /** The device of the filesystem on /dev/shm (one per tmpfs mounted there); 0 without one. */
  shmDev: number;
  pid: number;
}

let cached: { bootId: string; netns: number; pidns: number; shmDev: number } | undefined;

function shmDevice(): number {
  try {
    return fs.statSync('/dev/shm').dev;
  } catch {
    return 0;
  }
}

/** This process's host identity, or undefined where /proc does not tell. */
export function hostIdentity(): HostIdentity | undefined {
  if (!cached) {
    try {
      const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const netns = fs.statSync('/proc/self/ns/net').ino;
      const pidns = fs.statSync('/proc/self/ns/pid').ino;
      cached = { bootId, netns, pidns, shmDev: shmDevice() };
    } catch {
      return undefined;
    }
  }
  return { ...cached, pid: process.pid };
}

/** "<boot id>/<netns inode>/<pidns inode>/<dev of /dev/shm>": equal keys mean the shared-memory path can be used. */
export function sameHostKey(): string | undefined {
  const id = hostIdentity();
  return id ? `${id.bootId}/${id.netns}/${id.pidns}/${id.shmDev}` : undefined;
}

/** Whether process `pid` exists (EPERM: it does, as someone else's). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
