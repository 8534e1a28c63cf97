// Spawns test/fixtures/sys-peer.mjs in a role (SYS_MODE) and speaks its
// JSON-lines protocol. Every wait is bounded; kill() is by PID.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'sys-peer.mjs');

export class SysChild {
  readonly child: ChildProcess;
  private readonly queue: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(mode: string, env: Record<string, string> = {}, options: Pick<SpawnOptions, 'uid' | 'gid'> = {}) {
    this.child = spawn(process.execPath, [fixture], {
      env: { ...process.env, ...env, SYS_MODE: mode },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...options,
    });
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.queue.push(JSON.parse(l));
      } catch {
        this.stderr += l + '\n';
      }
      this.wake();
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => (this.wake(), resolve(code))));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private wake(): void {
    this.waiters.splice(0).forEach((w) => w());
  }

  /** The next message that has `key`, within `ms`. */
  async next<T = Record<string, unknown>>(key: string, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex((m) => key in m);
      if (i >= 0) return this.queue.splice(i, 1)[0] as T;
      const e = this.queue.find((m) => 'error' in m);
      if (e) throw new Error(`sys-peer reported ${String(e.error)}`);
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`sys-peer exited (${this.child.exitCode ?? this.child.signalCode}) before "${key}": ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for "${key}" from sys-peer; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(o: unknown): void {
    if (!this.child.stdin!.destroyed) this.child.stdin!.write(JSON.stringify(o) + '\n');
  }

  /** SIGKILL by PID; resolves once the process is gone (bounded). */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
  }
}
