// Eight known bytes at a known address: a peer that reads them back with
// process_vm_readv has shown the kernel lets it reach our memory. Being on
// one host is not enough: Yama's ptrace_scope 1 (Ubuntu's default) refuses
// it between processes that are not parent and child, and the kernel does
// for a process that is not dumpable.
import { sysStatus } from './status.js';
import { addressOf, vmRead } from './vm.js';

/** What a process hands its peers: where its probe is (decimal) and what it holds (hex). */
export interface VmProbe {
  addr: string;
  magic: string;
}

let probe: (VmProbe & { buf: Uint8Array }) | undefined;

/** This process's probe, or undefined where process_vm_* is unavailable. */
export function vmProbe(): VmProbe | undefined {
  if (!sysStatus().vm.on) return undefined;
  if (!probe) {
    const buf = new Uint8Array(8);
    for (let i = 0; i < 8; i++) buf[i] = (Math.random() * 256) | 0;
    probe = { buf, addr: addressOf(buf).toString(), magic: Buffer.from(buf).toString('hex') };
  }
  return { addr: probe.addr, magic: probe.magic };
}

/** Whether process `pid`'s probe (as it described it; anything else is refused) reads back here. */
export function vmCanRead(pid: number, addr: unknown, magic: unknown): boolean {
  if (typeof addr !== 'string' || typeof magic !== 'string' || !/^\d+$/.test(addr) || !sysStatus().vm.on) return false;
  try {
    const got = new Uint8Array(8);
    vmRead(pid, BigInt(addr), got);
    return Buffer.from(got).toString('hex') === magic;
  } catch {
    return false;
  }
}
