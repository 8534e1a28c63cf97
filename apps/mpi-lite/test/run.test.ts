// `mpilite run` as a user meets it: tagged output, stdin to rank 0, exit
// codes, forwarded signals, a rank dying mid-run, output closed under it, and
// the examples.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allowedCpus } from '../src/bind.js';
import { cli, example, fixture, mpilite } from './helpers.js';

/** Whether process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('mpilite run', () => {
  it('tags every line with its rank', async () => {
    const r = await mpilite(['run', '-n', '3', example('hello.mjs')]);
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1, 2]) expect(r.stdout).toMatch(new RegExp(`^\\[${rank}\\] hello from rank ${rank} of 3 \\(launched by mpilite`, 'm'));
  });

  it('gives stdin to rank 0', async () => {
    const r = await mpilite(['run', '-n', '2', fixture('io.mjs'), 'stdin'], { stdin: 'to rank zero\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('[0] stdin: to rank zero');
  });

  it("a rank's non-zero exit ends the job with its code, naming it", async () => {
    const r = await mpilite(['run', '-n', '3', fixture('io.mjs'), 'exit', '1', '7'], { timeoutMs: 30_000 });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/mpilite: rank 1 \(pid \d+ on localhost\) exited with code 7; ending the job/);
  });

  it('a program that cannot be started ends the job with 127, not a hang', async () => {
    const r = await mpilite(['run', '-n', '2', 'no-such-program-ibal'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(127);
    expect(r.stderr).toMatch(/mpilite: rank \d could not start: spawn no-such-program-ibal ENOENT; ending the job/);
  });

  it('a rank killed mid-run: the job ends non-zero within 10 s, naming it', async () => {
    let killed = 0;
    const r = await mpilite(['run', '-n', '3', fixture('spin.mjs')], {
      timeoutMs: 30_000,
      onStdout: (text) => {
        const m = [...text.matchAll(/^\[(\d)\] ready pid (\d+)$/gm)];
        if (m.length === 3 && !killed) {
          killed = Date.now();
          process.kill(Number(m.find((x) => x[1] === '2')![2]), 'SIGKILL');
        }
      },
    });
    expect(killed).toBeGreaterThan(0);
    expect(Date.now() - killed).toBeLessThan(10_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/mpilite: rank 2 \(pid \d+ on localhost\) was killed by SIGKILL; ending the job/);
  });

  it('ends the job when its output is closed (`mpilite run ... | head`), as SIGPIPE ends a Unix tool', async () => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cli, 'run', '-n', '2', fixture('chatter.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const pids: number[] = [];
    let text = '';
    const killer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      for (const m of text.matchAll(/tick pid (\d+)/g)) if (!pids.includes(Number(m[1]))) pids.push(Number(m[1]));
      // The reader has what it wanted and goes away, as head does.
      if (pids.length === 2) child.stdout.destroy();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(killer);
    expect(code, stderr).toBe(141);
    expect(stderr).toMatch(/mpilite: its output was closed \(EPIPE\); ending the job/);
    expect(stderr).not.toMatch(/Unhandled 'error' event/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    // Its ranks are gone too.
    for (const pid of pids) {
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      expect(alive(pid)).toBe(false);
    }
  });

  it('forwards SIGTERM to every rank', async () => {
    let sent = false;
    const r = await mpilite(['run', '-n', '2', fixture('io.mjs'), 'signal'], {
      timeoutMs: 30_000,
      onStdout: (text, pid) => {
        if (!sent && (text.match(/waiting/g) ?? []).length === 2) {
          sent = true;
          process.kill(pid, 'SIGTERM');
        }
      },
    });
    expect(r.stdout).toContain('[0] rank 0 got SIGTERM');
    expect(r.stdout).toContain('[1] rank 1 got SIGTERM');
    expect(r.code).not.toBe(0);
  });

  it('binds each local rank to a core of its own when they fit, as mpirun does', async () => {
    const cpus = allowedCpus();
    const show = ['sh', '-c', 'grep Cpus_allowed_list /proc/self/status'];
    const listOf = (out: string, rank: number): string => new RegExp(`^\\[${rank}\\] Cpus_allowed_list:\\s*(\\S+)$`, 'm').exec(out)?.[1] ?? '';
    const unbound = await mpilite(['run', '-n', '2', '--bind-to', 'none', ...show]);
    expect(unbound.code, unbound.stderr).toBe(0);
    const own = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
    expect([listOf(unbound.stdout, 0), listOf(unbound.stdout, 1)]).toEqual([own, own]);
    const over = await mpilite(['run', '-n', String(cpus.length + 1), '--bind-to', 'core', ...show]);
    expect(over.code).toBe(2);
    expect(over.stderr).toContain(`${cpus.length + 1} ranks on this host but only ${cpus.length} CPUs`);
    if (cpus.length < 2) return;
    const bound = await mpilite(['run', '-n', '2', ...show]);
    expect(bound.code, bound.stderr).toBe(0);
    expect([listOf(bound.stdout, 0), listOf(bound.stdout, 1)]).toEqual([String(cpus[0]), String(cpus[1])]);
    // More ranks than CPUs: left unbound, as mpirun --oversubscribe leaves them.
    const many = await mpilite(['run', '-n', String(cpus.length + 1), ...show]);
    expect(many.code, many.stderr).toBe(0);
    expect(listOf(many.stdout, 0)).toBe(own);
  });

  it('rejects bad usage with exit 2', async () => {
    expect((await mpilite(['run', '-n', '0', 'x.js'])).code).toBe(2);
    expect((await mpilite(['run', '-n', '2'])).code).toBe(2);
    expect((await mpilite(['frobnicate'])).code).toBe(2);
    expect((await mpilite(['run', '-n', '2', '--bind-to', 'socket', 'x.js'])).code).toBe(2);
  });
});

describe('examples', () => {
  it('ring', async () => {
    const r = await mpilite(['run', '-n', '4', example('ring.mjs'), '5']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('[0] ring: 5 laps over 4 ranks, token = 30 (expected 30)');
  });

  it('pi by integration', async () => {
    const r = await mpilite(['run', '-n', '3', example('pi.mjs'), '1000000']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[0\] pi ≈ 3\.14159265\d+ /);
  });

  it('a work queue on a one-sided counter: every task done once, the count matches the serial one', async () => {
    const r = await mpilite(['run', '-n', '3', example('workqueue.mjs'), '300000', '5000']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[0\] primes below 300000: 25997 \(serial count 25997\) in [\d.]+ ms; tasks per rank: \d+, \d+, \d+/);
  });

  it('heat diffusion with halo exchange matches the serial computation exactly', async () => {
    const r = await mpilite(['run', '-n', '4', example('heat.mjs'), '1000', '200']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('max |parallel - serial| = 0');
  });

  it('2-d heat on a Cartesian process grid (persistent NeighborAlltoallw halos of row and column types) matches the serial computation exactly', async () => {
    const r = await mpilite(['run', '-n', '4', example('stencil.mjs'), '60', '90', '50']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('on 4 ranks as a 2x2 grid');
    expect(r.stdout).toContain('max |parallel - serial| = 0');
  });

  it('a distributed transpose in one Alltoall with datatypes is exact', async () => {
    const r = await mpilite(['run', '-n', '4', example('transpose.mjs'), '128']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('128x128 doubles on 4 ranks');
    expect(r.stdout).toContain('elements wrong: 0');
  });

  it('data-parallel training step with allreduce of gradients', async () => {
    const r = await mpilite(['run', '-n', '3', example('train.mjs'), '150']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('weights identical on every rank: true');
  });
});

describe('the demo', () => {
  it('ring, allreduce and pi in one 4-rank job', async () => {
    const r = await mpilite(['run', '-n', '4', example('demo.mjs')], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('token came back as 6 (expected 6)');
    expect(r.stdout).toContain('every element = 10 (expected 10)');
    expect(r.stdout).toMatch(/pi: +3\.1415926535[89]/);
  }, 120_000);
});

describe('mpilite bench', () => {
  it('latency and allreduce, as JSON', async () => {
    const lat = await mpilite(['bench', 'latency', '--sizes', '8,70000', '--iters', '50', '--warmup-ms', '20', '--json']);
    expect(lat.code, lat.stderr).toBe(0);
    const j = JSON.parse(lat.stdout.trim().split('\n').pop()!) as { bench: string; ranks: number; unit: string; results: { size: number; value: number }[] };
    expect(j).toMatchObject({ bench: 'latency', ranks: 2, unit: 'us' });
    expect(j.results.map((x) => x.size)).toEqual([8, 70000]);
    expect(j.results.every((x) => x.value > 0)).toBe(true);
    const ar = await mpilite(['bench', 'allreduce', '-n', '3', '--sizes', '8,131072', '--iters', '20']);
    expect(ar.code, ar.stderr).toBe(0);
    expect(ar.stdout).toContain('# MPI-lite Allreduce Latency Test (OSU style), 3 ranks');
    expect(ar.stdout).toMatch(/^131072\s+\d+\.\d+$/m);
  });

  it('one-sided latencies and put bandwidth, as JSON', async () => {
    for (const bench of ['put_latency', 'get_latency', 'acc_latency', 'put_bw']) {
      const r = await mpilite(['bench', bench, '--sizes', '8,70000', '--iters', '20', '--warmup-ms', '20', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bench: string; ranks: number; unit: string; results: { size: number; value: number }[] };
      expect(j).toMatchObject({ bench, ranks: 2, unit: bench === 'put_bw' ? 'MB/s' : 'us' });
      expect(j.results.map((x) => x.size)).toEqual([8, 70000]);
      expect(j.results.every((x) => x.value > 0)).toBe(true);
    }
  });

  it('a point-to-point bench of one rank: a usage error before any rank starts; a rank that fails anyway ends the job', async () => {
    const one = await mpilite(['bench', 'latency', '-n', '1'], { timeoutMs: 30_000 });
    expect(one.code).toBe(2);
    expect(one.stderr).toContain('bench latency needs -n 2 or more');
    // The rank itself, started by hand with one rank: it used to print the
    // error and stay in the job, holding the launcher until killed.
    const r = await mpilite(['run', '-n', '1', cli, '__bench-rank', 'bw', '8', '10', 'text'], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('bw needs 2 ranks or more');
  });
});
