// README examples as tests. A fenced block whose info string carries the
// word `runnable` (```ts runnable, ```js runnable ranks=4) is a complete
// program: each package's test suite runs it against the built package, as a
// user who pasted it would, so an example cannot quietly stop working.
// Fragments (no `runnable`) are left alone. GitHub renders the block by its
// first word only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const FENCE = /^```(ts|js)\b([^\n]*)\n([\s\S]*?)^```$/gm;

/** The runnable examples of `<pkgDir>/README.md`, in order (types: readme.d.mts). */
export function readmeExamples(pkgDir) {
  const text = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8');
  const out = [];
  for (const m of text.matchAll(FENCE)) {
    const words = m[2].trim().split(/\s+/);
    if (!words.includes('runnable')) continue;
    const ranks = Number(words.find((w) => w.startsWith('ranks='))?.slice(6) ?? 0);
    const line = text.slice(0, m.index).split('\n').length;
    out.push({ line, lang: m[1], ranks, code: m[3] });
  }
  return out;
}

/**
 * Writes the example where the package's own imports resolve (its test
 * folder: the package's name refers to itself, its dependencies are in its
 * node_modules), TypeScript stripped to JavaScript. Returns the file's path;
 * `removeExample` deletes it.
 */
export function writeExample(pkgDir, example) {
  const dir = path.join(pkgDir, 'test', '.readme');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `line-${example.line}-${process.pid}.mjs`);
  const js =
    example.lang === 'ts'
      ? ts.transpileModule(example.code, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
          reportDiagnostics: false,
        }).outputText
      : example.code;
  fs.writeFileSync(file, js);
  return file;
}

export function removeExample(file) {
  fs.rmSync(file, { force: true });
  try {
    fs.rmdirSync(path.dirname(file));
  } catch {
    // Not empty: another test worker's example is still there, and it removes the folder.
  }
}

/**
 * Runs one file with node and collects its output; after `timeoutMs` the
 * process is killed by its pid and the result says so.
 */
export function runNode(file, { timeoutMs = 30_000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], {
      cwd: path.dirname(file),
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const res = { code: null, signal: null, stdout: '', stderr: '', timedOut: false };
    child.stdout.on('data', (d) => (res.stdout += d));
    child.stderr.on('data', (d) => (res.stderr += d));
    const timer = setTimeout(() => {
      res.timedOut = true;
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(res);
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      res.code = code;
      res.signal = signal;
      // The rest of its output is still in the pipes; a grandchild holding them must not hold the test.
      setTimeout(settle, 2000).unref();
    });
    child.on('close', settle);
  });
}

/**
 * Declares one test per runnable example of the package's README (and one
 * that there is at least one): each must exit with status 0 (every rank,
 * for a job), write nothing to stderr, and print something. `launch` runs
 * examples marked `ranks=N` (an MPI job); without it they are an error.
 */
export function describeReadme(pkgUrl, { launch, timeoutMs = 30_000 } = {}) {
  const pkgDir = fileURLToPath(pkgUrl);
  const examples = readmeExamples(pkgDir);
  describe('README.md', () => {
    it('has a runnable example', () => {
      expect(examples.length).toBeGreaterThan(0);
    });
    for (const ex of examples) {
      it(`the example at line ${ex.line} runs`, { timeout: timeoutMs + 10_000 }, async () => {
        const file = writeExample(pkgDir, ex);
        try {
          if (ex.ranks > 0 && !launch) throw new Error(`README.md:${ex.line} needs ${ex.ranks} ranks and no launcher was given`);
          const runs = ex.ranks > 0 ? await launch(file, ex.ranks, timeoutMs) : [await runNode(file, { timeoutMs })];
          for (const r of runs) {
            expect(r.timedOut, `README.md:${ex.line} did not end within ${timeoutMs} ms`).toBe(false);
            expect(r.stderr).toBe('');
            expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
          }
          expect(runs.map((r) => r.stdout.trim()).join('')).not.toBe('');
        } finally {
          removeExample(file);
        }
      });
    }
  });
}
