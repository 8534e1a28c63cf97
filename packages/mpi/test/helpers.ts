// Starts a job of N node processes the way `mpilite run` does (a rendezvous
// server here, MPILITE_* in each rank's environment) and collects its
// output. Every process is killed by pid in the end, whatever happens.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RendezvousServer, type AbortInfo } from '../src/index.js';

export const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

export interface JobResult {
  codes: (number | null)[];
  signals: (string | null)[];
  stdout: string[];
  stderr: string[];
  abort: AbortInfo | undefined;
  ms: number;
}

export interface JobOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Runs once every rank has started. */
  onStart?: (children: ChildProcess[]) => void;
  /** Called with each stdout chunk. */
  onOutput?: (rank: number, text: string) => void;
}

/** `script`: a file in fixtures/, or an absolute path. */
export async function runJob(n: number, script: string, args: string[] = [], o: JobOptions = {}): Promise<JobResult> {
  const jobId = `test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const server = new RendezvousServer({ size: n, jobId });
  const { port } = await server.listen();
  let abort: AbortInfo | undefined;
  server.on('abort', (a: AbortInfo) => (abort = a));
  try {
    const envs = Array.from({ length: n }, (_, r) => ({
      MPILITE_RANK: String(r),
      MPILITE_SIZE: String(n),
      MPILITE_LOCAL_RANK: String(r),
      MPILITE_LOCAL_SIZE: String(n),
      MPILITE_JOBID: jobId,
      MPILITE_RENDEZVOUS: `127.0.0.1:${port}`,
    }));
    const res = await runProcesses(envs, script, args, o);
    res.abort = abort;
    return res;
  } finally {
    await server.close();
  }
}

/**
 * Starts one process per entry of `envs` (added to this environment and
 * `o.env`), as a launcher that is not `mpilite run` would (srun, mpirun),
 * and waits for all of them to exit.
 */
export async function runProcesses(envs: Record<string, string>[], script: string, args: string[] = [], o: JobOptions = {}): Promise<JobResult> {
  const t0 = Date.now();
  const children: ChildProcess[] = [];
  const res: JobResult = { codes: [], signals: [], stdout: [], stderr: [], abort: undefined, ms: 0 };
  const exits: Promise<void>[] = [];
  try {
    envs.forEach((env, r) => {
      const child = spawn(process.execPath, [path.resolve(fixtures, script), ...args], { env: { ...process.env, ...o.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      res.stdout[r] = '';
      res.stderr[r] = '';
      child.stdout!.on('data', (d: Buffer) => {
        res.stdout[r] += d.toString();
        o.onOutput?.(r, d.toString());
      });
      child.stderr!.on('data', (d: Buffer) => (res.stderr[r] += d.toString()));
      exits.push(
        new Promise((resolve) =>
          child.on('exit', (code, sig) => {
            res.codes[r] = code;
            res.signals[r] = sig;
            resolve();
          }),
        ),
      );
    });
    o.onStart?.(children);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), o.timeoutMs ?? 60_000)));
    const outcome = await Promise.race([Promise.all(exits), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') throw new Error(`job ${script} did not end within ${o.timeoutMs ?? 60_000} ms:\n${res.stderr.join('\n')}\n${res.stdout.join('\n')}`);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  }
  res.ms = Date.now() - t0;
  return res;
}

/** Fails with every rank's output when any rank did not exit 0. */
export function expectClean(r: JobResult): void {
  if (r.codes.some((c) => c !== 0)) {
    throw new Error(`ranks exited ${JSON.stringify(r.codes)} ${JSON.stringify(r.signals)}\n${r.stderr.map((s, i) => `--- rank ${i} stderr\n${s}`).join('\n')}\n${r.stdout.map((s, i) => `--- rank ${i} stdout\n${s}`).join('\n')}`);
  }
}
