// UD multicast between hosts: three network namespaces on a bridge, a soft
// device on each namespace's veth address. Two join a group; the third
// sends to it; both members get every datagram, with the sender's address
// and the group in the GRH. The IGMP joins and the bridge's forwarding are
// the kernel's, as on a real link.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { bridgedHosts, netnsSkipReason, sh } from '@ibal/tooling/netns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'mcast-member.mjs');
const hosts = bridgedHosts('vm', 3, 150, { bridgeAddress: false, ipv6: true });
const NS = hosts.namespaces;
const group = `239.${(process.pid >> 8) & 0xff}.${process.pid & 0xff}.9`;
const group6 = `ff15::${(process.pid % 65536).toString(16)}:9`;
const skipReason = netnsSkipReason();

interface Member {
  proc: ChildProcess;
  lines: string[];
  exit: Promise<number>;
  waitFor(pred: (l: string) => boolean, ms: number): Promise<void>;
}

function member(ns: string, args: string[]): Member {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exit = new Promise<number>((resolve) => proc.once('close', (code) => resolve(code ?? 1)));
  return {
    proc,
    lines,
    exit,
    async waitFor(pred, ms) {
      const end = Date.now() + ms;
      while (!lines.some(pred)) {
        if (Date.now() > end || proc.exitCode !== null) throw new Error(`${ns} ${args[0]}: no matching line within ${ms} ms; stdout ${lines.join(' | ')}; stderr ${stderr}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

describe.skipIf(skipReason !== undefined)(`UD multicast between namespaces as hosts${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const started: Member[] = [];
  beforeAll(() => {
    hosts.setUp();
    // A second interface in each namespace that the routing table prefers
    // for the test's groups: a socket that does not name the device's
    // interface sends and joins there, and nothing arrives.
    for (const [i, ns] of NS.entries()) {
      // (A veth pair with both ends inside: this kernel has no dummy devices.)
      const [x, y] = [`vmx${i}`, `vmy${i}`];
      for (const cmd of [
        ['ip', 'link', 'add', x, 'type', 'veth', 'peer', 'name', y],
        ['ip', 'link', 'set', x, 'up'],
        ['ip', 'link', 'set', y, 'up'],
        ['ip', '-6', 'route', 'add', 'multicast', 'ff15::/16', 'dev', x, 'table', 'local', 'metric', '1'],
        ['ip', 'route', 'add', '239.0.0.0/8', 'dev', x],
      ]) {
        const r = sh(['ip', 'netns', 'exec', ns, ...cmd]);
        if (!r.ok) throw new Error(`${cmd.join(' ')} in ${ns}: ${r.err}`);
      }
    }
  });

  afterAll(() => {
    for (const m of started) if (m.proc.exitCode === null) m.proc.kill('SIGKILL');
    hosts.tearDown();
  });

  for (const v of [4, 6] as const) {
    it(`IPv${v}: a send to the group reaches the members on the other two hosts, each datagram once`, async () => {
      const N = 5;
      const ip = v === 4 ? hosts.hostIp : hosts.hostIp6;
      const g = v === 4 ? group : group6;
      const receivers = [member(NS[1]!, ['recv', ip(1), g, String(N)]), member(NS[2]!, ['recv', ip(2), g, String(N)])];
      started.push(...receivers);
      for (const r of receivers) await r.waitFor((l) => l === 'ready', 15_000);
      const sender = member(NS[0]!, ['send', ip(0), g, String(N)]);
      started.push(sender);
      expect(await sender.exit).toBe(0);
      for (const r of receivers) {
        expect(await r.exit).toBe(0);
        const got = r.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { text: string; src: string; dst: string });
        expect(got.map((x) => x.text)).toEqual(Array.from({ length: N }, (_, i) => `news ${i} from ${ip(0)}`));
        for (const x of got) expect([x.src, x.dst]).toEqual([ip(0), g]);
      }
    }, 60_000);
  }
});
