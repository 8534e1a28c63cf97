// The benchmark's worker (bench/worker.mjs) is run by `pnpm bench`, never by
// CI otherwise: these runs, with small counts and a short warm-up, keep it
// working on both transports.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Peer } from './helpers/child.js';

const worker = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'worker.mjs');
const env = { BENCH_SDP_WARMUP_MS: '50', BENCH_SDP_WARMUP_MAX_MS: '500' };
const peers: Peer[] = [];

afterAll(() => {
  for (const p of peers) p.kill();
});

async function measure(transport: string, test: string, count: number): Promise<Record<string, number>> {
  const serverKind = { latency: 'echo', throughput: 'sink', pull: 'source', onread: 'source', http: 'http' }[test]!;
  const server = new Peer([worker, 'server', transport, serverKind], env);
  peers.push(server);
  const { port, udpPort } = await server.message<{ port: number; udpPort: number }>('port');
  const client = new Peer([worker, 'client', transport, test, String(port), String(udpPort), String(count)], env);
  peers.push(client);
  const field = { latency: 'rttUs', throughput: 'mibPerSec', pull: 'mibPerSec', onread: 'mibPerSec', http: 'requestsPerSec' }[test]!;
  const r = await client.message<Record<string, number>>(field, 60_000);
  await client.exited();
  expect(client.proc.exitCode).toBe(0);
  server.kill();
  return r;
}

describe('bench worker', () => {
  for (const transport of ['sdp', 'tcp']) {
    it(`${transport}: latency, throughput both ways (the reader counts every byte, warm-up included) and HTTP`, async () => {
      const lat = await measure(transport, 'latency', 300);
      expect(lat.rttUs).toBeGreaterThan(0);
      expect(lat.rttMedianUs).toBeGreaterThan(0);
      expect(lat.rttMedianUs).toBeLessThanOrEqual(lat.rttP90Us!);
      expect(lat.rttP90Us).toBeLessThanOrEqual(lat.rttP99Us!);
      const thr = await measure(transport, 'throughput', 16);
      expect(thr.mibPerSec).toBeGreaterThan(0);
      for (const kind of ['pull', 'onread']) expect((await measure(transport, kind, 16)).mibPerSec).toBeGreaterThan(0);
      const http = await measure(transport, 'http', 200);
      expect(http.requestsPerSec).toBeGreaterThan(0);
    }, 120_000);
  }
});
