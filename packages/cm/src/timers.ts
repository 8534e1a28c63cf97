// CM timeouts are IBA time exponents (4.096 µs · 2^n); Linux's CM rounds
// them to milliseconds as 2^(n-8). Every timer the CM starts goes through a
// TimerSet so that none outlives its owner and tests can count them.

/** An IBA time exponent in milliseconds, as Linux's cm_convert_to_ms does. */
export function ibaTimeMs(exp: number): number {
  return 2 ** Math.max(exp - 8, 0);
}

export class TimerSet {
  readonly #timers = new Set<NodeJS.Timeout>();

  get size(): number {
    return this.#timers.size;
  }

  start(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    this.#timers.delete(t);
  }

  clear(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
