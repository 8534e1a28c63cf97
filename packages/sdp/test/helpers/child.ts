// Peer processes for cross-process tests: they run the built package, their
// JSON lines are collected, every wait is bounded and every child is killed
// by its PID when the suite ends.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const fixtures = path.resolve(here, '..', 'fixtures');
export const registerHook = path.resolve(here, '..', '..', 'dist', 'register.js');

export class Peer {
  readonly proc: ChildProcess;
  readonly messages: Record<string, unknown>[] = [];
  stderr = '';
  #wake: (() => void)[] = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.messages.push(JSON.parse(line) as Record<string, unknown>);
      this.#notify();
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.stdin!.on('error', () => {});
    this.proc.once('exit', () => this.#notify());
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /** The first message with `key`, within `ms`. */
  async message<T = Record<string, unknown>>(key: string, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.messages.find((x) => key in x);
      if (m) return m as T;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`peer exited (${this.proc.exitCode ?? this.proc.signalCode}) before "${key}": ${this.stderr.slice(-800)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${key}" from the peer within ${ms} ms: ${this.stderr.slice(-800)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
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

  exited(ms = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`peer did not exit within ${ms} ms`)), ms);
      this.proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** A loopback address of its own for a peer's soft device (so it can have UDP port 4791). */
export function privateLoopback(): string {
  return `127.0.${1 + Math.floor(Math.random() * 254)}.${2 + Math.floor(Math.random() * 250)}`;
}
