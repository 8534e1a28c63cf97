// RoCEv2 over a raw IPv4 socket. A UDP socket lets the kernel choose the IP
// header, so neither its Identification nor its flags are known, yet the
// RoCEv2 ICRC covers them. With IP_HDRINCL we write the header ourselves:
// Identification 0 and Don't Fragment, as RoCE NICs and Linux rxe send (the
// kernel keeps a zero ID when DF is set and fills only the checksum and
// total length). A second raw socket receives each frame of our UDP port
// with its IP header, so incoming ICRCs are checked over the real header.
// A UDP socket stays bound to the port (dropping what it receives) so the
// kernel neither answers ICMP port unreachable nor gives the port away.
// Needs root or CAP_NET_RAW.
import net from 'node:net';
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import { SysUnavailableError, fromNative } from './errors.js';
import { sys, trySys, sysUnavailableReason, type NativeBatchSocket } from './load.js';
import { DatagramBatch, SendQueue, type BatchCounters } from './mmsg.js';

export const IPV4_HEADER = 20;
export const UDP_HEADER = 8;
const DF = 0x4000;

/**
 * Writes an IPv4 header (ID 0, DF, TTL `ttl`, protocol UDP, no options) and
 * a UDP header (checksum 0, as RoCEv2 over IPv4 sends) at `off` of `buf`.
 * The IP checksum is computed too, so the frame is complete even when the
 * kernel does not fill it in.
 */
