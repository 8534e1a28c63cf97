// ibv_cq: polled synchronously on the hot path, awaited without busy
// polling everywhere else.

import {
  CapacityError,
  InvalidArgumentError,
  NotSupportedError,
  ResourceBusyError,
  ResourceClosedError,
  WcStatus,
  WorkCompletionError,
  newWorkCompletion,
  wcStatusName,
} from '@ibal/hca';
import type { HcaCq, WorkCompletion } from '@ibal/hca';
import type { CompChannel } from './comp-channel.js';
import type { Context } from './context.js';
import { bindWrapper } from './events.js';
import { kDeliver, kEventTaken, kForget, kHandle, kLimits } from './internal.js';
import { Resource } from './resource.js';
import { PooledViews } from './views.js';

export interface CreateCqOptions {
  /** Where notifications requested with reqNotify are delivered (ibv_create_cq's channel). */
  channel?: CompChannel;
}

export interface NextOptions {
  signal?: AbortSignal;
  /** Reject with WorkCompletionError instead of resolving when the completion's status is not SUCCESS. */
  throwOnError?: boolean;
}

interface PendingWait {
  promise: Promise<void>;
  resolve(): void;
  reject(reason: unknown): void;
}

const EMPTY: readonly WorkCompletion[] = Object.freeze([]);

const wcOpcodeNames: Record<number, string> = {
  0: 'SEND',
  1: 'RDMA_WRITE',
  2: 'RDMA_READ',
  3: 'COMP_SWAP',
  4: 'FETCH_ADD',
  5: 'BIND_MW',
  6: 'LOCAL_INV',
  128: 'RECV',
  129: 'RECV_RDMA_WITH_IMM',
};

export class CQ extends Resource {
  readonly context: Context;
  readonly channel: CompChannel | undefined;
  readonly [kHandle]: HcaCq;
  readonly #results = new PooledViews(newWorkCompletion);
  /** next() polls into this, so it never overwrites what poll() returned. */
  readonly #single: WorkCompletion[] = [newWorkCompletion()];
  readonly #waiters = new Set<PendingWait>();
  #unacked = 0;

  /** @internal Use context.createCq(). */
  constructor(context: Context, channel: CompChannel | undefined, hca: HcaCq) {
    super(channel ? [context, channel] : [context]);
    this.context = context;
    this.channel = channel;
    this[kHandle] = hca;
    bindWrapper(hca, this);
  }

  /** @internal `make` builds the wrapper (createCqEx's CqEx); `timestamps` goes to the provider. */
  static create<T extends CQ>(
    context: Context,
    cqe: number,
    options: CreateCqOptions,
    make: (context: Context, channel: CompChannel | undefined, hca: HcaCq) => T = (c, ch, h) => new CQ(c, ch, h) as T,
    timestamps = false,
  ): T {
    context.assertOpen();
    const { channel } = options;
    if (channel !== undefined) {
      channel.assertOpen();
      if (channel.context !== context) throw new InvalidArgumentError('createCq: the completion channel belongs to another context');
    }
    if (!Number.isInteger(cqe) || cqe < 1) throw new InvalidArgumentError(`createCq: cqe must be a positive integer, got ${String(cqe)}`);
    const max = context[kLimits].maxCqe;
    if (cqe > max) throw new InvalidArgumentError(`createCq: cqe ${cqe} exceeds the device's maxCqe ${max}`);
    // The provider needs the callback before the wrapper exists.
    const late: { cq?: CQ } = {};
    const hca = context[kHandle].createCq(
      cqe,
      () => {
        if (late.cq !== undefined) late.cq.#notified();
      },
      timestamps ? { timestamps } : undefined,
    );
    const cq = make(context, channel, hca);
    late.cq = cq;
    return cq;
  }

  describe(): string {
    return 'CQ';
  }

  /** The number of entries the provider actually allocated (at least what was asked). */
  get cqe(): number {
    return this[kHandle].cqe;
  }

