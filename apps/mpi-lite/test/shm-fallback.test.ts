// A job whose /dev/shm has no room for every rank's rings (a container's
// is 64 MiB; a busy host's may be full): the ranks that got none reach their
// local peers over verbs, as Open MPI's sm BTL steps aside for the network's,
// and the job runs. Their init used to fail, and the job with it. The job
// runs in a mount namespace of its own with a small tmpfs on /dev/shm. And
// ranks that see different /dev/shm mounts are not one host's to share
// memory: they init over verbs (they failed on each other's segment); nor are
// ranks that process_vm_readv may not read.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, example, fixture, mpilite, type Result } from './helpers.js';

const skipReason =
  typeof process.getuid === 'function' && process.getuid() !== 0
    ? 'needs root for a mount namespace'
    : spawnSync('unshare', ['-m', 'true'], { timeout: 10_000 }).status !== 0
      ? '`unshare -m` is not available'
      : spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'true'], { timeout: 10_000 }).status !== 0
        ? '`setpriv` to nobody is not available'
        : undefined;

/** Runs `argv`; killed (by pid) if it outlives timeoutMs. */
function run(argv: string[], cwd?: string, timeoutMs = 90_000): Promise<Result> {
  const t0 = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** `mpilite args...` with a tmpfs of `size` on /dev/shm. */
function withSmallShm(size: string, args: string[]): Promise<Result> {
  const script = `mount -t tmpfs -o size=${size} tmpfs /dev/shm && exec "$0" "$@"`;
  return run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, process.execPath, cli, ...args]);
}

describe.skipIf(skipReason !== undefined)(`a job short of shared memory${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('runs with some ranks on verbs when only some get their rings', async () => {
    // Room for two of the four ranks' segments (about 1 MiB each).
    const r = await withSmallShm('2200k', ['run', '-n', '4', example('demo.mjs')]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const without = r.stderr.match(/no shared memory for the local transport/g) ?? [];
    expect(without.length).toBeGreaterThanOrEqual(1);
    expect(without.length).toBeLessThan(4);
    expect(r.stdout).toContain('token came back as 6 (expected 6)');
    expect(r.stdout).toContain('every element = 10 (expected 10)');
  });

  it('runs on verbs alone when no rank gets any', async () => {
    const r = await withSmallShm('64k', ['run', '-n', '2', example('demo.mjs')]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr.match(/no shared memory for the local transport \(posix_fallocate [^)]*No space left on device\)/g)).toHaveLength(2);
    expect(r.stdout).toContain('rank 0 reaches the others via verbs');
    expect(r.stdout).toContain('token came back as 1 (expected 1)');
  });

  it('reaches a rank with a /dev/shm of its own over verbs (containers sharing the host network and PIDs, not its IPC)', async () => {
    // Each rank in a mount namespace of its own: the same boot, network and PIDs, another /dev/shm.
    const own = `mount -t tmpfs tmpfs /dev/shm && exec "$0" "$@"`;
    const r = await mpilite(['run', '-n', '2', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', own, process.execPath, example('demo.mjs')], { timeoutMs: 90_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('rank 0 reaches the others via verbs');
    expect(r.stdout).toContain('token came back as 1 (expected 1)');
  });

  it('reaches a rank that process_vm_readv may not read over verbs (Yama ptrace_scope 1, a process that is not dumpable)', async () => {
    // As nobody, with rank 1 under a setgid copy of node: not dumpable, so rank 0 may not read it.
    // Rank 0 used to fail its receive of rank 1's 1 MiB with VmPermissionError.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-sg-'));
    try {
      fs.chmodSync(dir, 0o755);
      const node = path.join(dir, 'node');
      fs.copyFileSync(process.execPath, node);
      fs.chmodSync(node, 0o2755);
      const wrapper = path.join(dir, 'rank.sh');
      fs.writeFileSync(wrapper, `#!/bin/sh\nif [ "$MPILITE_RANK" = 1 ]; then exec ${node} "$@"; else exec ${process.execPath} "$@"; fi\n`, { mode: 0o755 });
      const r = await run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, cli, 'run', '-n', '2', '--', wrapper, fixture('pull-both.mjs')], os.tmpdir());
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toContain('[0] rank 0: intact via verbs');
      expect(r.stdout).toContain('[1] rank 1: intact via verbs');
      expect(r.stderr).toContain('rank 0: process_vm_readv may not read local rank(s) 1');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says why, and fails, when verbs is not allowed', async () => {
    const r = await withSmallShm('64k', ['run', '-n', '2', '-x', 'MPILITE_TRANSPORTS=shm', example('hello.mjs')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/need the verbs transport \(no shared memory here: posix_fallocate .*No space left on device\), but MPILITE_TRANSPORTS=shm/);
  });
});
