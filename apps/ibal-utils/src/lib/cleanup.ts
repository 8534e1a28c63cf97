// Verbs objects must be closed children first (a PD with live QPs refuses to
// go). Each resource registers its closer right after it is created, so an
// error half-way through setup still releases exactly what exists, in
// reverse order.
import { CliError } from './cli-error.js';

export class Cleanup {
  readonly #steps: (() => void)[] = [];

  add(step: () => void): void {
    this.#steps.push(step);
  }

  /** Runs every step, newest first; returns the errors instead of stopping at the first. */
  run(): unknown[] {
    const errors: unknown[] = [];
    while (this.#steps.length > 0) {
      const step = this.#steps.pop()!;
      try {
        step();
      } catch (err) {
        errors.push(err);
      }
    }
    return errors;
  }
}

/**
 * Runs `body` with a Cleanup, then the cleanup whatever happened: the
 * body's error wins, a failed cleanup step is an error of its own.
 */
export async function withCleanup<T>(body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup();
  let result: T | undefined;
  let failure: unknown;
  let failed = false;
  try {
    result = await body(cleanup);
  } catch (err) {
    failure = err;
    failed = true;
  }
  const errors = cleanup.run();
  if (failed) throw failure;
  if (errors.length > 0) throw new CliError(`cleanup failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
  return result as T;
}
