// Command-line options shared by rc-, uc-, ud- and srq-pingpong, with the
// names, short letters and defaults of the rdma-core examples.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../cli-error.js';
import { intOption } from '../numbers.js';

export interface PingpongOptions {
  host: string | undefined;
  port: number;
  ibDev: string | undefined;
  ibPort: number;
  size: number;
  mtu: number;
  rxDepth: number;
  iters: number;
  sl: number;
  events: boolean;
  gidIdx: number;
  /** srq-pingpong: QPs sharing the SRQ (-q). */
  numQp: number;
  timeoutMs: number;
  bind: string | undefined;
  help: boolean;
}

const common = {
  port: { type: 'string', short: 'p' },
  'ib-dev': { type: 'string', short: 'd' },
  'ib-port': { type: 'string', short: 'i' },
  size: { type: 'string', short: 's' },
  'rx-depth': { type: 'string', short: 'r' },
  iters: { type: 'string', short: 'n' },
  sl: { type: 'string', short: 'l' },
  events: { type: 'boolean', short: 'e' },
  'gid-idx': { type: 'string', short: 'g' },
  timeout: { type: 'string' },
  bind: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const withMtu = { ...common, mtu: { type: 'string', short: 'm' } } as const satisfies ParseArgsConfig['options'];
const withQps = { ...withMtu, 'num-qp': { type: 'string', short: 'q' } } as const satisfies ParseArgsConfig['options'];

/** srq_pingpong's MAX_QP: it always exchanges this many address records. */
export const SRQ_MAX_QP = 256;

/** ibv_mtu from a byte count, as pp_mtu_to_enum. */
function mtuEnum(text: string): number {
  const bytes = Number(text);
  const e = [256, 512, 1024, 2048, 4096].indexOf(bytes);
  if (e < 0) throw new UsageError(`-m/--mtu: ${text} is not an IB MTU (256, 512, 1024, 2048 or 4096)`);
  return e + 1;
}

export type PingpongKind = 'rc' | 'uc' | 'ud' | 'srq';

export function parsePingpongArgs(args: string[], kind: PingpongKind): PingpongOptions {
  let parsed;
  try {
    parsed = parseArgs({ args, options: kind === 'srq' ? withQps : kind !== 'ud' ? withMtu : common, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const str = (k: string): string | undefined => v[k] as string | undefined;
  if (parsed.positionals.length > 1) throw new UsageError(`expected at most one HOST, got: ${parsed.positionals.join(' ')}`);
  return {
    host: parsed.positionals[0],
    port: intOption('-p/--port', str('port'), 18515, 1, 65535),
    ibDev: str('ib-dev'),
    ibPort: intOption('-i/--ib-port', str('ib-port'), 1, 1, 255),
    size: intOption('-s/--size', str('size'), kind !== 'ud' ? 4096 : 2048, 1, 2 ** 31),
    mtu: kind !== 'ud' && str('mtu') !== undefined ? mtuEnum(str('mtu')!) : 3,
    rxDepth: intOption('-r/--rx-depth', str('rx-depth'), 500, 2, 16384),
    iters: intOption('-n/--iters', str('iters'), 1000, 1, 2 ** 31),
    sl: intOption('-l/--sl', str('sl'), 0, 0, 15),
    events: v.events === true,
    gidIdx: intOption('-g/--gid-idx', str('gid-idx'), 0, 0, 255),
    numQp: kind === 'srq' ? intOption('-q/--num-qp', str('num-qp'), 16, 1, SRQ_MAX_QP) : 1,
    timeoutMs: intOption('--timeout', str('timeout'), 60, 1, 86400) * 1000,
    bind: str('bind'),
    help: v.help === true,
  };
}

export function pingpongUsage(kind: PingpongKind): string {
  const cmd = `ibal ${kind}-pingpong`;
  const lines = [
    'Usage:',
    `  ${cmd}            start a server and wait for connection`,
    `  ${cmd} <host>     connect to server at <host>`,
    '',
    kind === 'srq'
      ? "Ping-pong of RC SENDs on several QPs whose receives share one SRQ, like rdma-core's ibv_srq_pingpong."
      : `Ping-pong of ${kind.toUpperCase()} SENDs between two processes, like rdma-core's ibv_${kind}_pingpong.`,
    '',
    'Options:',
    '  -p, --port=<port>      listen on/connect to port <port> (default 18515)',
    '  -d, --ib-dev=<dev>     use IB device <dev> (default first device found)',
    '  -i, --ib-port=<port>   use port <port> of IB device (default 1)',
    `  -s, --size=<size>      size of message to exchange (default ${kind !== 'ud' ? 4096 : 2048})`,
    ...(kind !== 'ud' ? ['  -m, --mtu=<size>       path MTU (default 1024)'] : []),
    ...(kind === 'srq' ? [`  -q, --num-qp=<num>     number of QPs to use (default 16, at most ${SRQ_MAX_QP})`] : []),
    '  -r, --rx-depth=<dep>   number of receives to post at a time (default 500)',
    `  -n, --iters=<iters>    number of exchanges${kind === 'srq' ? ', over all QPs' : ''} (default 1000)`,
    '  -l, --sl=<sl>          service level value',
    '  -e, --events           sleep on CQ events (default poll)',
    '  -g, --gid-idx=<gid index> local port gid index (default 0)',
    '      --timeout=<sec>    give up after <sec> seconds without progress (default 60)',
    '      --bind=<addr>      server: listen on <addr> (default the device\'s IP address)',
    '  -h, --help             show this help',
    '',
    'The address exchange over TCP is the C tools\' own ("LID:QPN:PSN:GID"), so',
    'ibal and rdma-core ping-pongs interoperate. ibal extension: RoCE leaves the',
    'LID 0; a soft device that listens on a UDP port other than RoCEv2\'s 4791',
    'announces that port in the LID field instead (LID 0 still means 4791).',
  ];
  return lines.join('\n');
}

/**
 * A ping-pong command as cli.ts takes it: its --help text, and a run that
 * parses the arguments, prints the help when asked, else calls `body`.
 */
export function pingpongCommand(kind: PingpongKind, body: (o: PingpongOptions, print: (line: string) => void) => Promise<void>): {
  help: string;
  run(args: string[], print: (line: string) => void): Promise<void>;
} {
  const help = pingpongUsage(kind);
  return {
    help,
    async run(args, print) {
      const o = parsePingpongArgs(args, kind);
      if (o.help) print(help);
      else await body(o, print);
    },
  };
}
