import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeExamples, removeExample, runNode, writeExample } from '../readme.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-readme-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('README examples', () => {
  it('finds the blocks marked runnable, with their line, language and ranks, and skips fragments', () => {
    fs.writeFileSync(
      path.join(dir, 'README.md'),
      [
        '# pkg', // 1
        '```ts runnable', // 2
        'const n: number = 1;',
        'console.log(n);',
        '```',
        '```ts', // 6: a fragment
        'cq.poll(16);',
        '```',
        '```sh runnable', // 9: not JavaScript
        'ls',
        '```',
        '```js runnable ranks=3', // 12
        "console.log('rank');",
        '```',
      ].join('\n'),
    );
    const ex = readmeExamples(dir);
    expect(ex.map(({ line, lang, ranks }) => ({ line, lang, ranks }))).toEqual([
      { line: 2, lang: 'ts', ranks: 0 },
      { line: 12, lang: 'js', ranks: 3 },
    ]);
    expect(ex[0]!.code).toBe('const n: number = 1;\nconsole.log(n);\n');
  });

  it('strips TypeScript, runs the file and removes it', async () => {
    const [ex] = readmeExamples(dir);
    const file = writeExample(dir, ex!);
    try {
      const r = await runNode(file);
      expect(r).toEqual({ code: 0, signal: null, stdout: '1\n', stderr: '', timedOut: false });
    } finally {
      removeExample(file);
    }
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  it('reports a failing example: its status and stderr', async () => {
    const file = writeExample(dir, { line: 1, lang: 'js', ranks: 0, code: "console.error('bad'); process.exitCode = 2;" });
    try {
      const r = await runNode(file);
      expect(r).toMatchObject({ code: 2, stderr: 'bad\n', timedOut: false });
    } finally {
      removeExample(file);
    }
  });

  it('kills an example that does not end in time', async () => {
    const file = writeExample(dir, { line: 1, lang: 'js', ranks: 0, code: 'setInterval(() => {}, 1000);' });
    try {
      const r = await runNode(file, { timeoutMs: 500 });
      expect(r).toMatchObject({ code: null, signal: 'SIGKILL', timedOut: true });
    } finally {
      removeExample(file);
    }
  });
});
