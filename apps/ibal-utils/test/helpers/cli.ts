// Runs the built CLI (dist/cli.js) as a child process, the way a user runs
// it. Every child gets its own soft device on an ephemeral UDP port so test
// files can run in parallel, every wait is bounded, and every child still
// running when its test ends is killed by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');

const live = new Set<CliProcess>();

/** Kills every child a test left running; call from afterEach. */
export function killAll(): void {
  for (const p of live) p.kill();
  live.clear();
}

/** A soft device of its own: a unique name on 127.0.0.1, ephemeral UDP port. */
export function ownDevice(prefix = 't'): Record<string, string> {
  return { IBAL_SOFT_DEVICES: `${prefix}${randomBytes(3).toString('hex')}=127.0.0.1:0` };
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly done: Promise<Finished>;
  #wake: (() => void)[] = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      this.#notify();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.#notify();
    });
    this.done = new Promise((resolve) => {
      this.child.once('close', (code) => {
        live.delete(this);
        this.#notify();
        resolve({ code, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  #notify(): void {
    this.#wake.splice(0).forEach((w) => w());
  }

  /** Waits (bounded) until stdout or stderr matches `re`. */
  async waitFor(re: RegExp, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!re.test(this.stdout) && !re.test(this.stderr)) {
      if (this.child.exitCode !== null) throw new Error(`exited ${this.child.exitCode} before ${re}: ${this.stdout}${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}: ${this.stdout}${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The exit, or a kill and an error after `ms`. */
  async finish(ms = 30_000): Promise<Finished> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`ibal did not exit within ${ms} ms: ${this.stdout}${this.stderr}`));
      }, ms);
    });
    try {
      return await Promise.race([this.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    const pid = this.child.pid;
    if (pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, ms = 30_000): Promise<Finished> {
  return new CliProcess(args, env).finish(ms);
}

/**
 * Starts a server, waits until it listens (`ready` on its output), runs the
 * client against it, and returns both results.
 */
export async function serverAndClient(
  server: string[],
  client: string[],
  ready: RegExp,
  // Below vitest's 60 s test timeout, so a hang reports both sides' output.
  ms = 45_000,
): Promise<{ server: Finished; client: Finished }> {
  const s = new CliProcess(server, ownDevice('s'));
  await s.waitFor(ready);
  const c = new CliProcess(client, ownDevice('c'));
  const [cr, sr] = await Promise.all([c.finish(ms), s.finish(ms)]);
  return { server: sr, client: cr };
}
