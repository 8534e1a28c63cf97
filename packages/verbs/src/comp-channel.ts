// ibv_comp_channel: where armed CQs report that a completion arrived.
// Mirrors ibv_get_cq_event: one event per arm (cq.reqNotify), the consumer
// polls the CQ afterwards and re-arms, and every event handed out must be
// acknowledged (ackCqEvents) before the CQ can be destroyed.

import { InvalidArgumentError, ResourceClosedError } from '@ibal/hca';
import { AsyncQueue, END } from './async-queue.js';
import type { Context } from './context.js';
import type { CQ } from './cq.js';
import { kDeliver, kEventTaken, kForget } from './internal.js';
import { Resource } from './resource.js';

export interface GetCqEventOptions {
  signal?: AbortSignal;
}

export class CompChannel extends Resource {
  readonly context: Context;
  readonly #events = new AsyncQueue<CQ>();

  /** @internal Use context.createCompChannel(). */
  constructor(context: Context) {
    super([context]);
    this.context = context;
  }

  describe(): string {
    return 'CompChannel';
  }

  /**
   * Waits for the next CQ event and returns the CQ that fired
   * (ibv_get_cq_event). The event counts as unacknowledged until
   * ackCqEvents.
   */
  getCqEvent(options?: GetCqEventOptions): Promise<CQ> {
    try {
      this.assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = options?.signal;
    if (signal) return this.#getCqEventAbortable(signal);
    // The common call, once per event of a busy connection: one promise and
    // one reaction, where an async function also built its own promise,
    // suspended frame and options object (~1 KB of garbage per event of an
    // SDP ping-pong, with the queue's taker, of ~5.5 KB all told).
    return this.#events.take().then(this.#taken);
  }

  readonly #taken = (cq: CQ | typeof END): CQ | Promise<CQ> => {
    if (cq === END) throw new ResourceClosedError(this.describe());
    // A CQ destroyed after its event was queued has had it withdrawn, but
    // one can race in between take() resolving and this running.
    if (cq.closed) return this.getCqEvent();
    cq[kEventTaken]();
    return cq;
  };

  async #getCqEventAbortable(signal: AbortSignal): Promise<CQ> {
    for (;;) {
      const cq = await this.#events.take(signal);
      if (cq === END) throw new ResourceClosedError(this.describe());
      if (cq.closed) continue;
      cq[kEventTaken]();
      return cq;
    }
  }

  /** ibv_ack_cq_events: acknowledges `count` events getCqEvent returned for `cq`. */
  ackCqEvents(cq: CQ, count = 1): void {
    if (cq.channel !== this) throw new InvalidArgumentError('ackCqEvents: the CQ does not use this completion channel');
    cq.ackEvents(count);
  }

  /** ibv_destroy_comp_channel; refused (EBUSY) while CQs use it. */
  destroy(): void {
    this.closeWith('destroy', () => this.#events.end(new ResourceClosedError(this.describe())));
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  [kDeliver](cq: CQ): void {
    this.#events.push(cq);
  }

  [kForget](cq: CQ): void {
    this.#events.remove((c) => c === cq);
  }
}
