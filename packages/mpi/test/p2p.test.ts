// Point to point between processes: non-overtaking order over 10,000 mixed
// messages, ANY_SOURCE fairness, probe then receive, requests,
// communicators (fixtures/p2p-check.mjs), over each transport.
import { describe, expect, it } from 'vitest';
import { expectClean, runJob } from './helpers.js';

describe('point to point', () => {
  it('2 ranks over shared memory', async () => {
    const r = await runJob(2, 'p2p-check.mjs');
    expectClean(r);
    expect(r.stdout[0]).toContain('p2p ok');
  });

  it('3 ranks over shared memory (with ANY_SOURCE fairness)', async () => {
    const r = await runJob(3, 'p2p-check.mjs');
    expectClean(r);
    expect(r.stdout[0]).toContain('fairness');
    for (const out of r.stdout) expect(out).toContain('p2p ok');
  });

  it('3 ranks over verbs RC (eager with credits, rendezvous by RDMA READ)', async () => {
    const r = await runJob(3, 'p2p-check.mjs', [], { env: { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' } });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('p2p ok');
  });

  it("2 ranks over verbs RC with the soft HCA's own same-host path", async () => {
    const r = await runJob(2, 'p2p-check.mjs', [], { env: { MPILITE_TRANSPORTS: 'verbs' } });
    expectClean(r);
    for (const out of r.stdout) expect(out).toContain('p2p ok');
  });

  it('without the native addon (IBAL_SYS=0) local ranks fall back to verbs', async () => {
    const r = await runJob(2, 'whoami.mjs', [], { env: { IBAL_SYS: '0' } });
    expectClean(r);
    expect(JSON.parse(r.stdout[0]!).transports).toEqual(['self', 'verbs']);
  });

  // Both directions flooded before anyone receives: each side's queue stalls
  // for credits (verbs) or ring room (shm) that only the other side returns.
  // Over verbs this hung with the default credit window before credits went
  // back in CREDIT messages while the data queue is stalled.
  for (const [name, env] of [
    ['shared memory, 4 KiB rings', { MPILITE_SHM_RING_BYTES: '4096' }],
    ['verbs RC over UDP', { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }],
    ['verbs RC over UDP, the smallest credit window', { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0', MPILITE_VERBS_CREDITS: '4' }],
    ["verbs RC, the soft HCA's same-host path", { MPILITE_TRANSPORTS: 'verbs' }],
  ] as const) {
    it(`3 ranks flood each other before receiving: ${name}`, async () => {
      const r = await runJob(3, 'exchange-flood.mjs', ['300'], { env, timeoutMs: 30_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain('exchange-flood ok');
    });
  }

  // Eager sends complete when queued; finalize must still deliver what the
  // transport holds, or the receiver waits at its Recv while the sender waits
  // at finalize's fence (it did, over every transport).
  for (const [name, env] of [
    ['shared memory', {}],
    ['verbs RC over UDP', { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }],
    ["verbs RC, the soft HCA's same-host path", { MPILITE_TRANSPORTS: 'verbs' }],
  ] as const) {
    it(`finalize delivers eager sends still queued: ${name}`, async () => {
      const r = await runJob(2, 'finalize-flush.mjs', [], { env, timeoutMs: 30_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain('finalize-flush ok');
    });
  }

  // Erroneous, but it must not hang: the sender's finalize waits for its
  // queue to drain, which the receiver's draining at its own fence allows.
  for (const [name, env] of [
    ['shared memory', {}],
    ['verbs RC over UDP', { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }],
  ] as const) {
    it(`a job whose eager sends are never received still finalizes: ${name}`, async () => {
      const r = await runJob(2, 'unmatched-sends.mjs', [], { env, timeoutMs: 30_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain('unmatched-sends ok');
    });
  }

  // MPI_Finalize waits for the other ranks however late they come, finishes
  // the pulls of receives left open, and fails (does not wait forever for)
  // sends no rank will ever receive.
  for (const [name, env] of [
    ['shared memory', {}],
    ['verbs RC over UDP', { MPILITE_TRANSPORTS: 'verbs', IBAL_SOFT_SHM: '0' }],
  ] as const) {
    it(`finalize with requests open and a rank 2 s late (bootstrap timeout 1 s): ${name}`, async () => {
      const r = await runJob(2, 'finalize-pending.mjs', ['2000'], { env: { ...env, MPILITE_BOOTSTRAP_TIMEOUT: '1' }, timeoutMs: 30_000 });
      expectClean(r);
      for (const out of r.stdout) expect(out).toContain('finalize-pending ok');
      expect(Number(/after (\d+) ms/.exec(r.stdout[0]!)![1])).toBeGreaterThan(1500);
      expect(r.stderr[1]).toContain('finalize: 2 send(s) never matched by a receive');
    });
  }

  it('everything eager or everything rendezvous (thresholds from the environment)', async () => {
    const eager = await runJob(2, 'p2p-check.mjs', [], { env: { MPILITE_SHM_EAGER_LIMIT: '131000', MPILITE_SHM_RING_BYTES: String(1 << 20) } });
    expectClean(eager);
    const rndv = await runJob(2, 'p2p-check.mjs', [], { env: { MPILITE_SHM_EAGER_LIMIT: '0' } });
    expectClean(rndv);
  });
});
