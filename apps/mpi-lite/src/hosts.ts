// Where ranks go: --host h1,h2:4 or a hostfile ("h1 slots=4", "h2:2", "#"
// comments), filled in order up to each host's slots, then round-robin
// again when -n asks for more (oversubscription), as mpirun maps by slot.
import fs from 'node:fs';
import os from 'node:os';

export interface HostSlot {
  host: string;
  slots: number;
}

export function parseHostList(list: string): HostSlot[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^(.*?)(?::(\d+))?$/.exec(s)!;
      return { host: m[1]!, slots: m[2] ? Number(m[2]) : 1 };
    });
}

export function parseHostfile(file: string): HostSlot[] {
  const out: HostSlot[] = [];
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [name, ...rest] = line.split(/\s+/);
    const slotsKv = rest.find((r) => r.startsWith('slots='));
    const colon = /^(.*?):(\d+)$/.exec(name!);
    out.push({ host: colon ? colon[1]! : name!, slots: slotsKv ? Number(slotsKv.slice(6)) : colon ? Number(colon[2]) : 1 });
  }
  return out;
}

/** The host of each rank. */
export function mapRanks(n: number, hosts: HostSlot[]): string[] {
  if (hosts.length === 0) return new Array<string>(n).fill('localhost');
  const out: string[] = [];
  while (out.length < n) {
    for (const h of hosts) {
      for (let s = 0; s < Math.max(1, h.slots) && out.length < n; s++) out.push(h.host);
      if (out.length >= n) break;
    }
  }
  return out;
}

export function isLocalHost(h: string): boolean {
  return h === 'localhost' || h === '127.0.0.1' || h === '::1' || h === os.hostname();
}

/** An address of this machine other hosts can probably reach (first non-internal IPv4). */
export function externalAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
