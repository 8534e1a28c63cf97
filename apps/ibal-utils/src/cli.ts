// ibal: the command-line tools of the InfiniBand access layer. Each command
// lives in src/commands/; this file only dispatches and turns failures into
// a message and an exit status.
import { devices, devicesHelp } from './commands/devices.js';
import { devinfo, devinfoHelp } from './commands/devinfo.js';
import { rcPingpong, rcPingpongHelp } from './commands/rc-pingpong.js';
import { srqPingpong, srqPingpongHelp } from './commands/srq-pingpong.js';
import { ucPingpong, ucPingpongHelp } from './commands/uc-pingpong.js';
import { udPingpong, udPingpongHelp } from './commands/ud-pingpong.js';
import { perf, perfHelp } from './commands/perf.js';
import { demo, demoHelp } from './commands/demo.js';
import { rping, rpingHelp } from './commands/rping.js';
import { cmatose, cmatoseHelp } from './commands/cmatose.js';
import { IbalError } from '@ibal/verbs';
import { CliError, UsageError } from './lib/cli-error.js';

type Print = (line: string) => void;

interface Command {
  summary: string;
  help: string;
  run(args: string[], print: Print): Promise<void> | void;
}

const commands: Record<string, Command> = {
  devices: { summary: 'list RDMA devices and their node GUIDs (ibv_devices)', help: devicesHelp, run: devices },
  devinfo: { summary: 'print device and port attributes (ibv_devinfo)', help: devinfoHelp, run: devinfo },
  'rc-pingpong': { summary: 'RC SEND ping-pong between two processes (ibv_rc_pingpong)', help: rcPingpongHelp, run: rcPingpong },
  'uc-pingpong': { summary: 'UC SEND ping-pong between two processes (ibv_uc_pingpong)', help: ucPingpongHelp, run: ucPingpong },
  'ud-pingpong': { summary: 'UD SEND ping-pong between two processes (ibv_ud_pingpong)', help: udPingpongHelp, run: udPingpong },
  'srq-pingpong': { summary: 'RC SEND ping-pong on QPs sharing one SRQ (ibv_srq_pingpong)', help: srqPingpongHelp, run: srqPingpong },
  perf: { summary: 'bandwidth and latency of WRITE, READ, SEND, atomics (perftest)', help: perfHelp, run: perf },
  demo: { summary: 'rc-pingpong and perf write --bw between two local processes', help: demoHelp, run: demo },
  rping: { summary: 'connect through the CM, RDMA READ/WRITE a pattern and verify it (rping)', help: rpingHelp, run: rping },
  cmatose: { summary: 'many CM connections at once, SENDs both ways on each (ucmatose)', help: cmatoseHelp, run: cmatose },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'Usage: ibal <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'ibal <command> --help' for a command's options.",
    '',
    'Devices: the soft RoCEv2 HCA (UDP on this host) is always present; set',
    'IBAL_SOFT_DEVICES=name=ip[:port],... to choose its devices (port 0: ephemeral).',
  ].join('\n');
}

const print: Print = (line) => {
  process.stdout.write(line + '\n');
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? args[0] : undefined;
    if (topic !== undefined && commands[topic]) print(commands[topic].help);
    else print(mainHelp());
    return name === undefined ? 1 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(`ibal: unknown command "${name}"\n\n${mainHelp()}\n`);
    return 1;
  }
  try {
    await command.run(args, print);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`ibal ${name}: ${err.message}\nRun 'ibal ${name} --help' for usage.\n`);
      return err.exitCode;
    }
    if (err instanceof CliError) {
      process.stderr.write(`ibal ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    // The verbs layer's own errors (a bad IBAL_SOFT_DEVICES, say) explain themselves.
    if (err instanceof IbalError) {
      process.stderr.write(`ibal ${name}: ${err.message} (${err.code})\n`);
      return 1;
    }
    process.stderr.write(`ibal ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

// A reader that went away (`ibal devinfo | head -1`) ends the command as
// SIGPIPE ends a Unix tool: quietly, status 141. Node ignores SIGPIPE, and
// the EPIPE that comes instead went unhandled: a stack trace, status 1.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(141);
    throw err;
  });
}

process.exitCode = await main(process.argv.slice(2));
