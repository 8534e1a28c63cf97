// ibal perf: perftest-style bandwidth and latency tests.
import { withCleanup } from '../lib/cleanup.js';
import { perfClient } from '../lib/perf/client.js';
import { parsePerfArgs, perfUsage } from '../lib/perf/options.js';
import { openSide } from '../lib/perf/resources.js';
import { perfServer } from '../lib/perf/server.js';

export const perfHelp = perfUsage;

export async function perf(args: string[], print: (line: string) => void): Promise<void> {
  const o = parsePerfArgs(args);
  if (o.help) {
    print(perfHelp);
    return;
  }
  await withCleanup(async (cleanup) => {
    const base = await openSide(o, cleanup);
    if (o.host === undefined) await perfServer(o, base, cleanup, print, (line) => process.stderr.write(line + '\n'));
    else await perfClient(o, base, cleanup, print);
  });
}
