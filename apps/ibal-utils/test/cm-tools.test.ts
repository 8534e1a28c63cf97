// ibal rping and ibal cmatose between two processes, each with its own soft
// device: data verified through the CM's connections, 256 connections at
// once (also with 5% of packets dropped), refused and dead peers reported.
import { afterEach, describe, expect, it } from 'vitest';
import { CliProcess, freePort, killAll, ownDevice } from './helpers/cli.js';

afterEach(killAll);

async function server(args: string[], env: Record<string, string> = {}): Promise<{ proc: CliProcess; udp: string; port: string }> {
  const port = String(await freePort());
  const proc = new CliProcess([...args, '-p', port], { ...ownDevice('s'), ...env });
  await proc.waitFor(/listening on \S+ \(udp \d+\)/);
  const udp = /\(udp (\d+)\)/.exec(proc.stdout)![1]!;
  return { proc, udp, port };
}

function client(args: string[], env: Record<string, string> = {}): CliProcess {
  return new CliProcess(args, { ...ownDevice('c'), ...env });
}

const RESULT = /^connections: (\d+) completed, (\d+) failed(?: \((.*)\))?$/m;

function checkCmatose(out: string, total: number): { ok: number; failed: number; reasons: string[] } {
  const m = RESULT.exec(out);
  expect(m, out).not.toBeNull();
  const ok = Number(m![1]);
  const failed = Number(m![2]);
  expect(ok + failed).toBe(total);
  const reasons = m![3] ? m![3].split(', ').map((r) => r.replace(/: \d+$/, '')) : [];
  // Every failure carries a name: an IBTA REJ reason, a WC status, or an ibal error code.
  for (const r of reasons) expect(r).toMatch(/[A-Z][A-Z_]{3,}/);
  // Nothing left behind in either process once every connection is closed.
  expect(out).toMatch(/^cm resources: devices 0, ids 0, connections 0, listeners 0, timers 0$/m);
  expect(out).toMatch(/^process handles: none$/m);
  return { ok, failed, reasons };
}

describe('ibal rping', () => {
  it('client and server: 20 pings of 1000 bytes READ, WRITTEN back and validated', async () => {
    const s = await server(['rping', '-s', '-a', '127.0.0.1', '-v']);
    const c = client(['rping', '-c', '-a', '127.0.0.1', '-p', s.port, '--udp-port', s.udp, '-C', '20', '-S', '1000', '-V', '-v']);
    const [cr, sr] = await Promise.all([c.finish(45_000), s.proc.finish(45_000)]);
    expect(cr.stderr).toBe('');
    expect(cr.code).toBe(0);
    expect(cr.stdout).toMatch(/^client DISCONNECT EVENT\.\.\. \(20 pings, 20 validated\)$/m);
    expect(cr.stdout).toMatch(/^ping data: rdma-ping-19: /m);
    expect(sr.code).toBe(0);
    expect(sr.stdout).toMatch(/^server ping data: rdma-ping-0: /m);
    expect(sr.stdout).toMatch(/^server DISCONNECT EVENT\.\.\. \(20 pings\)$/m);
  });

  it('a port nobody listens on is refused with REJ INVALID_SERVICE_ID, not a hang', async () => {
    const s = await server(['rping', '-s', '-a', '127.0.0.1']);
    const other = String(Number(s.port) === 65535 ? 1 : Number(s.port) + 1);
    const r = await client(['rping', '-c', '-a', '127.0.0.1', '-p', other, '--udp-port', s.udp, '-C', '1']).finish(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/INVALID_SERVICE_ID/);
    s.proc.kill();
  });

  it('a server killed mid-run is reported by the client within its timeouts', async () => {
    const s = await server(['rping', '-s', '-a', '127.0.0.1', '-v']);
    // The goodbye to a dead peer takes the DREQ's retries: 2^(14-8) ms times 4.
    const c = client(['rping', '-c', '-a', '127.0.0.1', '-p', s.port, '--udp-port', s.udp, '-S', '256', '-V', '--timeout', '5000', '--cm-timeout', '14', '--cm-retries', '3']);
    await s.proc.waitFor(/rdma-ping-20: /);
    s.proc.kill();
    const t0 = Date.now();
    const r = await c.finish(30_000);
    expect(r.code).toBe(1);
    // RETRY_EXC_ERR from the QP's retries, or the bounded wait naming what never came.
    expect(r.stderr).toMatch(/RETRY_EXC_ERR|no completion|disconnected/);
    expect(Date.now() - t0).toBeLessThan(25_000);
  });
});

describe('ibal cmatose', () => {
  it('256 connections set up, used and torn down concurrently; nothing leaks', async () => {
    const s = await server(['cmatose', '-s', '-b', '127.0.0.1', '-c', '256']);
    const c = client(['cmatose', '-a', '127.0.0.1', '-p', s.port, '--udp-port', s.udp, '-c', '256', '-C', '10', '-S', '100']);
    const [cr, sr] = await Promise.all([c.finish(90_000), s.proc.finish(90_000)]);
    expect(cr.code, cr.stdout + cr.stderr).toBe(0);
    expect(sr.code, sr.stdout + sr.stderr).toBe(0);
    expect(checkCmatose(cr.stdout, 256).ok).toBe(256);
    expect(checkCmatose(sr.stdout, 256).ok).toBe(256);
  }, 120_000);

  it('the same with 5% of packets dropped each way: every connection completes or fails with a named reason', async () => {
    const timing = ['--cm-timeout', '16', '--cm-retries', '10'];
    const s = await server(['cmatose', '-s', '-b', '127.0.0.1', '-c', '256', ...timing], { IBAL_FAULTS: 'drop=0.05,seed=11' });
    const c = client(['cmatose', '-a', '127.0.0.1', '-p', s.port, '--udp-port', s.udp, '-c', '256', ...timing], { IBAL_FAULTS: 'drop=0.05,seed=12' });
    const [cr, sr] = await Promise.all([c.finish(150_000), s.proc.finish(150_000)]);
    const cc = checkCmatose(cr.stdout, 256);
    const sc = checkCmatose(sr.stdout, 256);
    expect(cr.code).toBe(cc.failed ? 1 : 0);
    expect(sr.code).toBe(sc.failed ? 1 : 0);
    // Loss is repaired by the CM's and the QPs' retransmissions; a handful of casualties at most.
    expect(cc.ok).toBeGreaterThan(240);
  }, 180_000);

  it('a server that died before set-up: every connect fails with the CM timeout, within the configured bound', async () => {
    const s = await server(['cmatose', '-s', '-b', '127.0.0.1', '-c', '4']);
    s.proc.kill();
    await s.proc.done;
    const t0 = Date.now();
    // 2^(14-8) = 64 ms per try, 3 retries: about a quarter second per connection.
    const r = await client(['cmatose', '-a', '127.0.0.1', '-p', s.port, '--udp-port', s.udp, '-c', '4', '--cm-timeout', '14', '--cm-retries', '3']).finish(30_000);
    expect(r.code).toBe(1);
    const { ok, failed, reasons } = checkCmatose(r.stdout, 4);
    expect([ok, failed]).toEqual([0, 4]);
    expect(reasons.join(' ')).toMatch(/TIMEOUT/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