  /**
   * ibv_poll_cq: takes up to `n` completions without waiting.
   *
   * Allocation-free: the returned array and the WorkCompletion objects in it
   * belong to the CQ and are overwritten by the next poll() call on this
   * CQ. Copy anything you need to keep (next() and the async iterator hand
   * out copies and do not disturb them).
   */
  poll(n = 1): readonly WorkCompletion[] {
    if (this.closed) this.assertOpen();
    const results = this.#results;
    if (!(n >= 1 && n <= results.pool.length && Number.isInteger(n))) {
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`poll: n must be a positive integer, got ${String(n)}`);
      // As ibv_poll_cq, any n may be asked for; no more than the CQ holds can
      // come back, so the pool never grows past that (poll(2 ** 31) once ran
      // the process out of memory).
      n = Math.min(n, this.cqe);
      results.ensure(n);
    }
    const count = this[kHandle].poll(n, results.pool);
    return count === 0 ? EMPTY : results.view(count);
  }

  /**
   * ibv_resize_cq: at least `cqe` entries from now on (see cq.cqe); queued
   * completions stay, in order. Fewer entries than are queued is refused
   * (CapacityError, EINVAL in libibverbs).
   */
  resize(cqe: number): void {
    this.assertOpen();
    if (!Number.isInteger(cqe) || cqe < 1) throw new InvalidArgumentError(`resize: cqe must be a positive integer, got ${String(cqe)}`);
    const max = this.context[kLimits].maxCqe;
    if (cqe > max) throw new CapacityError(`resize: cqe ${cqe} exceeds the device's maxCqe ${max}`);
    const hca = this[kHandle];
    if (!hca.resize) throw new NotSupportedError(`resize: the ${this.context.device.provider} provider cannot resize CQs`);
    hca.resize(cqe);
  }

  /**
   * ibv_req_notify_cq: arms the CQ so the next completion (or the next
   * solicited one) produces one event on its channel. Arm, then poll again
   * before waiting, or a completion that arrived in between goes unnoticed.
   */
  reqNotify(solicitedOnly = false): void {
    if (this.closed) this.assertOpen();
    this[kHandle].reqNotify(solicitedOnly);
  }

  /**
   * Resolves with one completion (a copy), waiting through the CQ's
   * notification mechanism rather than by polling in a loop. When the CQ
   * has a channel, the arms this makes also produce events there, as any
   * ibv_req_notify_cq would.
   */
  async next(options: NextOptions = {}): Promise<WorkCompletion> {
    const { signal } = options;
    const hca = this[kHandle];
    for (;;) {
      this.assertOpen();
      signal?.throwIfAborted();
      if (hca.poll(1, this.#single) === 1) return this.#handOut(options);
      const woken = this.#wait(signal);
      try {
        hca.reqNotify(false);
      } catch (err) {
        this.#cancelWait(woken);
        throw err;
      }
      // A completion added between the poll above and the arm may not fire.
      if (hca.poll(1, this.#single) === 1) {
        this.#cancelWait(woken);
        return this.#handOut(options);
      }
      await woken.promise;
    }
  }

  /** Iterates completions (copies) as they arrive; ends when the CQ is destroyed. */
  async *completions(options: { signal?: AbortSignal } = {}): AsyncGenerator<WorkCompletion, void, undefined> {
    for (;;) {
      let wc: WorkCompletion;
      try {
        wc = await this.next(options);
      } catch (err) {
        if (err instanceof ResourceClosedError && this.closed) return;
        throw err;
      }
      yield wc;
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<WorkCompletion, void, undefined> {
    return this.completions();
  }

  /** ibv_ack_cq_events for events getCqEvent returned for this CQ. */
  ackEvents(count = 1): void {
    if (!Number.isInteger(count) || count < 1 || count > this.#unacked) {
      throw new InvalidArgumentError(`ackEvents: cannot acknowledge ${String(count)} events, ${this.#unacked} outstanding`);
    }
    this.#unacked -= count;
  }

  /**
   * ibv_destroy_cq; refused (EBUSY) while QPs use it or while events from
   * getCqEvent are unacknowledged (libibverbs would block forever there).
   */
  destroy(): void {
    this.closeWith('destroy', () => {
      if (this.#unacked > 0) {
        throw new ResourceBusyError(`cannot destroy CQ: ${this.#unacked} completion event(s) not acknowledged (ackCqEvents)`);
      }
      this[kHandle].destroy();
      this.channel?.[kForget](this);
      const err = new ResourceClosedError(this.describe());
      for (const w of this.#waiters) w.reject(err);
      this.#waiters.clear();
    });
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  [kEventTaken](): void {
    this.#unacked++;
  }

  #notified(): void {
    if (this.closed) return;
    this.channel?.[kDeliver](this);
    if (this.#waiters.size === 0) return;
    const woken = [...this.#waiters];
    this.#waiters.clear();
    for (const w of woken) w.resolve();
  }

  #wait(signal: AbortSignal | undefined): PendingWait {
    let settle!: (err?: unknown) => void;
    const promise = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    const onAbort = (): void => {
      this.#waiters.delete(w);
      settle(signal!.reason);
    };
    const w: PendingWait = {
      promise,
      resolve: () => {
        signal?.removeEventListener('abort', onAbort);
        settle();
      },
      reject: (reason) => {
        signal?.removeEventListener('abort', onAbort);
        settle(reason);
      },
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#waiters.add(w);
    return w;
  }

  #cancelWait(w: PendingWait): void {
    this.#waiters.delete(w);
    w.resolve();
  }

  #handOut(options: NextOptions): WorkCompletion {
    const wc = { ...this.#single[0]! };
    if (options.throwOnError && wc.status !== WcStatus.SUCCESS) {
      throw new WorkCompletionError(wcStatusName(wc.status), wc.status, wc.wrId, wcOpcodeName(wc.opcode));
    }
    return wc;
  }
}

/** The libibverbs name of a completion opcode (IBV_WC_*, without the prefix). */
export function wcOpcodeName(opcode: number): string {
  return wcOpcodeNames[opcode] ?? `UNKNOWN(${opcode})`;
}