export function writeIpv4UdpHeaders(
  buf: Uint8Array,
  off: number,
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
  ttl = 64,
  tos = 0,
): void {
  const total = IPV4_HEADER + UDP_HEADER + payloadLength;
  buf[off] = 0x45;
  buf[off + 1] = tos;
  buf[off + 2] = total >>> 8;
  buf[off + 3] = total & 0xff;
  buf[off + 4] = 0; // Identification 0
  buf[off + 5] = 0;
  buf[off + 6] = DF >>> 8;
  buf[off + 7] = 0;
  buf[off + 8] = ttl;
  buf[off + 9] = 17;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  buf.set(src, off + 12);
  buf.set(dst, off + 16);
  let sum = 0;
  for (let i = 0; i < IPV4_HEADER; i += 2) sum += (buf[off + i]! << 8) | buf[off + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const csum = ~sum & 0xffff;
  buf[off + 10] = csum >>> 8;
  buf[off + 11] = csum & 0xff;
  const u = off + IPV4_HEADER;
  const ulen = UDP_HEADER + payloadLength;
  buf[u] = srcPort >>> 8;
  buf[u + 1] = srcPort & 0xff;
  buf[u + 2] = dstPort >>> 8;
  buf[u + 3] = dstPort & 0xff;
  buf[u + 4] = ulen >>> 8;
  buf[u + 5] = ulen & 0xff;
  buf[u + 6] = 0;
  buf[u + 7] = 0;
}

export interface RawRoceSocketOptions {
  /** The local IPv4 address (default 127.0.0.1). */
  address?: string;
  /** The UDP port to own (default 4791; 0 picks a free one). */
  port?: number;
  batch?: number;
  /** The largest frame, IP header included (default 4416). */
  slotSize?: number;
  ttl?: number;
  /** SO_RCVBUF of the receiving raw socket (bytes). */
  rcvbuf?: number;
  /** SO_SNDBUF of the sending raw socket (bytes). */
  sndbuf?: number;
  /** Called with each batch of received frames; each starts with its IPv4 header. */
  onFrames?: (batch: DatagramBatch) => void;
}

let rawProbe: { ok: boolean; reason?: string } | undefined;

/**
 * The raw RoCEv2 wire was asked for (IBAL_SOFT_WIRE=raw) where raw sockets
 * cannot be opened; `reason` says why (no CAP_NET_RAW, no addon...).
 */
export class RawWireUnavailableError extends SysUnavailableError {
  readonly reason: string;
  constructor(reason: string) {
    super(`IBAL_SOFT_WIRE=raw: the raw RoCEv2 wire is unavailable: ${reason}`);
    this.reason = reason;
  }
}

/** Whether raw sockets can be opened here (root or CAP_NET_RAW), and why not. */
export function rawSocketsAvailable(): { ok: boolean; reason?: string } {
  if (rawProbe) return rawProbe;
  const addon = trySys();
  if (!addon) return (rawProbe = { ok: false, reason: sysUnavailableReason() });
  try {
    new addon.BatchSocket({ kind: 'raw-send', family: 4 }).close();
    rawProbe = { ok: true };
  } catch (err) {
    const code = (err as { code?: string }).code;
    rawProbe = {
      ok: false,
      reason: code === 'EPERM' || code === 'EACCES' ? 'raw sockets need root or CAP_NET_RAW' : `raw socket: ${(err as Error).message}`,
    };
  }
  return rawProbe;
}

/** Sends and receives whole IPv4/UDP frames of one UDP port. */
export class RawRoceSocket {
  readonly address: string;
  readonly port: number;
  readonly ttl: number;
  readonly counters: BatchCounters = { txDatagrams: 0, txBatches: 0, rxDatagrams: 0, rxBatches: 0, dropped: 0, sendErrors: 0 };
  readonly batch: DatagramBatch;
  onFrames: ((batch: DatagramBatch) => void) | undefined;
  readonly #src: Uint8Array;
  readonly #hold: NativeBatchSocket;
  readonly #tx: NativeBatchSocket;
  readonly #rx: NativeBatchSocket;
  readonly #queue: SendQueue;
  readonly #peers = new Map<string, number>();
  readonly #peerAddr: Uint8Array[] = [];
  #closed = false;

  constructor(options: RawRoceSocketOptions = {}) {
    const probe = rawSocketsAvailable();
    if (!probe.ok) throw new SysUnavailableError(probe.reason ?? 'raw sockets are not available');
    const addon = sys();
    const address = options.address ?? '127.0.0.1';
    if (!net.isIPv4(address)) throw new InvalidArgumentError(`raw RoCE sockets are IPv4; ${address} is not`);
    const batch = options.batch ?? 64;
    const slotSize = ((options.slotSize ?? 4416) + 7) & ~7;
    const opened: NativeBatchSocket[] = [];
    try {
      this.#hold = new addon.BatchSocket({ kind: 'udp', family: 4, address, port: options.port ?? 4791, dropAll: true, batch: 1, slotSize: 64 });
      opened.push(this.#hold);
      const port = this.#hold.localPort();
      this.#rx = new addon.BatchSocket({
        kind: 'raw-recv',
        family: 4,
        address,
        filterPort: port,
        batch,
        slotSize,
        rcvbuf: options.rcvbuf,
        onRead: (n) => this.#onRead(n),
      });
      opened.push(this.#rx);
      this.#tx = new addon.BatchSocket({
        kind: 'raw-send',
        family: 4,
        batch: 1,
        slotSize: 64,
        sndbuf: options.sndbuf,
        onWritable: () => this.#queue.writable(),
      });
      opened.push(this.#tx);
      this.port = port;
    } catch (err) {
      opened.forEach((s) => s.close());
      throw fromNative(err);
    }
    this.address = address;
    this.ttl = options.ttl ?? 64;
    this.#src = Uint8Array.from(address.split('.').map(Number));
    this.batch = new DatagramBatch(this.#rx.recvBuffer(), this.#rx.recvMeta(), slotSize);
    this.#queue = new SendQueue(this.#tx, batch, slotSize, this.counters);
    if (options.onFrames) {
      this.onFrames = options.onFrames;
      this.#rx.start();
    }
  }

  /** The index of a destination IPv4 address, for send(). */
  peer(address: string): number {
    this.#check();
    let i = this.#peers.get(address);
    if (i === undefined) {
      if (!net.isIPv4(address)) throw new InvalidArgumentError(`raw RoCE sockets are IPv4; ${address} is not`);
      i = this.#peerAddr.length;
      this.#tx.setPeer(i, address, 0);
      this.#peerAddr.push(Uint8Array.from(address.split('.').map(Number)));
      this.#peers.set(address, i);
    }
    return i;
  }

  /**
   * Queues `payload` as one UDP datagram from our port to `dstPort` of
   * `peer`, behind an IPv4 header with ID 0 and DF. False when dropped
   * (queue and socket full).
   */
  send(payload: Uint8Array, peer: number, dstPort: number, srcPort = this.port): boolean {
    this.#check();
    const dst = this.#peerAddr[peer];
    if (!dst) throw new InvalidArgumentError(`unknown peer index ${peer}`);
    const at = this.#queue.take(IPV4_HEADER + UDP_HEADER + payload.length, peer);
    if (at < 0) return false;
    writeIpv4UdpHeaders(this.#queue.arena, at, this.#src, dst, srcPort, dstPort, payload.length, this.ttl);
    this.#queue.arena.set(payload, at + IPV4_HEADER + UDP_HEADER);
    return true;
  }

  /** Queues a complete frame written by the caller (IPv4 header first). */
  sendFrame(frame: Uint8Array, peer: number): boolean {
    this.#check();
    if (!this.#peerAddr[peer]) throw new InvalidArgumentError(`unknown peer index ${peer}`);
    const at = this.#queue.take(frame.length, peer);
    if (at < 0) return false;
    this.#queue.arena.set(frame, at);
    return true;
  }

  flush(): number {
    this.#check();
    return this.#queue.flush();
  }

  start(): void {
    this.#check();
    this.#rx.start();
  }

  ref(): this {
    if (!this.#closed) for (const s of [this.#hold, this.#rx, this.#tx]) s.setRef(true);
    return this;
  }

  /** Lets the process exit while this socket is open (as dgram's unref). */
  unref(): this {
    if (!this.#closed) for (const s of [this.#hold, this.#rx, this.#tx]) s.setRef(false);
    return this;
  }

  #onRead(n: number): void {
    this.counters.rxDatagrams += n;
    this.counters.rxBatches++;
    this.batch.count = n;
    this.onFrames?.(this.batch);
  }

  #check(): void {
    if (this.#closed) throw new ResourceClosedError('RawRoceSocket');
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#queue.flush();
    this.#closed = true;
    this.#queue.close();
    this.#tx.close();
    this.#rx.close();
    this.#hold.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
