// ibv_context: an open device. Owns PDs, CQs and completion channels, and
// delivers the device's async events.

import { EventEmitter } from 'node:events';
import { InvalidArgumentError, NotFoundError, NotSupportedError } from '@ibal/hca';
import type { DeviceAttr, DeviceAttrEx, Gid, HcaContext, PortAttr } from '@ibal/hca';
import { AsyncQueue, END } from './async-queue.js';
import { CompChannel } from './comp-channel.js';
import { CQ, type CreateCqOptions } from './cq.js';
import type { Device } from './device.js';
import { type AsyncEvent, toAsyncEvent } from './events.js';
import { kHandle, kLimits } from './internal.js';
import { PD } from './pd.js';
import { Resource } from './resource.js';

export interface EventsOptions {
  signal?: AbortSignal;
}

export class Context extends Resource {
  readonly device: Device;
  readonly [kHandle]: HcaContext;
  #limits: DeviceAttr | undefined;
  readonly #emitter = new EventEmitter<{ event: [AsyncEvent] }>();
  readonly #queues = new Set<AsyncQueue<AsyncEvent>>();

  /** @internal Use openDevice() or device.open(). */
  constructor(device: Device, hca: HcaContext) {
    super([]);
    this.device = device;
    this[kHandle] = hca;
    hca.setAsyncEventHandler((ev) => {
      // Deferred so a throwing listener cannot unwind through the provider's
      // internals (events are often raised mid-way through packet handling).
      queueMicrotask(() => this.#dispatch(toAsyncEvent(ev)));
    });
  }

  describe(): string {
    return `Context ${this.device.name}`;
  }

  /** Device attributes as first queried; fixed for the life of the context. */
  get [kLimits](): DeviceAttr {
    return (this.#limits ??= this[kHandle].queryDevice());
  }

  queryDevice(): DeviceAttr {
    this.assertOpen();
    return this[kHandle].queryDevice();
  }

  /**
   * ibv_query_device_ex: the device's attributes and, among the extended
   * ones, the clock completion timestamps count in (`hcaCoreClock`, kHz).
   */
  queryDeviceEx(): DeviceAttrEx {
    this.assertOpen();
    const h = this[kHandle];
    if (!h.queryDeviceEx) throw new NotSupportedError(`queryDeviceEx: the ${this.device.provider} provider has no extended attributes`);
    return h.queryDeviceEx();
  }

  queryPort(portNum = 1): PortAttr {
    this.assertOpen();
    this.#checkPort(portNum);
    return this[kHandle].queryPort(portNum);
  }

  queryGid(portNum: number, index: number): Gid {
    this.assertOpen();
    this.#checkPort(portNum);
    if (!Number.isInteger(index) || index < 0) {
      throw new InvalidArgumentError(`queryGid: GID index must be a non-negative integer, got ${String(index)}`);
    }
    return this[kHandle].queryGid(portNum, index);
  }

  allocPd(): PD {
    this.assertOpen();
    return new PD(this, this[kHandle].allocPd());
  }

  createCompChannel(): CompChannel {
    this.assertOpen();
    return new CompChannel(this);
  }

  /**
   * ibal extension: manual progress. The soft HCA runs on this thread, so
   * memory that a peer RDMA-WRITEs changes only when something drives it:
   * cq.poll() does when the CQ is empty, and this does for loops that watch
   * memory instead (perftest's WRITE latency test). Returns the packets
   * handled; 0 on hardware, which progresses by itself.
   */
  progress(): number {
    if (this.closed) this.assertOpen();
    return this[kHandle].progress?.() ?? 0;
  }

  /** ibv_create_cq: `cqe` is the minimum number of entries; the provider may round up (see cq.cqe). */
  createCq(cqe: number, options: CreateCqOptions = {}): CQ {
    return CQ.create(this, cqe, options);
  }

  /** Adds a listener for async events (ibv_get_async_event); no ack is needed. */
  on(name: 'event', listener: (event: AsyncEvent) => void): this {
    this.#emitter.on(name, listener);
    return this;
  }

  once(name: 'event', listener: (event: AsyncEvent) => void): this {
    this.#emitter.once(name, listener);
    return this;
  }

  off(name: 'event', listener: (event: AsyncEvent) => void): this {
    this.#emitter.off(name, listener);
    return this;
  }

  /**
   * Async events as an async iterator. Events are buffered from this call
   * on, so nothing is lost between creating the iterator and awaiting it;
   * iteration ends when the context closes.
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<AsyncEvent> {
    this.assertOpen();
    const queue = new AsyncQueue<AsyncEvent>();
    this.#queues.add(queue);
    return drain(queue, options.signal, () => this.#queues.delete(queue));
  }

  /**
   * ibal extension, as a Node handle's ref(): the context keeps the event
   * loop alive while open (the default). Returns this.
   */
  ref(): this {
    this.assertOpen();
    this[kHandle].setRef?.(true);
    return this;
  }

  /**
   * ibal extension, as a Node handle's unref(): the context no longer keeps
   * the event loop alive; a soft device whose every context is unref'd lets
   * the process exit, and works as usual while something else keeps it
   * running. A no-op where the provider's device does not run on the event
   * loop (the native provider: the kernel and the HCA run it). Returns this.
   */
  unref(): this {
    this.assertOpen();
    this[kHandle].setRef?.(false);
    return this;
  }

  /** ibv_close_device; refused while PDs, CQs or completion channels are alive. */
  close(): void {
    this.closeWith('close', () => {
      this[kHandle].close();
      for (const q of this.#queues) q.end();
      this.#queues.clear();
      this.#emitter.removeAllListeners();
    });
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #dispatch(event: AsyncEvent): void {
    if (this.closed) return;
    for (const q of this.#queues) q.push(event);
    this.#emitter.emit('event', event);
  }

  #checkPort(portNum: number): void {
    if (!Number.isInteger(portNum)) throw new InvalidArgumentError(`port number must be an integer, got ${String(portNum)}`);
    const ports = this[kLimits].physPortCnt;
    if (portNum < 1 || portNum > ports) {
      throw new NotFoundError(`port ${portNum} does not exist (${this.device.name} has ports 1..${ports})`);
    }
  }
}

async function* drain(
  queue: AsyncQueue<AsyncEvent>,
  signal: AbortSignal | undefined,
  done: () => void,
): AsyncGenerator<AsyncEvent, void, undefined> {
  try {
    for (;;) {
      const ev = await queue.take(signal);
      if (ev === END) return;
      yield ev;
    }
  } finally {
    queue.end();
    done();
  }
}
