// Spawns test/fixtures/peer.mjs and speaks its JSON-lines protocol. Every
// child is killed by PID when the test ends, and every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peer.mjs');

export interface PeerHello {
  qpn: number;
  gid: string;
  port: number;
  addr: number;
  rkey: number;
  psn: number;
}

export class PeerProcess {
  readonly child: ChildProcess;
  private readonly queue: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  stderr = '';

  /** `wrap`: a command the peer runs under (e.g. unshare), ahead of node and the fixture. */
  constructor(env: Record<string, string>, wrap: string[] = []) {
    const argv = [...wrap, process.execPath, fixture];
    this.child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.queue.push(JSON.parse(l));
      } catch {
        this.stderr += l + '\n';
      }
      this.waiters.splice(0).forEach((w) => w());
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.child.on('exit', () => this.waiters.splice(0).forEach((w) => w()));
  }

  /** The next message that has `key`, within `ms`. */
  async next<T = Record<string, unknown>>(key: string, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex((m) => key in m);
      if (i >= 0) return this.queue.splice(i, 1)[0] as T;
      const errIdx = this.queue.findIndex((m) => 'error' in m);
      if (errIdx >= 0) throw new Error(`peer reported ${JSON.stringify(this.queue[errIdx])}`);
      if (this.child.exitCode !== null) throw new Error(`peer exited (${this.child.exitCode}) before "${key}": ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for "${key}" from peer; stderr: ${this.stderr}`);
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
    this.child.stdin!.write(JSON.stringify(o) + '\n');
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.pid) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
