// init() that fails: a typed error at once for a launcher environment or a
// setting that cannot work; when one rank fails after the job met, every
// other rank fails at once with its reason (not at the bootstrap timeout);
// and a rank whose init failed exits by itself. Before, rank 0 under srun or
// mpirun kept its rendezvous server open after init rejected and never exited.
import { afterEach, describe, expect, it } from 'vitest';
import { detectLaunch } from '../src/bootstrap/launcher.js';
import { readConfig } from '../src/config.js';
import { finalize, init } from '../src/index.js';
import { runJob, runProcesses, type JobResult } from './helpers.js';

interface Outcome {
  rank: number;
  ok?: boolean;
  code?: string;
  failedRank?: number;
  message?: string;
  ms?: number;
}

function outcomes(r: JobResult): Outcome[] {
  expect(r.codes, r.stderr.join('\n')).toEqual(r.codes.map(() => 0));
  return r.stdout.map((s) => JSON.parse(s.trim()) as Outcome);
}

/** The environment srun gives task `rank` of `size` on one node. */
function srun(rank: number, size: number, job: string): Record<string, string> {
  return { SLURM_PROCID: String(rank), SLURM_NTASKS: String(size), SLURM_LOCALID: String(rank), SLURM_NNODES: '1', SLURM_JOB_ID: job, SLURM_STEP_ID: '0' };
}
const jobName = () => `init-${process.pid}-${Math.random().toString(36).slice(2)}`;

describe('init() with a launcher environment no launcher sets', () => {
  it('is a BootstrapError before anything waits', () => {
    const bad: Record<string, string>[] = [
      { MPILITE_RANK: '2', MPILITE_SIZE: '2', MPILITE_RENDEZVOUS: '127.0.0.1:9999' },
      { MPILITE_RANK: '0', MPILITE_SIZE: '0', MPILITE_RENDEZVOUS: '127.0.0.1:9999' },
      { MPILITE_RANK: '0', MPILITE_SIZE: '1', MPILITE_RENDEZVOUS: '127.0.0.1:99999' },
      { MPILITE_RANK: '0', MPILITE_SIZE: '1', MPILITE_RENDEZVOUS: 'nonsense' },
      { MPILITE_RANK: '', MPILITE_SIZE: '1', MPILITE_RENDEZVOUS: '127.0.0.1:9999' },
      { OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '2' },
      { OMPI_COMM_WORLD_RANK: '3' },
      { SLURM_PROCID: '0', SLURM_NTASKS: '0' },
      { SLURM_PROCID: '5', SLURM_NTASKS: '2' },
      { SLURM_PROCID: '0', SLURM_NTASKS: '2', MPILITE_RENDEZVOUS_PORT: '70000' },
    ];
    for (const env of bad) expect(() => detectLaunch(env), JSON.stringify(env)).toThrow(expect.objectContaining({ code: 'ERR_MPI_BOOTSTRAP' }));
  });
});

describe('init() with settings that cannot work', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it('is an InvalidArgumentError naming the setting', () => {
    const bad: Record<string, string> = {
      MPILITE_TRANSPORTS: 'verb',
      MPILITE_SHM_RING_BYTES: '5000',
      MPILITE_VERBS_CREDITS: '2',
      MPILITE_SPIN_NS: '-1',
      MPILITE_BOOTSTRAP_TIMEOUT: 'soon',
    };
    for (const [k, v] of Object.entries(bad)) {
      process.env[k] = v;
      expect(() => readConfig()).toThrow(expect.objectContaining({ code: 'ERR_IBAL_INVALID_ARGUMENT', message: expect.stringContaining(k) }));
      delete process.env[k];
    }
    process.env.MPILITE_TRANSPORTS = ' verbs , shm ';
    expect(readConfig().transports).toEqual(['verbs', 'shm']);
  });

  it('leaves init() free to be called again once the setting is mended', async () => {
    process.env.MPILITE_TRANSPORTS = 'verb';
    await expect(init()).rejects.toMatchObject({ code: 'ERR_IBAL_INVALID_ARGUMENT' });
    delete process.env.MPILITE_TRANSPORTS;
    const comm = await init();
    expect([comm.rank, comm.size]).toEqual([0, 1]);
    await finalize();
  });
});

describe('a rank whose init fails after the job met', () => {
  it('mpilite run: the others fail at once with its reason, and every rank exits by itself', async () => {
    const r = await runJob(3, 'init-fails.mjs', ['1'], { env: { MPILITE_TRANSPORTS: 'verbs', MPILITE_BOOTSTRAP_TIMEOUT: '60' }, timeoutMs: 30_000 });
    const [a, b, c] = outcomes(r);
    expect(b).toMatchObject({ code: 'ERR_IBAL_NOT_FOUND' });
    for (const o of [a!, c!]) {
      expect(o).toMatchObject({ code: 'ERR_MPI_ABORTED', failedRank: 1, message: expect.stringContaining('no-such-device') });
      // Told by rank 1, not left to the 60 s bootstrap timeout.
      expect(o.ms).toBeLessThan(30_000);
    }
  }, 40_000);

  it('srun, rank 0 serving the rendezvous fails: its server tells the others before it closes', async () => {
    const job = jobName();
    const r = await runProcesses([srun(0, 2, job), srun(1, 2, job)], 'init-fails.mjs', ['0'], { env: { MPILITE_TRANSPORTS: 'verbs', MPILITE_BOOTSTRAP_TIMEOUT: '60' }, timeoutMs: 30_000 });
    const [a, b] = outcomes(r);
    expect(a).toMatchObject({ code: 'ERR_IBAL_NOT_FOUND' });
    expect(b).toMatchObject({ code: 'ERR_MPI_ABORTED', failedRank: 0, message: expect.stringContaining('no-such-device') });
  }, 40_000);

  it('srun, rank 0 alone: init times out with a BootstrapError and the process exits (it hung)', async () => {
    const r = await runProcesses([srun(0, 2, jobName())], 'init-fails.mjs', [], { env: { MPILITE_BOOTSTRAP_TIMEOUT: '1' }, timeoutMs: 20_000 });
    expect(outcomes(r)[0]).toMatchObject({ code: 'ERR_MPI_BOOTSTRAP' });
  }, 30_000);

  it('srun, every rank well: the same fixture joins and finalizes', async () => {
    const job = jobName();
    const r = await runProcesses([srun(0, 2, job), srun(1, 2, job)], 'init-fails.mjs', [], { timeoutMs: 30_000 });
    expect(outcomes(r)).toEqual([
      { rank: 0, ok: true, size: 2 },
      { rank: 1, ok: true, size: 2 },
    ]);
  }, 40_000);
});
