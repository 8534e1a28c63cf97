// mpilite: run MPI-lite jobs and benchmark them.
//   mpilite run -n N [...] program args       (see run.ts)
//   mpilite bench latency|ddt_latency|bw|bibw|allreduce|bcast|alltoall|neighbor_alltoall|put_latency|get_latency|acc_latency|put_bw [-n N] [--json]
//   mpilite info                              (how a rank here would join: launcher, transports)
import { fileURLToPath } from 'node:url';
import { abort, finalized, initialized } from '@ibal/mpi';
import { BENCH_KINDS, COLLECTIVE_KINDS, DEFAULT_WARMUP_MS, benchRank, defaultSizes, type BenchKind } from './bench-rank.js';
import { UsageError, parseRunArgs, runHelp, runJob } from './run.js';

const benchHelp = `usage: mpilite bench ${BENCH_KINDS.join('|')} [-n N] [--sizes a,b,...] [--iters K] [--warmup-ms T] [--json]

--iters K times K iterations of every size; without it, latency runs 10000
(100 above 64 KiB), bandwidth 100 (20) and collectives 1000 (50), as the
OSU defaults do. Before them, warm-up iterations run for at least T ms
(default ${DEFAULT_WARMUP_MS}) and at least K/10 of them: V8 compiles the hot
path over its first few hundred milliseconds.

Point-to-point and one-sided benchmarks use ranks 0 and 1 (-n 2 by
default; one-sided ones time an operation and a Flush, put_bw 64 Puts and
a Flush, as osu_put_latency and osu_put_bw do); collectives
use -n ranks (4 by default). Sizes are in bytes (collectives: of float64
arrays). Printed in the manner of the OSU micro-benchmarks, or one JSON
object with --json.`;

const mainHelp = `usage: mpilite <command> [options]

commands:
  run     start a job: mpilite run -n 4 program.js args
  bench   OSU-style benchmarks: mpilite bench latency -n 2
  help    this text, or mpilite help <command>`;

async function bench(argv: string[]): Promise<number> {
  const kind = argv[0] as BenchKind;
  if (!BENCH_KINDS.includes(kind)) throw new UsageError(`bench: expected one of ${BENCH_KINDS.join(', ')}`);
  let np = COLLECTIVE_KINDS.includes(kind) ? 4 : 2;
  let sizes = defaultSizes(kind);
  let iters = 0;
  let json = false;
  let warmupMs = DEFAULT_WARMUP_MS;
  const env: Record<string, string> = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-n') np = Number(argv[++i]);
    else if (a === '--sizes') sizes = (argv[++i] ?? '').split(',').map(Number);
    else if (a === '--iters') iters = Number(argv[++i]);
    else if (a === '--warmup-ms') warmupMs = Number(argv[++i]);
    else if (a === '--json') json = true;
    else if (a === '-x') {
      const [k, ...v] = (argv[++i] ?? '').split('=');
      env[k!] = v.join('=');
    } else throw new UsageError(`bench: unknown option ${a}`);
  }
  if (!Number.isInteger(np) || np < 1) throw new UsageError('-n must be a positive integer');
  if (np < 2 && !COLLECTIVE_KINDS.includes(kind)) throw new UsageError(`bench ${kind} needs -n 2 or more (ranks 0 and 1 exchange)`);
  if (sizes.some((s) => !Number.isInteger(s) || s < 0)) throw new UsageError('--sizes must be non-negative integers');
  if (!Number.isInteger(iters) || iters < 0) throw new UsageError('--iters must be a positive integer');
  if (!Number.isFinite(warmupMs) || warmupMs < 0) throw new UsageError('--warmup-ms must be a non-negative number');
  const self = fileURLToPath(import.meta.url);
  return runJob({
    np,
    program: self,
    args: ['__bench-rank', kind, sizes.join(','), String(iters), json ? 'json' : 'text', String(warmupMs)],
    tag: false,
    env,
    stdin: false,
    onLine: (rank, stream, line) => {
      if (rank === 0 || stream === 'stderr') (stream === 'stdout' ? process.stdout : process.stderr).write(`${line}\n`);
    },
  });
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      if (rest[0] === '--help' || rest[0] === '-h') {
        console.log(runHelp);
        return 0;
      }
      return runJob(parseRunArgs(rest));
    case 'bench':
      if (rest[0] === '--help' || rest[0] === '-h' || rest.length === 0) {
        console.log(benchHelp);
        return rest.length === 0 ? 2 : 0;
      }
      return bench(rest);
    case '__bench-rank':
      try {
        await benchRank(rest[0] as BenchKind, rest[1]!.split(',').map(Number), Number(rest[2]), rest[3] === 'json', rest[4] === undefined ? DEFAULT_WARMUP_MS : Number(rest[4]));
      } catch (err) {
        // A rank that only returned would stay in the job (its bootstrap
        // connection holds the process) while the others wait for it.
        if (initialized() && !finalized()) return abort(1, err instanceof Error ? err.message : String(err));
        throw err;
      }
      return 0;
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      console.log(rest[0] === 'run' ? runHelp : rest[0] === 'bench' ? benchHelp : mainHelp);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${cmd}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`mpilite: ${err.message}\n${mainHelp}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`mpilite: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
