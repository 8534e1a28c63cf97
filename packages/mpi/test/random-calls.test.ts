// Random MPI calls, most with wrong arguments (fixtures/random-calls.mjs):
// null, mistyped and out-of-range ranks, tags, buffers, counts and ops, in a
// job of one. Found: ops that were not Ops, collectives given a receive
// buffer of another element type (BigInt into Float32Array), Scan with a
// short receive buffer, and reduce of values that are not numbers all threw
// TypeErrors or RangeErrors from inside; a Buffer as a collective's buffer
// made arrays with Node's deprecated Buffer() constructor.
import { expect, it } from 'vitest';
import { runProcesses } from './helpers.js';

const base = Number(process.env.MPI_TEST_SEED ?? Math.floor(Math.random() * 1e6));

it.each([0, 1, 2])(`every failure of random calls is a typed error and nothing hangs (seed ${base} + %i)`, async (i) => {
  const r = await runProcesses([{}], 'random-calls.mjs', [String(base + i), '800'], { timeoutMs: 100_000 });
  expect(r.codes, r.stderr.join('')).toEqual([0]);
  const [summary, ...bad] = r.stdout[0]!.trim().split('\n');
  const s = JSON.parse(summary!) as { ok: number; typed: number; bad: number };
  expect(bad).toEqual([]);
  expect(s.bad).toBe(0);
  expect(s.ok).toBeGreaterThan(0);
  expect(s.typed).toBeGreaterThan(0);
  // Node's deprecation warnings go to stderr: none may come from MPI.
  expect(r.stderr.join('')).not.toContain('DeprecationWarning');
}, 120_000);
