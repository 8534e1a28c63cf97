// `mpilite run`: starts N ranks (local processes, or remote ones through an
// rsh agent such as ssh), serves their rendezvous, tags their output with
// the rank, forwards stdin to rank 0 and signals to every rank, and ends
// the whole job, naming the rank, as soon as one rank fails.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { RendezvousServer } from '@ibal/mpi';
import { BindError, bindPrefixes, findProgram, type BindTo } from './bind.js';
import { externalAddress, isLocalHost, mapRanks, parseHostList, parseHostfile, type HostSlot } from './hosts.js';

export interface RunOptions {
  np: number;
  program: string;
  args: string[];
  hosts?: HostSlot[];
  /** The rsh agent for remote hosts, split on spaces (default "ssh", or MPILITE_RSH). */
  launcher?: string;
  /** Address remote ranks reach the rendezvous at (default: this host's first external IPv4). */
  rendezvousHost?: string;
  /** Prefix each output line with [rank] (default true). */
  tag?: boolean;
  /** Extra environment for every rank. */
  env?: Record<string, string>;
  /** Ends the job after this many seconds. */
  timeoutS?: number;
  /** Where output lines go (default: this process's stdout/stderr, tagged). */
  onLine?: (rank: number, stream: 'stdout' | 'stderr', line: string) => void;
  /** Forward this process's stdin to rank 0 (default true). */
  stdin?: boolean;
  /** Messages of the launcher itself. */
  log?: (line: string) => void;
  /** Bind each local rank to a core of its own (default: when they fit the cores, as mpirun). */
  bindTo?: BindTo;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
/** After a failure, how long ranks get to exit on their own before SIGKILL. */
const KILL_GRACE_MS = 3000;

const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGUSR1: 10, SIGUSR2: 12 };

function commandFor(program: string, args: string[]): string[] {
  const abs = path.resolve(program);
  return /\.(c|m)?js$/.test(program) ? [process.execPath, abs, ...args] : [program.includes('/') ? abs : program, ...args];
}

