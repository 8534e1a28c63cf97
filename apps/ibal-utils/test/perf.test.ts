import { afterEach, describe, expect, it } from 'vitest';
import { freePort, killAll, serverAndClient } from './helpers/cli.js';

afterEach(killAll);

const READY = /Waiting for client to connect/;

interface PerfDoc {
  test_info: { test: string; side: string; Mtu: number };
  results: Record<string, number>[];
  soft_counters?: Record<string, number>;
}

async function perf(test: string, mode: 'bw' | 'lat', sizes: string, iters: number, json = true, extra: string[] = []) {
  const port = String(await freePort());
  const args = ['perf', test, `--${mode}`, '-p', port, ...(json ? ['--json'] : [])];
  const { server, client } = await serverAndClient(args, [...args, '127.0.0.1', '--sizes', sizes, '-n', String(iters), ...extra], READY);
  expect(client.stderr).toBe('');
  expect(client.code).toBe(0);
  expect(server.code).toBe(0);
  return { server, client };
}

const BW_KEYS = ['MsgSize', 'n_iterations', 'BW_peak', 'BW_average', 'MsgRate'];
const LAT_KEYS = ['MsgSize', 'n_iterations', 't_min', 't_max', 't_typical', 't_avg', 't_stdev', 'percentile_99', 'percentile_99.9'];

describe('ibal perf between two processes, --json', () => {
  for (const test of ['write', 'read', 'send', 'atomic']) {
    const sizes = test === 'atomic' ? [8] : [8, 4096, 65536];
    for (const mode of ['bw', 'lat'] as const) {
      it(`${test} --${mode}: one JSON document per side, every row positive`, async () => {
        const { server, client } = await perf(test, mode, sizes.join(','), mode === 'bw' ? 200 : 50);
        const doc = JSON.parse(client.stdout) as PerfDoc;
        expect(doc.test_info.side).toBe('client');
        expect(doc.test_info.test).toMatch(mode === 'bw' ? /_BW_Test$/ : /_Latency_Test$/);
        expect(doc.results.map((r) => r.MsgSize)).toEqual(sizes);
        for (const row of doc.results) {
          expect(Object.keys(row)).toEqual(mode === 'bw' ? BW_KEYS : LAT_KEYS);
          expect(row.n_iterations).toBe(mode === 'bw' ? 200 : 50);
          for (const [k, v] of Object.entries(row)) {
            expect(v, k).toBeGreaterThan(0);
            expect(Number.isFinite(v), k).toBe(true);
          }
          if (mode === 'lat') {
            expect(row.t_min).toBeLessThanOrEqual(row.t_typical!);
            expect(row.t_typical).toBeLessThanOrEqual(row.t_max!);
          }
        }
        // The server prints the same rows, and nothing but the document on stdout.
        const sdoc = JSON.parse(server.stdout) as PerfDoc;
        expect(sdoc.test_info.side).toBe('server');
        expect(sdoc.results).toEqual(doc.results);
      });
    }
  }
});

describe('ibal perf extras', () => {
  it('--warmup runs untimed iterations first; the JSON carries the soft device counters', async () => {
    const { client } = await perf('send', 'bw', '1024,8192', 100, true, ['--warmup', '50']);
    const doc = JSON.parse(client.stdout) as PerfDoc;
    expect(doc.results.map((r) => [r.MsgSize, r.n_iterations])).toEqual([
      [1024, 100],
      [8192, 100],
    ]);
    const c = doc.soft_counters!;
    // 150 sends of 1 KiB (one packet each) and 150 of 8 KiB (two each at a 4096 MTU), plus retransmissions if any.
    expect(c.wireTxPackets).toBeGreaterThanOrEqual(150 + 300);
    expect(c.txRetransmits).toBeGreaterThanOrEqual(0);
  });
});

describe('ibal perf tables', () => {
  it('write --bw prints perftest\'s columns and one row per size', async () => {
    const { client } = await perf('write', 'bw', '64,1024', 100, false);
    const lines = client.stdout.split('\n');
    const h = lines.indexOf(' #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]');
    expect(h).toBeGreaterThan(0);
    expect(lines[h + 1]).toMatch(/^ 64 +100 +\d+\.\d\d +\d+\.\d\d +\d+\.\d{6}$/);
    expect(lines[h + 2]).toMatch(/^ 1024 +100 +\d+\.\d\d +\d+\.\d\d +\d+\.\d{6}$/);
    expect(client.stdout).toContain('RDMA_Write BW Test');
    expect(client.stdout).toMatch(/ local address: LID 0x[0-9a-f]{4} QPN 0x[0-9a-f]{6} PSN 0x[0-9a-f]{6} RKey 0x[0-9a-f]{8} VAddr 0x[0-9a-f]{16}/);
  });

  it('send --lat prints perftest\'s latency columns', async () => {
    const { client } = await perf('send', 'lat', '2', 50, false);
    expect(client.stdout).toContain(' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]');
    expect(client.stdout).toMatch(/^ 2 +50( +\d+\.\d\d){7}$/m);
  });
});
