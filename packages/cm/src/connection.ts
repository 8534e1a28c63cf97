// The promise style over the event API: `await connect(addr)` resolves to a
// connected endpoint (id, QP, PD, CQs) or rejects with a named error;
// `disconnect()` resolves once the CM has reported DISCONNECTED.

import type { Context, CQ, PD, QP, QpCapInit } from '@ibal/verbs';
import type { CmAddress, CmAddressInput } from './address.js';
import { ConnectionError, ConnectionRejectedError, CmTimeoutError, SidrError } from './errors.js';
import { CmEventType, EventChannel, type CmEvent, type UdParam } from './event-channel.js';
import { CmId, createId, type ConnectParam, type CreateIdOptions } from './id.js';
import { sidrStatusName } from './messages/sidr.js';
import { ibaTimeMs } from './timers.js';

export interface ConnectOptions extends CreateIdOptions, ConnectParam {
  /** Source address: picks the local device. */
  src?: CmAddressInput;
  /** QP capacities (defaults: 64 WRs each way, 1 SGE, no inline data). */
  cap?: Partial<QpCapInit>;
  /** Bound on the whole setup; by default what the CM's own retries take, plus 5 s. */
  timeoutMs?: number;
}

/** How long the CM itself may take to give up on a request with these options. */
export function setupBoundMs(id: CmId): number {
  const o = id.options;
  return (o.maxCmRetries + 1) * (ibaTimeMs(o.cmResponseTimeout) + 2) + ibaTimeMs(o.mraServiceTimeout) + 5000;
}

/** The next event for `id` on `ch`, or a CmTimeoutError after `ms`. */
export async function nextEvent(ch: EventChannel, ms: number, what: string): Promise<CmEvent> {
  try {
    return await ch.getCmEvent({ timeoutMs: ms });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'TimeoutError') throw new CmTimeoutError(what);
    throw err;
  }
}

export function eventError(ev: CmEvent, what: string): Error {
  switch (ev.event) {
    case CmEventType.REJECTED:
      return new ConnectionRejectedError(ev.status, ev.conn?.privateData);
    case CmEventType.UNREACHABLE:
      if (ev.status > 0) return new SidrError(ev.status, sidrStatusName(ev.status));
      return new CmTimeoutError(what);
    default:
      return new ConnectionError(`${what}: ${ev.eventName}${ev.reason ? ` (${ev.reason})` : ''}`);
  }
}

/** A connected endpoint. Its id reports on a channel of its own. */
export class Connection implements AsyncDisposable {
  readonly id: CmId;
  readonly qp: QP;
  readonly pd: PD;
  readonly sendCq: CQ;
  readonly recvCq: CQ;
  readonly context: Context;
  /** The peer's private data: the REP's for the active side, the REQ's (after rdma_cm's header) for the passive side. */
  readonly privateData: Uint8Array;
  /** UDP ids: the remote QP learned by SIDR. */
  readonly ud: UdParam | undefined;
  /** Resolves when the CM reports DISCONNECTED (from either side); the value is the event. */
  readonly disconnected: Promise<CmEvent>;
  readonly #channel: EventChannel;
  #closing: Promise<void> | undefined;
  #onDisconnected!: (e: CmEvent) => void;
  #onTimewaitExit!: () => void;
  readonly #timewaitExit: Promise<void>;

  /** @internal */
  constructor(id: CmId, channel: EventChannel, privateData: Uint8Array, ud?: UdParam) {
    this.id = id;
    this.qp = id.qp!;
    this.pd = id.pd!;
    this.sendCq = id.sendCq!;
    this.recvCq = id.recvCq!;
    this.context = id.verbs!;
    this.privateData = privateData;
    this.ud = ud;
    this.#channel = channel;
    this.disconnected = new Promise((resolve) => (this.#onDisconnected = resolve));
    this.#timewaitExit = new Promise((resolve) => (this.#onTimewaitExit = resolve));
    void this.#pump();
  }

  get localAddr(): CmAddress | undefined {
    return this.id.localAddr;
  }

  get peerAddr(): CmAddress | undefined {
    return this.id.peerAddr;
  }

  async #pump(): Promise<void> {
    for await (const ev of this.#channel) {
      if (ev.event === CmEventType.DISCONNECTED) this.#onDisconnected(ev);
      else if (ev.event === CmEventType.TIMEWAIT_EXIT) this.#onTimewaitExit();
    }
  }

  /** rdma_disconnect, resolved once DISCONNECTED is reported (the peer's DREP, or the DREQ's retries running out). */
  async disconnect(): Promise<void> {
    // A UD "connection" is what SIDR learned; there is nothing to tear down.
    if (this.ud) return;
    try {
      this.id.disconnect();
    } catch (err) {
      if (!this.id.destroyed) throw err;
    }
    await raceTimeout(this.disconnected, setupBoundMs(this.id), 'disconnect');
  }

  /**
   * Disconnect (if still connected), wait out timewait, then destroy the QP,
   * its PD and CQs, and the id.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (!this.ud) {
          await this.disconnect().catch(() => undefined);
          await raceTimeout(this.#timewaitExit, this.id.options.timewaitMs + setupBoundMs(this.id), 'timewait').catch(() => undefined);
        }
      } finally {
        this.id.destroyQp();
        this.id.destroy();
        this.#channel.close();
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function raceTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new CmTimeoutError(what)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * Resolve, route, create a QP and connect: resolves to the connected
 * endpoint, or rejects with ConnectionRejectedError (REJ and its reason),
 * CmTimeoutError (no answer), SidrError or ConnectionError.
 */
export async function connect(addr: CmAddressInput, opts: ConnectOptions | null = {}): Promise<Connection> {
  opts ??= {};
  const ch = new EventChannel();
  const id = createId(ch, opts);
  const bound = opts.timeoutMs ?? setupBoundMs(id);
  try {
    id.resolveAddr(addr, { src: opts.src });
    let ev = await nextEvent(ch, bound, 'resolveAddr');
    if (ev.event !== CmEventType.ADDR_RESOLVED) throw eventError(ev, 'resolveAddr');
    id.resolveRoute();
    ev = await nextEvent(ch, bound, 'resolveRoute');
    if (ev.event !== CmEventType.ROUTE_RESOLVED) throw eventError(ev, 'resolveRoute');
    id.createQp(undefined, { cap: opts.cap });
    id.connect(opts);
    ev = await nextEvent(ch, bound, 'connect');
    if (ev.event !== CmEventType.ESTABLISHED) throw eventError(ev, 'connect');
    return new Connection(id, ch, ev.conn?.privateData ?? ev.ud?.privateData ?? new Uint8Array(0), ev.ud);
  } catch (err) {
    id.destroyQp();
    id.destroy();
    ch.close();
    throw err;
  }
}
