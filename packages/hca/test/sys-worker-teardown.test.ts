// A worker thread that ends (terminate(), or its script returning) while
// one of the addon's handles is live must not take the process down. Node
// unloads the addon after the worker's environment is gone, so a libuv
// close callback still pending then ran unmapped code (SIGSEGV); a futex
// thread outlived its std::thread (std::terminate) and then its shared
// mapping (SIGSEGV). Each case runs in a child process, so a crash fails
// the test instead of the runner.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { trySys } from '../src/sys/load.js';

const addon = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'native', 'sys', 'build', 'Release', 'ibal_sys.node');
const skip = !trySys() && process.env.IBAL_NATIVE_REQUIRED !== '1';

const cases: Record<string, string> = {
  'a started WakePipe': `globalThis.h = new a.WakePipe(() => {}); h.start();`,
  'a started LoopSpin': `globalThis.h = new a.LoopSpin(() => {}); h.start();`,
  'a reading BatchSocket': `globalThis.h = new a.BatchSocket({ kind: 'udp', family: 4, address: '127.0.0.1', port: 0, onRead: () => {} }); h.start();`,
  // Terminated inside a call that builds objects: the error node-addon-api
  // raised for the failed call could not be thrown into JS and escaped
  // (std::terminate) until NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS.
  'a BatchSocket method called in a loop': `globalThis.h = new a.BatchSocket({ kind: 'udp', family: 4, address: '127.0.0.1', port: 0 }); setImmediate(() => { for (let i = 0; ; i++) { h.errors(); if (EXIT && i === 100000) process.exit(0); } });`,
  'an armed FutexWaiter on a memfd word': `const m = a.memfdMap(4096); globalThis.m = m; globalThis.h = new a.FutexWaiter(m.buffer, 0, () => {}, 4); h.arm(0, 60000);`,
};

function run(body: string, end: 'terminate' | 'exit'): ReturnType<typeof spawnSync> {
  // 'exit': the worker's own process.exit() ends it with the handle live.
  const tail = end === 'exit' ? `setTimeout(() => process.exit(0), 20);` : '';
  const script = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(${JSON.stringify(`const EXIT = ${end === 'exit'}; const a = require(${JSON.stringify(addon)}); `)} + ${JSON.stringify(body)} + "require('node:worker_threads').parentPort.postMessage('up');" + ${JSON.stringify(tail)}, { eval: true });
    w.on('error', (e) => { console.log('worker error ' + e.message); process.exitCode = 3; });
    w.on('exit', () => console.log('worker ended'));
    w.once('message', () => { if (${JSON.stringify(end)} === 'terminate') w.terminate(); });`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
}

describe.skipIf(skip)('native handles when their worker thread ends', () => {
  for (const [name, body] of Object.entries(cases)) {
    for (const end of ['terminate', 'exit'] as const) {
      it(`${name}: worker ${end === 'terminate' ? 'terminated' : 'calls process.exit'}`, () => {
        const r = run(body, end);
        expect(r.signal).toBe(null);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('worker ended\n');
        expect(r.status).toBe(0);
      });
    }
  }
});
