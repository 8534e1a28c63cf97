import { afterEach, describe, expect, it } from 'vitest';
import { killAll, runCli } from './helpers/cli.js';

afterEach(killAll);

describe('ibal demo', () => {
  it('runs rc-pingpong and perf write --bw as child processes and passes', async () => {
    const r = await runCli(['demo', '--timeout', '90'], {}, 100_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\[rc-pingpong server\] {3}local address:/m);
    expect(r.stdout).toMatch(/^\[rc-pingpong client\] 1000 iters in /m);
    expect(r.stdout).toMatch(/^\[perf write --bw client\] {2}1048576 +200 /m);
    expect(r.stdout).toMatch(/== demo passed ==\n$/);
  }, 110_000);
});
