// The rendezvous server and client in one process, and launcher detection.
import { afterEach, describe, expect, it } from 'vitest';
import { BootstrapClient } from '../src/bootstrap/client.js';
import { derivedPort, detectLaunch } from '../src/bootstrap/launcher.js';
import { RendezvousServer, type AbortInfo } from '../src/index.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function serve(size: number, jobId = 'job') {
  const server = new RendezvousServer({ size, jobId });
  const addr = await server.listen();
  cleanup.push(() => server.close());
  return { server, addr };
}

async function join(rank: number, port: number, jobId = 'job') {
  const c = await BootstrapClient.connect({ rank, jobId, addresses: () => [{ host: '127.0.0.1', port }], timeoutMs: 5000 });
  cleanup.push(() => c.destroy());
  return c;
}

describe('rendezvous', () => {
  it('fence hands every rank every key published before it', async () => {
    const { addr } = await serve(3);
    const cs = await Promise.all([0, 1, 2].map((r) => join(r, addr.port)));
    cs.forEach((c, r) => c.put(`k${r}`, `v${r}`));
    const kvs = await Promise.all(cs.map((c) => c.fence(5000)));
    for (const kv of kvs) expect(kv).toEqual({ k0: 'v0', k1: 'v1', k2: 'v2' });
  });

  it('a client of another job is turned away, and one that connects too early retries', async () => {
    const { addr } = await serve(1, 'mine');
    await expect(BootstrapClient.connect({ rank: 0, jobId: 'other', addresses: () => [{ host: '127.0.0.1', port: addr.port }], timeoutMs: 300 })).rejects.toMatchObject({ code: 'ERR_MPI_BOOTSTRAP' });
    const ok = await join(0, addr.port, 'mine');
    expect(ok.rank).toBe(0);
  });

  it('a rank that disconnects before finalize aborts the job for every other rank', async () => {
    const { server, addr } = await serve(3);
    const cs = await Promise.all([0, 1, 2].map((r) => join(r, addr.port)));
    const seen: AbortInfo[] = [];
    cs[0]!.onAbort((i) => seen.push(i));
    cs[2]!.onAbort((i) => seen.push(i));
    const serverSaw = new Promise<AbortInfo>((resolve) => server.once('abort', resolve));
    cs[1]!.destroy();
    expect(await serverSaw).toMatchObject({ rank: 1 });
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(2);
    expect(seen.every((i) => i.rank === 1 && /before finalize/.test(i.reason))).toBe(true);
  });

  it('a fence entered after the job aborted fails at once with the abort (it waited out its timeout)', async () => {
    const { addr } = await serve(3);
    const cs = await Promise.all([0, 1, 2].map((r) => join(r, addr.port)));
    const told = new Promise<AbortInfo>((resolve) => cs[0]!.onAbort(resolve));
    cs[1]!.abort(3, 'rank 1 gave up');
    await told;
    const t0 = Date.now();
    await expect(cs[0]!.fence(60_000)).rejects.toMatchObject({ code: 'ERR_MPI_ABORTED', rank: 1, errorCode: 3 });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('finish is not taken for a failure; done fires when every rank has left', async () => {
    const { server, addr } = await serve(2);
    const cs = await Promise.all([0, 1].map((r) => join(r, addr.port)));
    const done = new Promise<void>((resolve) => server.once('done', resolve));
    await Promise.all(cs.map((c) => c.finish()));
    await done;
    expect(server.aborted).toBeUndefined();
  });

  it('a fence that not every rank reaches times out', async () => {
    const { addr } = await serve(2);
    const c = await join(0, addr.port);
    await expect(c.fence(200)).rejects.toMatchObject({ code: 'ERR_MPI_BOOTSTRAP' });
  });
});

describe('launcher detection', () => {
  it('mpilite run', () => {
    const l = detectLaunch({ MPILITE_RANK: '2', MPILITE_SIZE: '4', MPILITE_LOCAL_RANK: '0', MPILITE_LOCAL_SIZE: '2', MPILITE_JOBID: 'j', MPILITE_RENDEZVOUS: '10.0.0.1:5000' });
    expect(l).toMatchObject({ launcher: 'mpilite', rank: 2, size: 4, localRank: 0, localSize: 2, serve: false, rendezvous: { host: '10.0.0.1', port: 5000 } });
  });

  it("Open MPI's mpirun: rank 0 serves on a port derived from the job id", () => {
    const env = { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_LOCAL_RANK: '0', OMPI_COMM_WORLD_LOCAL_SIZE: '3', OMPI_MCA_ess_base_jobid: '1234', OMPI_MCA_orte_jobfam_session_dir: '/tmp/x' };
    const l = detectLaunch(env);
    expect(l).toMatchObject({ launcher: 'mpirun', rank: 0, size: 3, serve: true, rendezvous: { host: '127.0.0.1', port: derivedPort('ompi-1234') }, addressFile: '/tmp/x/mpilite-ompi-1234.addr' });
    const l1 = detectLaunch({ ...env, OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '1', OMPI_MCA_orte_hnp_uri: '1.0;tcp://192.0.2.7:4000' });
    expect(l1).toMatchObject({ serve: false, rendezvous: { host: '192.0.2.7' }, listenHost: '0.0.0.0' });
  });

  it("Slurm's srun", () => {
    const l = detectLaunch({ SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_LOCALID: '1', SLURM_JOB_ID: '77', SLURM_STEP_ID: '0', SLURM_NNODES: '1' });
    expect(l).toMatchObject({ launcher: 'srun', rank: 1, size: 2, localRank: 1, jobId: 'slurm-77.0', serve: false, rendezvous: { host: '127.0.0.1', port: derivedPort('slurm-77.0') } });
    expect(derivedPort('slurm-77.0')).toBeGreaterThanOrEqual(20000);
    expect(derivedPort('slurm-77.0')).toBeLessThan(50000);
  });

  it('no launcher: a job of one that serves itself', () => {
    expect(detectLaunch({})).toMatchObject({ launcher: 'singleton', rank: 0, size: 1, serve: true });
  });

  it('bad values are typed errors', () => {
    expect(() => detectLaunch({ OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(expect.objectContaining({ code: 'ERR_MPI_BOOTSTRAP' }));
  });
});

describe('fences and failures', () => {
  it('a pending fence rejects with JobAbortedError when a rank dies', async () => {
    const server = new RendezvousServer({ size: 3, jobId: 'f' });
    const { port } = await server.listen();
    cleanup.push(() => server.close());
    const cs = await Promise.all([0, 1, 2].map((r) => join(r, port, 'f')));
    const pending = cs[0]!.fence(10_000);
    cs[2]!.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_MPI_ABORTED', rank: 2 });
  });
});