/** Runs a job; resolves with its exit code. */
export async function runJob(o: RunOptions): Promise<number> {
  // Streams whose reader went away (EPIPE): written to no more.
  const gone = new Set<NodeJS.WriteStream>();
  const write = (s: NodeJS.WriteStream, text: string): void => {
    if (!gone.has(s)) s.write(text);
  };
  const log = o.log ?? ((l: string) => write(process.stderr, `${l}\n`));
  const hosts = mapRanks(o.np, o.hosts ?? []);
  const anyRemote = hosts.some((h) => !isLocalHost(h));
  let binds: string[][];
  try {
    binds = bindPrefixes(hosts.filter((h) => isLocalHost(h)).length, o.bindTo);
  } catch (err) {
    if (err instanceof BindError) throw new UsageError(err.message);
    throw err;
  }
  const jobId = `mpilite-${process.pid}-${Date.now().toString(36)}`;
  const server = new RendezvousServer({ size: o.np, jobId, host: anyRemote ? '0.0.0.0' : '127.0.0.1' });
  const { port } = await server.listen();
  const remoteAddr = o.rendezvousHost ?? process.env.MPILITE_RENDEZVOUS_HOST ?? externalAddress();
  const agent = (o.launcher ?? process.env.MPILITE_RSH ?? 'ssh').split(/\s+/).filter(Boolean);
  const localCount = new Map<string, number>();
  for (const h of hosts) localCount.set(h, (localCount.get(h) ?? 0) + 1);
  const seen = new Map<string, number>();
  let nextLocal = 0;
  const tag = o.tag ?? true;
  const onLine =
    o.onLine ??
    ((rank: number, stream: 'stdout' | 'stderr', line: string) => {
      write(stream === 'stdout' ? process.stdout : process.stderr, tag ? `[${rank}] ${line}\n` : `${line}\n`);
    });

  const children: (ChildProcess | undefined)[] = [];
  const exited: boolean[] = new Array<boolean>(o.np).fill(false);
  let failure: { rank: number; code: number; why: string } | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let jobTimer: NodeJS.Timeout | undefined;
  let remaining = o.np;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const killAll = (sig: NodeJS.Signals): void => {
    children.forEach((c, i) => {
      if (c && !exited[i] && c.pid) {
        try {
          process.kill(c.pid, sig);
        } catch {
          /* already gone */
        }
      }
    });
  };
  const fail = (rank: number, code: number, why: string): void => {
    if (failure) return;
    failure = { rank, code: code || 1, why };
    log(`mpilite: ${rank >= 0 ? `rank ${rank} ` : ''}${why}; ending the job`);
    server.abortJob(rank, why, failure.code);
    killTimer = setTimeout(() => killAll('SIGKILL'), KILL_GRACE_MS);
  };
  // The server has already told every rank. When the cause is a lost
  // connection, the rank's exit status (code or signal) usually follows at
  // once and says more: wait for it briefly before reporting.
  let lostTimer: NodeJS.Timeout | undefined;
  server.on('abort', (info: { rank: number; reason: string; errorCode: number }) => {
    if (failure) return;
    if (/lost its connection/.test(info.reason) && info.rank >= 0 && !exited[info.rank]) {
      lostTimer = setTimeout(() => fail(info.rank, info.errorCode, info.reason), 500);
    } else fail(info.rank, info.errorCode, info.reason);
  });

  // A forwarded signal is the ranks' to handle: the job is not aborted
  // through the rendezvous (that would race with their handlers), only
  // killed if they are still there after the grace period.
  const forward = (sig: NodeJS.Signals): void => {
    killAll(sig);
    if (failure) return;
    failure = { rank: -1, code: 128 + (SIGNUM[sig] ?? 1), why: `the job was interrupted by ${sig}` };
    log(`mpilite: ${failure.why}; forwarded to every rank`);
    killTimer = setTimeout(() => killAll('SIGKILL'), KILL_GRACE_MS);
  };
  for (const s of SIGNALS) process.on(s, forward);
  // `mpilite run ... | head`: the reader is gone. A Unix tool dies of
  // SIGPIPE there; the job ends the same way (its ranks get SIGTERM, exit
  // status 141) instead of running on unread, and mpilite no longer dies
  // of the unhandled EPIPE, leaving its ranks behind.
  const onOutputError = (s: NodeJS.WriteStream) => (err: NodeJS.ErrnoException) => {
    gone.add(s);
    if (err.code !== 'EPIPE' || failure) return;
    failure = { rank: -1, code: 128 + SIGNUM.SIGPIPE!, why: `its ${s === process.stdout ? 'output' : 'error output'} was closed (EPIPE)` };
    log(`mpilite: ${failure.why}; ending the job`);
    killAll('SIGTERM');
    killTimer = setTimeout(() => killAll('SIGKILL'), KILL_GRACE_MS);
  };
  const outErrors = [process.stdout, process.stderr].map((s) => [s, onOutputError(s)] as const);
  for (const [s, h] of outErrors) s.on('error', h);

  // The same command for every rank. A program that cannot be found is not
  // bound: it is left to fail its own spawn (127, "could not start"), not taskset's.
  const cmd = commandFor(o.program, o.args);
  const bindable = findProgram(cmd[0]!) !== undefined;
  for (let rank = 0; rank < o.np; rank++) {
    const host = hosts[rank]!;
    const local = isLocalHost(host);
    const localRank = seen.get(host) ?? 0;
    seen.set(host, localRank + 1);
    const env: Record<string, string> = {
      ...(o.env ?? {}),
      MPILITE_RANK: String(rank),
      MPILITE_SIZE: String(o.np),
      MPILITE_LOCAL_RANK: String(localRank),
      MPILITE_LOCAL_SIZE: String(localCount.get(host)),
      MPILITE_JOBID: jobId,
      MPILITE_RENDEZVOUS: `${local ? '127.0.0.1' : remoteAddr}:${port}`,
    };
    let child: ChildProcess;
    const stdio: ('pipe' | 'ignore')[] = [rank === 0 && o.stdin !== false ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    if (local) {
      const bind = binds[nextLocal++]!;
      const full = bind.length > 0 && bindable ? [...bind, ...cmd] : cmd;
      child = spawn(full[0]!, full.slice(1), { env: { ...process.env, ...env }, stdio });
    } else {
      const pairs = Object.entries({ ...pickForwarded(), ...env }).map(([k, v]) => `${k}=${v}`);
      const full = [...agent, host, 'env', ...pairs, ...cmd];
      child = spawn(full[0]!, full.slice(1), { stdio });
    }
    children.push(child);
    for (const stream of ['stdout', 'stderr'] as const) {
      const rl = readline.createInterface({ input: child[stream]! });
      rl.on('line', (line) => onLine(rank, stream, line));
    }
    const gone = (): void => {
      exited[rank] = true;
      remaining--;
      if (remaining === 0) resolveDone();
    };
    child.on('error', (err) => {
      if (exited[rank]) return;
      fail(rank, 127, `could not start: ${err.message}`);
      // A process that never started emits no 'exit': count it out here, or
      // the job would wait for it forever (and signals would change nothing).
      if (child.pid === undefined) gone();
    });
    child.on('exit', (code, signal) => {
      if (exited[rank]) return;
      if (signal) fail(rank, 128 + (SIGNUM[signal] ?? 1), `(pid ${child.pid} on ${host}) was killed by ${signal}`);
      else if (code !== 0) fail(rank, code ?? 1, `(pid ${child.pid} on ${host}) exited with code ${code}`);
      gone();
    });
  }
  const rank0 = children[0];
  if (rank0?.stdin && o.stdin !== false) {
    rank0.stdin.on('error', () => {});
    process.stdin.pipe(rank0.stdin);
  }
  if (o.timeoutS) jobTimer = setTimeout(() => fail(-1, 124, `the job timed out after ${o.timeoutS} s`), o.timeoutS * 1000);

  await done;
  if (lostTimer) clearTimeout(lostTimer);
  if (killTimer) clearTimeout(killTimer);
  if (jobTimer) clearTimeout(jobTimer);
  for (const s of SIGNALS) process.off(s, forward);
  for (const [s, h] of outErrors) s.off('error', h);
  if (rank0?.stdin && o.stdin !== false) {
    process.stdin.unpipe(rank0.stdin);
    process.stdin.pause();
    if (!process.stdin.isTTY) process.stdin.destroy();
  }
  await server.close();
  return failure ? failure.code : 0;
}

// Variables a remote rank should see as the launcher does (the agent starts
// it with a bare environment).
function pickForwarded(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (k.startsWith('MPILITE_') || k.startsWith('IBAL_') || k === 'PATH' || k === 'NODE_OPTIONS')) out[k] = v;
  }
  return out;
}

