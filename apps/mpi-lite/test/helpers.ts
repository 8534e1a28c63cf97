import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const cli = path.join(appDir, 'dist', 'cli.js');
export const fixture = (name: string): string => path.join(appDir, 'test', 'fixtures', name);
export const example = (name: string): string => path.join(appDir, 'examples', name);

export interface Result {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `mpilite args...`; killed (by pid) if it outlives timeoutMs. */
export function mpilite(args: string[], o: { stdin?: string; timeoutMs?: number; env?: Record<string, string>; onStdout?: (text: string, pid: number) => void } = {}): Promise<Result> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    o.onStdout?.(stdout, child.pid!);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(o.stdin ?? '');
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, o.timeoutMs ?? 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}
