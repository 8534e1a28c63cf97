// Batched UDP over sendmmsg/recvmmsg. Datagrams to send are copied into a
// preallocated arena and leave in one system call per batch (at the end of
// the current JS turn, or when the batch is full); received datagrams land
// many per wakeup in a preallocated buffer that is reused, so neither
// direction allocates per datagram.
import net from 'node:net';
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import { fromNative } from './errors.js';
import { sys, type NativeBatchSocket, type NativeBatchSocketOptions } from './load.js';

const META_WORDS = 8;

/**
 * The datagrams of one receive batch. Valid only during the onMessages call:
 * the next batch reuses the same memory. Datagram i is
 * data[offset(i), offset(i) + length(i)).
 */
/** Four bytes of an IPv4 address, from `at`, as an unsigned number (allocation-free peer keys). */
export function ipv4Number(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

export class DatagramBatch {
  count = 0;
  readonly data: Uint8Array;
  readonly slotSize: number;
  readonly #meta: Uint32Array;
  readonly #metaBytes: Uint8Array;

  constructor(data: ArrayBuffer, meta: ArrayBuffer, slotSize: number) {
    this.data = new Uint8Array(data);
    this.#meta = new Uint32Array(meta);
    this.#metaBytes = new Uint8Array(meta);
    this.slotSize = slotSize;
  }

  offset(i: number): number {
    return i * this.slotSize;
  }

  length(i: number): number {
    return this.#meta[i * META_WORDS]!;
  }

  /** The datagram was longer than a slot and was cut. */
  truncated(i: number): boolean {
    return this.#meta[i * META_WORDS + 1] !== 0;
  }

  family(i: number): 4 | 6 {
    return this.#meta[i * META_WORDS + 2] === 6 ? 6 : 4;
  }

  /** The source port (0 on raw sockets: read it from the frame). */
  port(i: number): number {
    return this.#meta[i * META_WORDS + 3]!;
  }

  /** The source address bytes (4 or 16), a view valid during the call. */
  addressBytes(i: number): Uint8Array {
    const at = (i * META_WORDS + 4) * 4;
    return this.#metaBytes.subarray(at, at + (this.family(i) === 6 ? 16 : 4));
  }

  /** The source IPv4 address as a number (allocation-free peer lookups). */
  address4(i: number): number {
    return ipv4Number(this.#metaBytes, (i * META_WORDS + 4) * 4);
  }

  /** The source address as text (allocates; for slow paths). */
  address(i: number): string {
    const b = this.addressBytes(i);
    if (b.length === 4) return b.join('.');
    return ipv6Text(b);
  }

  /** A view of datagram i (allocates the view). */
  datagram(i: number): Uint8Array {
    return this.data.subarray(i * this.slotSize, i * this.slotSize + this.length(i));
  }
}

/** RFC 5952 text of 16 address bytes (the longest run of zero groups becomes ::). */
export function ipv6Text(b: Uint8Array): string {
  const g: number[] = [];
  for (let k = 0; k < 16; k += 2) g.push((b[k]! << 8) | b[k + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface BatchCounters {
  txDatagrams: number;
  txBatches: number;
  rxDatagrams: number;
  rxBatches: number;
  /** Datagrams dropped because both the send queue and the socket buffer were full. */
  dropped: number;
  /** Datagrams the kernel refused (EMSGSIZE, unreachable...). */
  sendErrors: number;
}

/**
 * The send side shared by BatchUdpSocket and RawRoceSocket: a queue of slots
 * flushed with one sendmmsg.
 */
export class SendQueue {
  readonly arena: Uint8Array;
  readonly slotSize: number;
  readonly capacity: number;
  readonly #desc: Uint32Array;
  readonly #sock: NativeBatchSocket;
  readonly #counters: BatchCounters;
  #start = 0;
  #count = 0;
  #scheduled = false;
  #blocked = false;
  #closed = false;
  readonly #flushTask = () => {
    this.#scheduled = false;
    if (!this.#closed) this.flush();
  };

  constructor(sock: NativeBatchSocket, capacity: number, slotSize: number, counters: BatchCounters) {
    this.#sock = sock;
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.arena = new Uint8Array(capacity * slotSize);
    this.#desc = new Uint32Array(capacity * 3);
    this.#counters = counters;
  }

  /**
   * Takes the next slot for a datagram of `length` bytes to `peer` and
   * returns its offset in `arena` (the caller writes the bytes), or -1 when
   * the queue is full and the socket cannot take more right now.
   */
  take(length: number, peer: number): number {
    if (length > this.slotSize) throw new InvalidArgumentError(`datagram of ${length} bytes exceeds the ${this.slotSize}-byte slot`);
    if (this.#count === this.capacity) {
      if (!this.#blocked) this.flush();
      if (this.#count === this.capacity) {
        this.#counters.dropped++;
        return -1;
      }
    }
    const i = this.#count++;
    this.#desc[i * 3] = i * this.slotSize;
    this.#desc[i * 3 + 1] = length;
    this.#desc[i * 3 + 2] = peer;
    if (!this.#scheduled && !this.#blocked) {
      this.#scheduled = true;
      queueMicrotask(this.#flushTask);
    }
    return i * this.slotSize;
  }

  /** Sends what is queued now; returns the datagrams that left. */
  flush(): number {
    const n = this.#count - this.#start;
    if (n === 0 || this.#closed) return 0;
    const before = this.#sock.errors().count;
    const sent = this.#sock.sendBatch(this.arena, this.#desc, this.#start, n);
    const errs = this.#sock.errors().count - before;
    this.#counters.sendErrors += errs;
    this.#counters.txDatagrams += sent - errs;
    this.#counters.txBatches++;
    this.#start += sent;
    if (this.#start === this.#count) {
      this.#start = this.#count = 0;
      this.#blocked = false;
    } else {
      // The socket buffer is full: the native side calls writable() when it drains.
      this.#blocked = true;
    }
    return sent;
  }

  /** Called when the socket can take more. */
  writable(): void {
    this.#blocked = false;
    this.flush();
  }

  get queued(): number {
    return this.#count - this.#start;
  }

  close(): void {
    this.#closed = true;
  }
}

export interface BatchUdpSocketOptions {
  family?: 4 | 6;
  /** Local address to bind (default 127.0.0.1 or ::1: the soft HCA is a loopback/namespace device). */
  address?: string;
  port?: number;
  /** Datagrams per recvmmsg, and per send queue (default 64). */
  batch?: number;
  /** The largest datagram (default 4352: a 4096-byte MTU RoCE packet and headers). */
  slotSize?: number;
  rcvbuf?: number;
  sndbuf?: number;
  /** IPv6: accept a zero UDP checksum (Linux rxe sends RoCEv2 over IPv6 that way). */
  noCheck6Rx?: boolean;
  /** IPv6: send a zero UDP checksum. */
  noCheck6Tx?: boolean;
  /** Called with each received batch. Reading starts when this is given. */
  onMessages?: (batch: DatagramBatch) => void;
}

/** A UDP socket moving datagrams in batches (sendmmsg/recvmmsg). */
export class BatchUdpSocket {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
  readonly counters: BatchCounters = { txDatagrams: 0, txBatches: 0, rxDatagrams: 0, rxBatches: 0, dropped: 0, sendErrors: 0 };
  readonly batch: DatagramBatch;
  onMessages: ((batch: DatagramBatch) => void) | undefined;
  readonly #sock: NativeBatchSocket;
  readonly #queue: SendQueue;
  readonly #peers = new Map<string, number>();
  #closed = false;

  constructor(options: BatchUdpSocketOptions = {}) {
    const addon = sys();
    const family = options.family ?? (options.address && net.isIPv6(options.address) ? 6 : 4);
    const address = options.address ?? (family === 6 ? '::1' : '127.0.0.1');
    if (net.isIP(address) !== family) throw new InvalidArgumentError(`${address} is not an IPv${family} address`);
    const batch = options.batch ?? 64;
    const slotSize = ((options.slotSize ?? 4352) + 7) & ~7;
    const native: NativeBatchSocketOptions = {
      kind: 'udp',
      family,
      address,
      port: options.port ?? 0,
      batch,
      slotSize,
      rcvbuf: options.rcvbuf,
      sndbuf: options.sndbuf,
      noCheck6Rx: options.noCheck6Rx,
      noCheck6Tx: options.noCheck6Tx,
      onRead: (n) => this.#onRead(n),
      onWritable: () => this.#queue.writable(),
    };
    try {
      this.#sock = new addon.BatchSocket(native);
    } catch (err) {
      throw fromNative(err);
    }
    this.family = family;
    this.address = address;
    this.port = this.#sock.localPort();
    this.batch = new DatagramBatch(this.#sock.recvBuffer(), this.#sock.recvMeta(), slotSize);
    this.#queue = new SendQueue(this.#sock, batch, slotSize, this.counters);
    if (options.onMessages) {
      this.onMessages = options.onMessages;
      this.#sock.start();
    }
  }

  /** The index of a destination, for send(); registered once per address and port. */
  peer(address: string, port: number): number {
    this.#check();
    const key = `${address}|${port}`;
    let i = this.#peers.get(key);
    if (i === undefined) {
      i = this.#peers.size;
      try {
        this.#sock.setPeer(i, address, port);
      } catch (err) {
        throw fromNative(err);
      }
      this.#peers.set(key, i);
    }
    return i;
  }

  /** Queues a copy of `src` for `peer`; false when it had to be dropped (queue and socket full). */
  send(src: Uint8Array, peer: number): boolean {
    this.#check();
    const at = this.#queue.take(src.length, peer);
    if (at < 0) return false;
    this.#queue.arena.set(src, at);
    return true;
  }

  /**
   * Zero-copy variant of send: reserves a slot and returns its offset in
   * `arena`; write the datagram there before the current JS turn ends.
   */
  reserve(length: number, peer: number): number {
    this.#check();
    return this.#queue.take(length, peer);
  }

  /** The send arena that reserve() offsets index. */
  get arena(): Uint8Array {
    return this.#queue.arena;
  }

  /** Sends the queued datagrams now instead of at the end of the turn. */
  flush(): number {
    this.#check();
    return this.#queue.flush();
  }

  /** Starts delivering batches to onMessages. */
  start(): void {
    this.#check();
    this.#sock.start();
  }

  stop(): void {
    if (!this.#closed) this.#sock.stop();
  }

  ref(): this {
    if (!this.#closed) this.#sock.setRef(true);
    return this;
  }

  /** Lets the process exit while this socket is open (as dgram's unref). */
  unref(): this {
    if (!this.#closed) this.#sock.setRef(false);
    return this;
  }

  #onRead(n: number): void {
    this.counters.rxDatagrams += n;
    this.counters.rxBatches++;
    this.batch.count = n;
    this.onMessages?.(this.batch);
  }

  #check(): void {
    if (this.#closed) throw new ResourceClosedError('BatchUdpSocket');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends what is queued, then closes. */
  close(): void {
    if (this.#closed) return;
    this.#queue.flush();
    this.#closed = true;
    this.#queue.close();
    this.#sock.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
