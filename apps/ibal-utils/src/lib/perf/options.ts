// Options of `ibal perf`, named after perftest's where it has them
// (-s, -a, -n, -p, -d, -i, -m, -t as --tx-depth, -Q as --cq-mod).
import { parseArgs } from 'node:util';
import { UsageError } from '../cli-error.js';
import { intOption, parseIntOption } from '../numbers.js';

export const PERF_TESTS = ['write', 'read', 'send', 'atomic'] as const;
export type PerfTest = (typeof PERF_TESTS)[number];
export type PerfMode = 'bw' | 'lat';

export interface PerfOptions {
  test: PerfTest;
  mode: PerfMode;
  host: string | undefined;
  sizes: number[];
  iters: number;
  /** Untimed iterations before each size (0: none, as perftest). */
  warmup: number;
  port: number;
  json: boolean;
  ibDev: string | undefined;
  ibPort: number;
  gidIdx: number;
  /** ibv_mtu enum, or undefined for the port's active MTU (perftest's default). */
  mtu: number | undefined;
  txDepth: number;
  cqMod: number;
  rxDepth: number;
  timeoutMs: number;
  bind: string | undefined;
  help: boolean;
}

/** -a: 2^1 .. 2^23, as perftest's ALL mode; atomics are always 8 bytes. */
export function allSizes(test: PerfTest): number[] {
  if (test === 'atomic') return [8];
  return Array.from({ length: 23 }, (_, i) => 2 ** (i + 1));
}

export const MAX_SIZE = 2 ** 23;

function mtuEnum(text: string): number {
  const e = [256, 512, 1024, 2048, 4096].indexOf(Number(text));
  if (e < 0) throw new UsageError(`-m/--mtu: ${text} is not an IB MTU (256, 512, 1024, 2048 or 4096)`);
  return e + 1;
}

