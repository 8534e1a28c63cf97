// One bounded wait for a whole run: the signal aborts when nothing has
// progressed for `ms`. Progress refreshes the timer rather than creating a
// timer per wait, which would leave thousands pending in a long run. Make
// one per run and stop it when the run ends: once fired it stays fired.
import { CliError } from './cli-error.js';

export class IdleTimer {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly ms: number,
    what: () => string,
  ) {
    this.#timer = setTimeout(() => {
      this.#controller.abort(new IdleTimeoutError(`timed out after ${ms / 1000} s ${what()}`));
    }, ms);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throws the timeout error if the timer fired. */
  check(): void {
    this.#controller.signal.throwIfAborted();
  }

  progress(): void {
    this.#timer.refresh();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

export class IdleTimeoutError extends CliError {
  constructor(message: string) {
    super(message);
    this.name = 'IdleTimeoutError';
  }
}
