// Child processes of the benchmark: JSON lines on stdout are collected as
// messages, every wait has a deadline, and every child is killed by its PID
// when the measurement ends, whether it succeeded or not.
import { spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';

const live = new Set();

export class Child {
  constructor(file, args, env = {}) {
    this.label = [file.split('/').pop(), ...args].join(' ');
    this.proc = spawn(process.execPath, [file, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.stdout = '';
    this.stderr = '';
    this.messages = [];
    this.wakers = [];
    live.add(this);
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.stdout += line + '\n';
      if (line.startsWith('{')) {
        try {
          this.messages.push(JSON.parse(line));
        } catch {
          // Not a message: kept in stdout only (a pretty-printed document starts with '{' too).
        }
      }
      this.wake();
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      this.wake();
    });
    this.proc.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        live.delete(this);
        this.wake();
        resolve(code ?? (signal ? 128 : 1));
      });
    });
  }

  wake() {
    this.wakers.splice(0).forEach((w) => w());
  }

  async #until(test, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = test();
      if (got !== undefined) return got;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`${this.label} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}: ${this.stderr.trim().slice(-400)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no ${what} within ${ms} ms: ${this.stderr.trim().slice(-400)}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The first message with `key`, within `ms`. */
  message(key, ms) {
    return this.#until(() => this.messages.find((m) => key in m), ms, `"${key}" message`);
  }

  /** Resolves once stdout or stderr matches `re`. */
  output(re, ms) {
    return this.#until(() => (re.test(this.stdout) || re.test(this.stderr) ? true : undefined), ms, `output ${re}`);
  }

  /** The exit code, within `ms` (then the child is killed and this throws). */
  async exit(ms) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`${this.label} did not exit within ${ms} ms: ${this.stderr.trim().slice(-400)}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  send(line) {
    if (!this.proc.stdin.destroyed) this.proc.stdin.write(line + '\n');
  }

  kill() {
    const pid = this.proc.pid;
    if (pid === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

export function killAll() {
  for (const c of live) c.kill();
  live.clear();
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
