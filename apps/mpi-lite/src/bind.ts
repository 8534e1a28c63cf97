// Binding local ranks to cores, as Open MPI's mpirun does by default when
// the ranks do not outnumber the cores (--bind-to core) and Slurm does with
// --cpu-bind. A rank that spins while it waits wants a core of its own: left
// to migrate, two spinning ranks on two cores were measured alternating
// between ~0.9 and ~1.8 us 8-byte latency from run to run, bound they stayed
// at 0.8-1.0. The binding is applied with util-linux's taskset (a Debian
// essential), which execs the program on the chosen CPU, pid unchanged.
import fs from 'node:fs';
import path from 'node:path';

export type BindTo = 'core' | 'none';

/** The CPUs this process may run on (Cpus_allowed_list), in order. */
export function allowedCpus(): number[] {
  let list = '';
  try {
    list = /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a)) continue;
    for (let c = a!; c <= (Number.isInteger(b) ? b! : a!); c++) out.push(c);
  }
  return out;
}

function executable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Where `program` would be run from, as execvp finds it; undefined when nowhere. */
export function findProgram(program: string): string | undefined {
  if (program.includes('/')) return executable(program) ? program : undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && executable(path.join(dir, program))) return path.join(dir, program);
  }
  return undefined;
}

export class BindError extends Error {}

/**
 * How to start each of `localRanks` ranks on this host: a prefix for its
 * command (empty when unbound). `requested` undefined means Open MPI's
 * default: bind when the ranks fit the cores, else not.
 */
export function bindPrefixes(localRanks: number, requested: BindTo | undefined): string[][] {
  const none = Array.from({ length: localRanks }, () => []);
  if (requested === 'none') return none;
  const cpus = allowedCpus();
  const taskset = findProgram('taskset');
  if (requested === 'core') {
    if (!taskset) throw new BindError('--bind-to core needs taskset (util-linux), which is not on PATH');
    if (localRanks > cpus.length) throw new BindError(`--bind-to core: ${localRanks} ranks on this host but only ${cpus.length} CPUs to bind them to`);
  }
  if (!taskset || localRanks > cpus.length || cpus.length < 2) return none;
  return Array.from({ length: localRanks }, (_, r) => [taskset, '-c', String(cpus[r]!)]);
}
