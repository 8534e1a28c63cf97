// A job whose /dev/shm has no room for every rank's rings (a container's
// is 64 MiB; a busy host's may be full): the ranks that got none reach their
// local peers over verbs, as Open MPI's sm BTL steps aside for the network's,
// and the job runs. Their init used to fail, and the job with it. The job
// runs in a mount namespace of its own with a small tmpfs on /dev/shm. And
// ranks that see different /dev/shm mounts are not one host's to share
// memory: they init over verbs (they failed on each other's segment).
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli, example, mpilite, type Result } from './helpers.js';

const skipReason =
  typeof process.getuid === 'function' && process.getuid() !== 0
    ? 'needs root for a mount namespace'
    : spawnSync('unshare', ['-m', 'true'], { timeout: 10_000 }).status !== 0
      ? '`unshare -m` is not available'
      : undefined;

/** `mpilite args...` with a tmpfs of `size` on /dev/shm; killed (by pid) if it outlives timeoutMs. */
function withSmallShm(size: string, args: string[], timeoutMs = 90_000): Promise<Result> {
  const t0 = Date.now();
  const script = `mount -t tmpfs -o size=${size} tmpfs /dev/shm && exec "$0" "$@"`;
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, process.execPath, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  it('says why, and fails, when verbs is not allowed', async () => {
    const r = await withSmallShm('64k', ['run', '-n', '2', '-x', 'MPILITE_TRANSPORTS=shm', example('hello.mjs')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/need the verbs transport \(no shared memory here: posix_fallocate .*No space left on device\), but MPILITE_TRANSPORTS=shm/);
  });
});
