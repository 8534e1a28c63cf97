// sysStatus(): which native primitives work in this process and, for each
// one that does not, why. Each feature is probed once, by using it.
import { sameHostKey } from './host.js';
import { sysUnavailableReason, trySys } from './load.js';
import { rawSocketsAvailable } from './raw.js';

export interface SysFeature {
  on: boolean;
  /** Why the feature is off. */
  reason?: string;
}

export interface SysStatus {
  /** The ibal_sys addon itself. */
  addon: SysFeature;
  /** POSIX shared memory segments (shm_open/mmap). */
  shm: SysFeature;
  /** Futex doorbells (wait never blocks the event loop). */
  futex: SysFeature;
  /** process_vm_writev/readv (single-copy RDMA between local processes). */
  vm: SysFeature;
  /** sendmmsg/recvmmsg batched UDP. */
  mmsg: SysFeature;
  /** Raw IPv4 RoCEv2 wire (IP_HDRINCL; root or CAP_NET_RAW). */
  raw: SysFeature;
  /** UDP_NO_CHECK6_RX on IPv6 UDP sockets. */
  noCheck6Rx: SysFeature;
  /** boot id / network namespace key of this host, when /proc has it. */
  sameHostKey?: string;
}

let cached: SysStatus | undefined;

function probe(fn: () => void): SysFeature {
  try {
    fn();
    return { on: true };
  } catch (err) {
    return { on: false, reason: (err as Error).message };
  }
}

/** Which native features are on here, and why the others are off. */
export function sysStatus(): SysStatus {
  if (cached) return cached;
  const addon = trySys();
  const key = sameHostKey();
  if (!addon) {
    const off = { on: false, reason: sysUnavailableReason() };
    cached = { addon: off, shm: off, futex: off, vm: off, mmsg: off, raw: off, noCheck6Rx: off, sameHostKey: key };
    return cached;
  }
  const name = `/ibal-${process.pid}-probe`;
  let buf: ArrayBuffer | undefined;
  const shm = probe(() => {
    buf = addon.shmMap(name, 4096, true);
    addon.shmUnlink(name);
  });
  const futex = probe(() => {
    const b = buf ?? new ArrayBuffer(8);
    addon.futexWake(b, 0, 1);
    if (addon.futexWaitSync(b, 0, 1, 0, 0) !== 0) throw new Error('futex wait did not see the word differ');
  });
  const vm = probe(() => {
    const src = new Uint8Array(64).fill(7);
    const dst = new Uint8Array(64);
    addon.vmTransfer(false, process.pid, dst, 0, 64, addon.addressOf(src));
    if (dst[63] !== 7) throw new Error('process_vm_readv returned wrong bytes');
  });
  if (buf) addon.detach(buf);
  const mmsg = probe(() => new addon.BatchSocket({ kind: 'udp', family: 4, address: '127.0.0.1', port: 0 }).close());
  const noCheck6Rx = probe(() => new addon.BatchSocket({ kind: 'udp', family: 6, address: '::1', port: 0, noCheck6Rx: true }).close());
  const r = rawSocketsAvailable();
  cached = {
    addon: { on: true },
    shm,
    futex,
    vm,
    mmsg,
    raw: r.ok ? { on: true } : { on: false, reason: r.reason },
    noCheck6Rx,
    sameHostKey: key,
  };
  return cached;
}
