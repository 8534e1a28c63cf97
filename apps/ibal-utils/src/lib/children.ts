// Child processes of the demo: this same CLI run by this same Node, their
// output passed through line by line with a prefix, every wait bounded, and
// every child killed by its PID when the demo leaves.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { CliError } from './cli-error.js';

export class CliChild {
  readonly proc: ChildProcess;
  readonly exited: Promise<number>;
  readonly #seen: string[] = [];
  readonly #watchers = new Set<() => void>();

  constructor(
    cliPath: string,
    args: string[],
    readonly label: string,
    out: (line: string) => void,
    err: (line: string) => void,
  ) {
    this.proc = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const onLine = (sink: (line: string) => void) => (line: string) => {
      sink(`[${label}] ${line}`);
      this.#seen.push(line);
      for (const w of this.#watchers) w();
    };
    readline.createInterface({ input: this.proc.stdout! }).on('line', onLine(out));
    readline.createInterface({ input: this.proc.stderr! }).on('line', onLine(err));
    this.exited = new Promise<number>((resolve) => {
      this.proc.once('error', (e) => {
        err(`[${label}] could not start: ${e.message}`);
        resolve(127);
      });
      // 'close' rather than 'exit': by then every output line has been passed on.
      this.proc.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    this.exited.then(() => {
      for (const w of this.#watchers) w();
    });
  }

  /** Resolves once a line matching `re` has been printed; fails if the child exits first or time runs out. */
  async waitForLine(re: RegExp, timeoutMs: number): Promise<void> {
    let done = false;
    const exitedEarly = this.exited.then((code) => {
      if (!done) throw new CliError(`${this.label} exited (${code}) before printing ${re}`);
    });
    const found = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CliError(`${this.label} did not print ${re} within ${timeoutMs / 1000} s`)), timeoutMs);
      const check = (): void => {
        if (this.#seen.some((l) => re.test(l))) {
          clearTimeout(timer);
          this.#watchers.delete(check);
          resolve();
        }
      };
      this.#watchers.add(check);
      check();
    });
    try {
      await Promise.race([found, exitedEarly]);
    } finally {
      done = true;
    }
  }

  kill(): void {
    const pid = this.proc.pid;
    if (pid === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export async function freeTcpPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
