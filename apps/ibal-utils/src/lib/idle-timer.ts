// One bounded wait for a whole run: the signal aborts when nothing has
// progressed for `ms`. Make one per run and stop it when the run ends: once
// fired it stays fired.
//
// progress() runs once per completion, inside latency loops, so it only
// bumps a count: re-arming a timer there (refresh) cost each message a trip
// through the timer list. A ticker a quarter of the wait apart looks at the
// count instead, so the wait ends between `ms` and 1.25 `ms` after the last
// progress.
import { CliError } from './cli-error.js';

const TICKS = 4;

export class IdleTimer {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  #moves = 0;
  #seen = 0;
  #quietTicks = 0;
  /** The abort reason once fired: check() runs on every spin, and reading signal.aborted goes through a getter's brand check. */
  #fired: IdleTimeoutError | undefined;

  constructor(
    readonly ms: number,
    what: () => string,
  ) {
    this.#timer = setInterval(() => {
      if (this.#moves !== this.#seen) {
        this.#seen = this.#moves;
        this.#quietTicks = 0;
        return;
      }
      if (++this.#quietTicks < TICKS) return;
      clearInterval(this.#timer);
      this.#fired = new IdleTimeoutError(`timed out after ${ms / 1000} s ${what()}`);
      this.#controller.abort(this.#fired);
    }, Math.max(1, ms / TICKS));
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throws the timeout error if the timer fired. */
  check(): void {
    if (this.#fired) throw this.#fired;
  }

  progress(): void {
    this.#moves++;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

export class IdleTimeoutError extends CliError {
  constructor(message: string) {
    super(message);
    this.name = 'IdleTimeoutError';
  }
}
