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

  it('everything eager or everything rendezvous (thresholds from the environment)', async () => {
    const eager = await runJob(2, 'p2p-check.mjs', [], { env: { MPILITE_SHM_EAGER_LIMIT: '131000', MPILITE_SHM_RING_BYTES: String(1 << 20) } });
    expectClean(eager);
    const rndv = await runJob(2, 'p2p-check.mjs', [], { env: { MPILITE_SHM_EAGER_LIMIT: '0' } });
    expectClean(rndv);
  });
});
