// `for await (const req of listener)`: a listening id whose CONNECT_REQUEST
// events become ConnectRequest objects, each accepted into a Connection or
// rejected with a reason.

import type { QpCapInit } from '@ibal/verbs';
import type { CmAddress, CmAddressInput } from './address.js';
import { Connection, eventError, nextEvent, setupBoundMs } from './connection.js';
import { CmEventType, EventChannel, type CmEvent, type ConnParam, type UdParam } from './event-channel.js';
import { CmId, createId, type ConnectParam, type CreateIdOptions } from './id.js';
import { RejReason } from './messages/rej.js';

export interface ListenOptions extends CreateIdOptions {
  /** Unanswered requests beyond this are rejected with NO_RESOURCES (rdma_listen's backlog). */
  backlog?: number;
}

export interface AcceptOptions extends ConnectParam {
  cap?: Partial<QpCapInit>;
}

export class ConnectRequest {
  /** The new id (its events now go to a channel of its own). */
  readonly id: CmId;
  /** The active side's private data (after rdma_cm's header; zero-padded to the message's size, as on IB). */
  readonly privateData: Uint8Array;
  readonly conn: ConnParam | undefined;
  readonly ud: UdParam | undefined;
  readonly #channel: EventChannel;
  #answered = false;

  /** @internal */
  constructor(ev: CmEvent) {
    this.id = ev.id;
    this.conn = ev.conn;
    this.ud = ev.ud;
    this.privateData = ev.conn?.privateData ?? ev.ud?.privateData ?? new Uint8Array(0);
    this.#channel = new EventChannel();
    this.id.migrateId(this.#channel);
  }

  get peerAddr(): CmAddress | undefined {
    return this.id.peerAddr;
  }

  /** Create the QP, accept, and (RC) wait for the RTU: resolves to the connection. */
  async accept(opts: AcceptOptions = {}): Promise<Connection> {
    this.#answered = true;
    const id = this.id;
    try {
      id.createQp(undefined, { cap: opts.cap });
      id.accept(opts);
      if (this.ud) return new Connection(id, this.#channel, this.privateData, this.ud);
      const ev = await nextEvent(this.#channel, setupBoundMs(id), 'accept');
      if (ev.event !== CmEventType.ESTABLISHED) throw eventError(ev, 'accept');
      return new Connection(id, this.#channel, this.privateData);
    } catch (err) {
      id.destroyQp();
      id.destroy();
      this.#channel.close();
      throw err;
    }
  }

  /** rdma_reject with private data and a reason (default CONSUMER_DEFINED); destroys the id. */
  reject(privateData?: Uint8Array, reason: number = RejReason.CONSUMER_DEFINED): void {
    this.#answered = true;
    try {
      this.id.reject(privateData, reason);
    } finally {
      this.id.destroy();
      this.#channel.close();
    }
  }

  get answered(): boolean {
    return this.#answered;
  }
}

export class Listener implements AsyncIterable<ConnectRequest>, AsyncDisposable {
  readonly id: CmId;
  readonly #channel: EventChannel;

  /** @internal */
  constructor(id: CmId, channel: EventChannel) {
    this.id = id;
    this.#channel = channel;
  }

  /** The bound address (port filled in when 0 was asked for). */
  get address(): CmAddress {
    return this.id.localAddr!;
  }

  /** The next connection request; undefined once the listener is closed. */
  async next(opts: { signal?: AbortSignal } = {}): Promise<ConnectRequest | undefined> {
    for (;;) {
      let ev: CmEvent;
      try {
        ev = await this.#channel.getCmEvent(opts);
      } catch (err) {
        if (this.#channel.closed) return undefined;
        throw err;
      }
      if (ev.event === CmEventType.CONNECT_REQUEST) return new ConnectRequest(ev);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ConnectRequest> {
    for (;;) {
      const r = await this.next();
      if (!r) return;
      yield r;
    }
  }

  close(): Promise<void> {
    this.id.destroy();
    this.#channel.close();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Bind and listen: `for await (const req of await listen(addr)) ...`. */
export async function listen(addr: CmAddressInput, opts: ListenOptions | null = {}): Promise<Listener> {
  opts ??= {};
  const ch = new EventChannel();
  const id = createId(ch, opts);
  try {
    await id.bindAddr(addr);
    id.listen(opts.backlog ?? 1024);
    return new Listener(id, ch);
  } catch (err) {
    id.destroy();
    ch.close();
    throw err;
  }
}