export function parsePerfArgs(args: string[]): PerfOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        bw: { type: 'boolean' },
        lat: { type: 'boolean' },
        size: { type: 'string', short: 's' },
        all: { type: 'boolean', short: 'a' },
        sizes: { type: 'string' },
        iters: { type: 'string', short: 'n' },
        warmup: { type: 'string' },
        port: { type: 'string', short: 'p' },
        json: { type: 'boolean' },
        'ib-dev': { type: 'string', short: 'd' },
        'ib-port': { type: 'string', short: 'i' },
        'gid-index': { type: 'string', short: 'x' },
        mtu: { type: 'string', short: 'm' },
        'tx-depth': { type: 'string', short: 't' },
        'cq-mod': { type: 'string', short: 'Q' },
        'rx-depth': { type: 'string', short: 'r' },
        timeout: { type: 'string' },
        bind: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  const [testName, host, ...extra] = parsed.positionals;
  if (v.help) return { help: true } as PerfOptions;
  if (testName === undefined) throw new UsageError(`which test? one of ${PERF_TESTS.join(', ')}`);
  if (!(PERF_TESTS as readonly string[]).includes(testName)) throw new UsageError(`unknown test "${testName}" (one of ${PERF_TESTS.join(', ')})`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const test = testName as PerfTest;
  if (v.bw && v.lat) throw new UsageError('--bw and --lat exclude each other');
  const mode: PerfMode = v.lat ? 'lat' : 'bw';
  const chosen = [v.size !== undefined, v.all === true, v.sizes !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('-s, -a and --sizes exclude each other');
  let sizes: number[];
  if (v.all) sizes = allSizes(test);
  else if (v.sizes !== undefined) sizes = v.sizes.split(',').map((s) => parseIntOption('--sizes', s, 1, MAX_SIZE));
  else if (v.size !== undefined) sizes = [parseIntOption('-s/--size', v.size, 1, MAX_SIZE)];
  else sizes = [test === 'atomic' ? 8 : mode === 'bw' ? 65536 : 2];
  if (test === 'atomic' && sizes.some((s) => s !== 8)) throw new UsageError('atomic operations are 8 bytes: -s must be 8');
  const txDepth = intOption('--tx-depth', v['tx-depth'], 128, 1, 8192);
  return {
    test,
    mode,
    host,
    sizes,
    iters: intOption('-n/--iters', v.iters, mode === 'bw' ? 5000 : 1000, mode === 'lat' ? 2 : 1, 10_000_000),
    warmup: intOption('--warmup', v.warmup, 0, 0, 10_000_000),
    port: intOption('-p/--port', v.port, 18515, 1, 65535),
    json: v.json === true,
    ibDev: v['ib-dev'],
    ibPort: intOption('-i/--ib-port', v['ib-port'], 1, 1, 255),
    gidIdx: intOption('-x/--gid-index', v['gid-index'], 0, 0, 255),
    mtu: v.mtu === undefined ? undefined : mtuEnum(v.mtu),
    txDepth,
    // A moderation beyond the depth would leave no signaled WR in flight.
    cqMod: Math.min(intOption('--cq-mod', v['cq-mod'], 100, 1, 8192), txDepth),
    rxDepth: intOption('--rx-depth', v['rx-depth'], 512, 1, 8192),
    timeoutMs: intOption('--timeout', v.timeout, 60, 1, 86400) * 1000,
    bind: v.bind,
    help: false,
  };
}

export const perfUsage = [
  'Usage:',
  '  ibal perf <write|read|send|atomic> [options]          start a server and wait for a client',
  '  ibal perf <write|read|send|atomic> <host> [options]   run the test against the server at <host>',
  '',
  'Bandwidth and latency over an RC QP, in the manner of perftest\'s ib_write_bw,',
  'ib_write_lat, ib_read_bw, ib_send_lat, ib_atomic_bw ... The client drives: the',
  'server follows the sizes and iterations the client asks for, and prints the',
  'client\'s results too.',
  '',
  'Options:',
  '      --bw                  bandwidth test (default): keep --tx-depth WRs in flight',
  '      --lat                 latency test: WRITE and SEND ping-pong (half the round',
  '                            trip is reported, as perftest), READ/atomic round trips',
  '  -s, --size=<bytes>        message size (default 65536 for --bw, 2 for --lat, 8 for atomic)',
  '  -a, --all                 every size 2^1 .. 2^23 (atomic: 8)',
  '      --sizes=<a,b,...>     these sizes (ibal extension)',
  '  -n, --iters=<n>           iterations per size (default 5000 for --bw, 1000 for --lat)',
  '      --warmup=<n>          run <n> untimed iterations before each size (ibal extension:',
  '                            JavaScript code runs slowly until the JIT has compiled it)',
  '  -p, --port=<port>         TCP port of the exchange (default 18515)',
  '      --json                print one JSON document with every result row',
  '  -d, --ib-dev=<dev>        use IB device <dev> (default first device found)',
  '  -i, --ib-port=<port>      use port <port> of the device (default 1)',
  '  -x, --gid-index=<index>   local GID index (default 0)',
  '  -m, --mtu=<bytes>         path MTU (default the port\'s active MTU)',
  '  -t, --tx-depth=<n>        send WRs in flight for --bw (default 128)',
  '  -Q, --cq-mod=<n>          signal every n-th send (default 100, at most --tx-depth)',
  '  -r, --rx-depth=<n>        receives posted at a time for send tests (default 512)',
  '      --timeout=<sec>       give up after <sec> seconds without progress (default 60)',
  '      --bind=<addr>         server: listen on <addr> (default the device\'s IP address)',
  '  -h, --help                show this help',
  '',
  'Units: MB/sec is 2^20 bytes per second, as perftest computes it; usec are',
  'microseconds. BW average is bytes over the time from the first post to the last',
  'completion; BW peak is the best rate over any run of consecutive WRs.',
  '',
  'As in ibal rc-pingpong, a soft device on a UDP port other than 4791 announces',
  'that port in the LID field of the exchange (LID 0 means 4791).',
].join('\n');
