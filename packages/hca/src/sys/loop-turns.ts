// Runs a function on every turn of the event loop until stopped, the way a
// reader polls shared memory for a while after traffic. setImmediate would
// do, but allocates an Immediate and a closure per turn, and a loop polling
// between the packets of a ping-pong turns every 2-3 µs: in an SDP
// ping-pong that garbage was nearly half of what each process allocated
// (a sampling profile: ~110 of 238 MB), so nearly half of its scavenges,
// each stalling the round trip in flight by 0.2-0.7 ms here. The addon's
// LoopSpin re-uses one libuv idle handle for every turn instead (a turn
// then costs ~1.7 µs against ~2.6, and Node's own per-turn garbage is what
// remains); setImmediate remains where the addon is missing or predates it.
import { trySys } from './load.js';
import type { NativeLoopSpin } from './load.js';

export class LoopTurns {
  readonly #fn: () => void;
  readonly #native: NativeLoopSpin | undefined;
  #on = false;
  #immediate = false;
  #closed = false;

  /** `native: false` takes the setImmediate path even where the addon has LoopSpin. */
  constructor(fn: () => void, options: { native?: boolean } = {}) {
    this.#fn = fn;
    const Native = options.native === false ? undefined : trySys()?.LoopSpin;
    this.#native = Native ? new Native(fn) : undefined;
  }

  /** `fn` runs on every loop turn from the next one on, until stop(); the loop does not block meanwhile. */
  start(): void {
    if (this.#on || this.#closed) return;
    this.#on = true;
    if (this.#native) this.#native.start();
    else if (!this.#immediate) {
      this.#immediate = true;
      setImmediate(this.#turn);
    }
  }

  stop(): void {
    if (!this.#on) return;
    this.#on = false;
    this.#native?.stop();
  }

  get running(): boolean {
    return this.#on;
  }

  /** Whether the addon's idle handle turns it (otherwise setImmediate does). */
  get native(): boolean {
    return this.#native !== undefined;
  }

  /** Stops for good and releases the loop handle. */
  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#closed = true;
    this.#native?.close();
  }

  readonly #turn = (): void => {
    this.#immediate = false;
    if (!this.#on) return;
    this.#fn();
    if (this.#on && !this.#immediate) {
      this.#immediate = true;
      setImmediate(this.#turn);
    }
  };
}