export const runHelp = `usage: mpilite run -n N [--host h1[:slots],h2 | --hostfile F] [--launcher CMD]
                   [--rendezvous-host ADDR] [--no-tag] [--timeout S] [--bind-to core|none]
                   [-x VAR=value] program [args...]

Starts N ranks of program (a .js/.mjs file runs under this Node) and serves
their rendezvous. Output lines are prefixed with [rank]; stdin goes to rank 0;
SIGINT, SIGTERM, SIGHUP, SIGUSR1/2 are forwarded to every rank. If a rank
fails or calls abort, every rank is told at once and the job exits non-zero,
naming the rank. Ranks on other hosts start through the rsh agent
(--launcher, MPILITE_RSH, default ssh) as: <agent> <host> env VAR=... program.
As mpirun, local ranks are bound to a core each when they do not outnumber
this host's CPUs (--bind-to none turns it off).`;

export function parseRunArgs(argv: string[]): RunOptions {
  const o: RunOptions = { np: 1, program: '', args: [], env: {} };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '-n' || a === '-np' || a === '--np') o.np = Number(val());
    else if (a === '--host' || a === '-H') o.hosts = parseHostList(val());
    else if (a === '--hostfile') o.hosts = parseHostfile(val());
    else if (a === '--launcher') o.launcher = val();
    else if (a === '--rendezvous-host') o.rendezvousHost = val();
    else if (a === '--no-tag') o.tag = false;
    else if (a === '--bind-to') {
      const b = val();
      if (b !== 'core' && b !== 'none') throw new UsageError(`--bind-to must be core or none, got ${b}`);
      o.bindTo = b;
    }
    else if (a === '--timeout') o.timeoutS = Number(val());
    else if (a === '-x') {
      const [k, ...v] = val().split('=');
      o.env![k!] = v.length > 0 ? v.join('=') : (process.env[k!] ?? '');
    } else if (a === '--') {
      i++;
      break;
    } else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else break;
  }
  if (!Number.isInteger(o.np) || o.np < 1 || o.np > 1024) throw new UsageError(`-n must be an integer in [1, 1024]`);
  if (o.timeoutS !== undefined && !(o.timeoutS > 0)) throw new UsageError('--timeout must be positive');
  o.program = argv[i] ?? '';
  if (!o.program) throw new UsageError('no program to run');
  o.args = argv.slice(i + 1);
  return o;
}

export class UsageError extends Error {}
