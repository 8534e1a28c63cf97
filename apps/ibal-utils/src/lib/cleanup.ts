// Verbs objects must be closed children first (a PD with live QPs refuses to
// go). Each resource registers its closer right after it is created, so an
// error half-way through setup still releases exactly what exists, in
// reverse order.

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
