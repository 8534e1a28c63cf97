import { afterEach, describe, expect, it } from 'vitest';
import { freePort, killAll, serverAndClient } from './helpers/cli.js';

afterEach(killAll);

const ADDR = /^ {2}(local|remote) address: {1,2}LID 0x([0-9a-f]{4}), QPN 0x([0-9a-f]{6}), PSN 0x([0-9a-f]{6}), GID (\S+)$/;

function addresses(out: string): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (const line of out.split('\n')) {
    const m = ADDR.exec(line);
    if (m) found[m[1]!] = [m[2]!, m[3]!, m[4]!, m[5]!];
  }
  return found;
}

async function pingpong(kind: 'rc' | 'uc' | 'ud' | 'srq', extra: string[], iters: number, size: number) {
  const port = String(await freePort());
  const common = [`${kind}-pingpong`, '-p', port, '-n', String(iters), '-s', String(size), ...extra];
  const { server, client } = await serverAndClient(common, [...common, '127.0.0.1'], /local address:/);
  for (const r of [server, client]) {
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${size * iters * 2} bytes in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d Mbit/sec$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${iters} iters in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d usec/iter$`, 'm'));
  }
  // Each side's remote address is the other's local one; the LID carries
  // the ephemeral UDP port (never 0 here, since these devices are not on 4791).
  const s = addresses(server.stdout);
  const c = addresses(client.stdout);
  expect(s.local).toEqual(c.remote);
  expect(c.local).toEqual(s.remote);
  expect(s.local![0]).not.toBe('0000');
  expect(s.local![3]).toBe('::ffff:127.0.0.1');
  return { server, client };
}

describe('rc-, uc-, ud- and srq-pingpong between two processes', () => {
  it('rc-pingpong: both sides exit 0 and print the ibv_rc_pingpong lines', async () => {
    await pingpong('rc', [], 50, 4096);
  });

  it('rc-pingpong -e sleeps on the completion channel; -m sets the path MTU', async () => {
    await pingpong('rc', ['-e', '-m', '2048'], 50, 10_000);
  });

  it('uc-pingpong: both sides exit 0 and print the ibv_uc_pingpong lines (multi-packet messages at -m 1024)', async () => {
    await pingpong('uc', ['-m', '1024'], 50, 4096);
  });

  it('srq-pingpong: 8 QPs share one SRQ; 400 exchanges over all of them, refilling the SRQ from 40 receives', async () => {
    const { server, client } = await pingpong('srq', ['-q', '8', '-r', '40'], 400, 1000);
    for (const out of [server.stdout, client.stdout]) {
      expect(out.match(/^ {2}local address:/gm)).toHaveLength(8);
      expect(out.match(/^ {2}remote address:/gm)).toHaveLength(8);
    }
  });

  it('srq-pingpong -e', async () => {
    await pingpong('srq', ['-e', '-q', '3'], 60, 64);
  });

  it('ud-pingpong: both sides exit 0 and print the ibv_ud_pingpong lines', async () => {
    await pingpong('ud', [], 50, 2048);
  });

  it('ud-pingpong -e', async () => {
    await pingpong('ud', ['-e'], 50, 100);
  });
});
