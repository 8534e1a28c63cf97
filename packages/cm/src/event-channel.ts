// rdma_event_channel: where a CM id's events arrive, in order. Events are
// taken with getCmEvent() (rdma_get_cm_event) or by async iteration;
// ackCmEvent is kept for line-by-line ports of C code and costs nothing.

import { InvalidArgumentError, RdmaCmEventType, ResourceBusyError, ResourceClosedError } from '@ibal/hca';
import type { CmId } from './id.js';

/** enum rdma_cm_event_type: the one table the native librdmacm binding also uses. */
export const CmEventType = RdmaCmEventType;
export type CmEventType = (typeof CmEventType)[keyof typeof CmEventType];

const eventNames = Object.keys(CmEventType);

export function cmEventName(e: number): string {
  return eventNames[e] ?? `CmEvent(${e})`;
}

/** rdma_conn_param as an event reports it (the peer's values, from our side's point of view). */
export interface ConnParam {
  privateData: Uint8Array;
  responderResources: number;
  initiatorDepth: number;
  flowControl: number;
  retryCount: number;
  rnrRetryCount: number;
  srq: number;
  qpNum: number;
}

/** rdma_ud_param: what SIDR learned about the remote UD QP. */
export interface UdParam {
  privateData: Uint8Array;
  /** Address of the peer, for createAh. */
  ahAttr: { dgid: Uint8Array; udpPort: number; portNum: number };
  qpNum: number;
  qkey: number;
}

export interface CmEvent {
  event: CmEventType;
  /** The rdma_cm name, e.g. "ESTABLISHED". */
  eventName: string;
  id: CmId;
  /** For CONNECT_REQUEST: the listening id the request arrived on. */
  listenId?: CmId;
  /** 0, a REJ reason (REJECTED), a SIDR status, or a negative errno (-110 ETIMEDOUT), as rdma_cm reports it. */
  status: number;
  /** REJECTED: the IBTA reason's name; UNREACHABLE: "TIMEOUT". */
  reason?: string;
  conn?: ConnParam;
  ud?: UdParam;
  /** MULTICAST_JOIN / MULTICAST_ERROR: the context given to joinMulticast (librdmacm puts it in param.ud.private_data). */
  context?: unknown;
}

export interface GetEventOptions {
  signal?: AbortSignal;
  /** Reject with a TimeoutError-named DOMException after this long. */
  timeoutMs?: number;
}

interface Taker {
  resolve(e: CmEvent | undefined): void;
  reject(err: unknown): void;
  cleanup(): void;
}

export class EventChannel implements AsyncIterable<CmEvent> {
  readonly #events: CmEvent[] = [];
  readonly #takers: Taker[] = [];
  #closed = false;
  /** Ids that report here, so destroy refuses while they live (EBUSY in librdmacm). */
  readonly ids = new Set<CmId>();

  get closed(): boolean {
    return this.#closed;
  }

  /** Events waiting to be taken. */
  get pending(): number {
    return this.#events.length;
  }

  /** @internal */
  push(e: CmEvent): void {
    if (this.#closed) return;
    const t = this.#takers.shift();
    if (t) {
      t.cleanup();
      t.resolve(e);
    } else {
      this.#events.push(e);
    }
  }

  /** @internal Move the queued events of `id` to another channel (rdma_migrate_id). */
  moveEvents(id: CmId, to: EventChannel): void {
    for (let i = 0; i < this.#events.length; ) {
      if (this.#events[i]!.id === id) to.push(this.#events.splice(i, 1)[0]!);
      else i++;
    }
  }

  /** rdma_get_cm_event: the next event, waiting for one. */
  async getCmEvent(opts: GetEventOptions = {}): Promise<CmEvent> {
    const e = await this.#take(opts);
    if (e === undefined) throw new ResourceClosedError('event channel');
    return e;
  }

  /** rdma_ack_cm_event. Events own no kernel memory here; kept so C code ports line by line. */
  ackCmEvent(event: CmEvent): void {
    if (typeof event !== 'object' || event === null) throw new InvalidArgumentError('ackCmEvent: not an event');
  }

  #take(opts: GetEventOptions): Promise<CmEvent | undefined> {
    if (this.#events.length > 0) return Promise.resolve(this.#events.shift());
    if (this.#closed) return Promise.resolve(undefined);
    const { signal, timeoutMs } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        remove();
        reject(signal!.reason);
      };
      const taker: Taker = {
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      const remove = () => {
        taker.cleanup();
        const i = this.#takers.indexOf(taker);
        if (i >= 0) this.#takers.splice(i, 1);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          remove();
          reject(new DOMException(`no CM event within ${timeoutMs} ms`, 'TimeoutError'));
        }, timeoutMs);
      }
      this.#takers.push(taker);
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CmEvent> {
    for (;;) {
      const e = await this.#take({});
      if (e === undefined) return;
      yield e;
    }
  }

  /** rdma_destroy_event_channel: refused while ids still report here. */
  destroy(): void {
    if (this.#closed) return;
    const live = [...this.ids].filter((i) => !i.destroyed);
    if (live.length > 0) throw new ResourceBusyError(`event channel still has ${live.length} id(s); destroy them first`);
    this.close();
  }

  /** @internal Ends waiting takers; queued events are dropped. */
  close(): void {
    this.#closed = true;
    this.#events.length = 0;
    for (const t of this.#takers.splice(0)) {
      t.cleanup();
      t.resolve(undefined);
    }
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

/** rdma_create_event_channel. */
export function createEventChannel(): EventChannel {
  return new EventChannel();
}
