// ibal demo: the whole stack end to end on this host, as two processes per
// step: an rc-pingpong server and client, then perf write --bw over a few
// sizes. Succeeds only if every child does.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CliChild, freeTcpPort } from '../lib/children.js';
import { CliError, UsageError } from '../lib/cli-error.js';
import { intOption } from '../lib/numbers.js';

export const demoHelp = [
  'Usage: ibal demo [--timeout=<sec>]',
  '',
  'Runs, on the loopback address, an rc-pingpong server and client as two child',
  'processes, then perf write --bw for a few sizes the same way, printing their',
  'output with a prefix. Exits 0 only if every child succeeded.',
  '',
  'Options:',
  '      --timeout=<sec>   stop everything after <sec> seconds (default 120)',
  '  -h, --help            show this help',
].join('\n');

const PERF_SIZES = '64,4096,65536,1048576';
const PERF_ITERS = '200';

interface Step {
  name: string;
  server: string[];
  client: (port: number) => string[];
  ready: RegExp;
}

const steps: Step[] = [
  {
    name: 'rc-pingpong',
    server: ['rc-pingpong'],
    client: () => ['rc-pingpong', '127.0.0.1'],
    ready: /local address:/,
  },
  {
    name: 'perf write --bw',
    server: ['perf', 'write', '--bw', '--sizes', PERF_SIZES, '-n', PERF_ITERS],
    client: () => ['perf', 'write', '127.0.0.1', '--bw', '--sizes', PERF_SIZES, '-n', PERF_ITERS],
    ready: /Waiting for client to connect/,
  },
];

export async function demo(args: string[], print: (line: string) => void): Promise<void> {
  let values;
  try {
    values = parseArgs({ args, options: { timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    print(demoHelp);
    return;
  }
  const timeoutMs = intOption('--timeout', values.timeout, 120, 1, 3600) * 1000;
  const deadline = Date.now() + timeoutMs;
  const cliPath = path.resolve(fileURLToPath(import.meta.url));
  const children: CliChild[] = [];
  const killAll = (): void => children.forEach((c) => c.kill());
  const onSignal = (): void => {
    killAll();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const err = (line: string): void => {
    process.stderr.write(line + '\n');
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const outOfTime = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CliError(`demo did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    // Raced below at every wait; this handler only keeps a timeout that lands between two waits from going unhandled.
    outOfTime.catch(() => {});
    for (const step of steps) {
      print(`== ${step.name} ==`);
      const port = String(await freeTcpPort());
      const server = new CliChild(cliPath, [...step.server, '-p', port], `${step.name} server`, print, err);
      children.push(server);
      await Promise.race([server.waitForLine(step.ready, Math.max(1, deadline - Date.now())), outOfTime]);
      const client = new CliChild(cliPath, [...step.client(Number(port)), '-p', port], `${step.name} client`, print, err);
      children.push(client);
      const [s, c] = await Promise.race([Promise.all([server.exited, client.exited]), outOfTime]);
      if (s !== 0 || c !== 0) throw new CliError(`${step.name} failed: server exited ${s}, client exited ${c}`);
    }
    print('== demo passed ==');
  } finally {
    clearTimeout(timer);
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
