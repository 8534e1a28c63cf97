import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, freePort, killAll, ownDevice, runCli } from './helpers/cli.js';

afterEach(killAll);

describe('failures are reported, not hung on', () => {
  for (const cmd of [['rc-pingpong'], ['uc-pingpong'], ['ud-pingpong'], ['srq-pingpong'], ['perf', 'write']]) {
    it(`${cmd.join(' ')} client to a port nobody listens on fails at once with a clear message`, async () => {
      const port = String(await freePort());
      const started = Date.now();
      const r = await runCli([...cmd, '127.0.0.1', '-p', port], ownDevice(), 15_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Couldn't connect to 127.0.0.1:${port}: connection refused`);
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  }

  it('a closed output (`ibal devinfo | head -1`) ends the command quietly with 141, as SIGPIPE would', async () => {
    const child = spawn(process.execPath, [CLI, 'devinfo', '-v'], { env: { ...process.env, ...ownDevice() }, stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader is gone before the first line is written.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 15_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(killer);
    expect(code, stderr).toBe(141);
    expect(stderr).toBe('');
  });

  it('a server nobody connects to gives up after --timeout', async () => {
    const port = String(await freePort());
    const r = await runCli(['rc-pingpong', '-p', port, '--timeout', '1'], ownDevice(), 15_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no client connected within 1 s');
  });

  it('bad options name the option and point at --help', async () => {
    const r = await runCli(['rc-pingpong', '-s', 'lots'], ownDevice());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-s/--size: "lots" is not a number');
    expect(r.stderr).toContain("Run 'ibal rc-pingpong --help'");
    const u = await runCli(['ud-pingpong', '-s', '5000'], ownDevice());
    expect(u.code).toBe(1);
    expect(u.stderr).toContain('Requested size larger than port MTU (4096)');
    const q = await runCli(['srq-pingpong', '-q', '8', '-r', '4'], ownDevice());
    expect(q.code).toBe(1);
    expect(q.stderr).toContain('rx_depth 4 is too small for 8 QPs -- must have at least one receive per QP.');
    const big = await runCli(['srq-pingpong', '-q', '257'], ownDevice());
    expect(big.code).toBe(1);
    expect(big.stderr).toContain('-q/--num-qp');
    const p = await runCli(['perf', 'atomic', '-s', '16'], ownDevice());
    expect(p.code).toBe(1);
    expect(p.stderr).toContain('atomic operations are 8 bytes');
  });
});

describe('help', () => {
  it('ibal --help lists the commands; each command has --help', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['devices', 'devinfo', 'rc-pingpong', 'uc-pingpong', 'ud-pingpong', 'srq-pingpong', 'perf', 'demo']) {
      expect(top.stdout).toContain(`  ${c}`);
      const h = await runCli([c, '--help']);
      expect(h.code, c).toBe(0);
      expect(h.stdout, c).toMatch(/Usage/);
    }
    const rc = await runCli(['rc-pingpong', '--help']);
    expect(rc.stdout).toContain('LID 0 still means 4791');
  });

  it('an unknown command fails with the command list', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});
