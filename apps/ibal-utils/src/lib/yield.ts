// The soft HCA runs on this thread's event loop: its UDP socket delivers
// packets, and with them completions, only when the loop gets to run. A poll
// loop therefore yields one macrotask turn (I/O runs in it) between empty
// polls; a synchronous spin would wait forever.
//
// Packets from a peer on the same host arrive through shared memory instead,
// which the device drains synchronously whenever it is asked to make progress
// (cq.poll on an empty CQ, context.progress()). There a short busy-poll beats
// a trip around the event loop by microseconds, as perftest's spinning does
// against hardware; it is bounded, and taken only while progress is moving
// packets, so a UDP-only device never spins.
import type { Context } from '@ibal/verbs';

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Yields a turn, then asks `done` again, until it says true (it bounds itself, e.g. with an IdleTimer). */
export async function yieldUntil(done: () => boolean): Promise<void> {
  do await nextTurn();
  while (!done());
}

/** How long a wait keeps polling after the last packet progress moved, before yielding a turn. */
const SPIN_MS = 0.05;

export class ProgressSpinner {
  #mark = 0;
  #empty = 0;
  #productive = false;

  constructor(private readonly ctx: Context) {}

  /** A wait starts: its spin window opens now. */
  begin(): void {
    this.#empty = 0;
  }

  /**
   * After an empty poll: drives the device once and says whether to poll
   * again at once (true) or to yield a turn first (false).
   */
  spin(): boolean {
    if (this.ctx.progress() > 0) {
      this.#productive = true;
      this.#empty = 0;
      return true;
    }
    if (!this.#productive) return false;
    // The clock is read on every 16th empty spin only (a read costs ~50 ns,
    // as much as the spin itself): the window opens at the 16th and closes
    // SPIN_MS later.
    const n = ++this.#empty;
    if ((n & 15) !== 0) return true;
    const now = performance.now();
    if (n === 16) this.#mark = now;
    else if (now - this.#mark >= SPIN_MS) {
      this.#empty = 0;
      return false;
    }
    return true;
  }
}
