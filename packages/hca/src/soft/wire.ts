import dgram from 'node:dgram';
import net from 'node:net';
import { IcrcCalculator } from '../packet/icrc.js';
import { PcapWriter } from '../pcap.js';
import { FaultAction, type FaultInjector } from './faults.js';
import { ipToBytes } from './gid.js';
import { ShmLinks, isShmControl, type PeerLink, type ShmWireHost } from './shm-link.js';

// Every device of a process writes into one capture file, in order.
const pcaps = new Map<string, PcapWriter>();
function sharedPcap(file: string): PcapWriter {
  let w = pcaps.get(file);
  if (!w) {
    w = new PcapWriter(file);
    pcaps.set(file, w);
  }
  return w;
}

/** The IANA port of RoCEv2. */
export const ROCE_PORT = 4791;

/** Room for the largest packet: BTH + AtomicETH-sized headers + a 4096-byte MTU + pad + ICRC. */
export const MAX_PACKET = 4096 + 128;

/**
 * One remote endpoint of a wire. Cached so that the per-packet work on the
 * hot path (ICRC pseudo-header, address strings) is done once per peer.
 */
export class Peer {
  readonly tx: IcrcCalculator;
  readonly rx: IcrcCalculator;
  /** The same-host fast path to this peer, once negotiated (see shm-link.ts). */
  link: PeerLink | undefined;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly family: 4 | 6,
    readonly addr: Uint8Array,
    local: { addr: Uint8Array; port: number },
  ) {
    this.tx = new IcrcCalculator({ family, src: local.addr, dst: addr, srcPort: local.port, dstPort: port });
    this.rx = new IcrcCalculator({ family, src: addr, dst: local.addr, srcPort: port, dstPort: local.port });
  }
}

export type PacketHandler = (buf: Buffer, peer: Peer) => void;

export interface WireCounters {
  txPackets: number;
  rxPackets: number;
  txBytes: number;
  rxBytes: number;
  sendErrors: number;
}

/**
 * The soft HCA's link: one UDP socket per device, as rxe uses one UDP tunnel
 * socket per netdev. Over IPv4 the ICRC is computed with IP ID 0 (see
 * packet/icrc.ts): a UDP socket can neither set nor read the ID.
 */
const SENT_CB_EVERY = 32;

function literalLookup(
  address: string,
  _opts: unknown,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = net.isIP(address);
  if (family) return cb(null, address, family);
  const err: NodeJS.ErrnoException = new Error(`soft HCA peers are IP addresses, not ${address}`);
  err.code = 'EINVAL';
  cb(err, address, 0);
}

export class UdpWire implements ShmWireHost {
  readonly counters: WireCounters = { txPackets: 0, rxPackets: 0, txBytes: 0, rxBytes: 0, sendErrors: 0 };
  readonly family: 4 | 6;
  readonly addr: Uint8Array;
  onPacket: PacketHandler = () => {};
  faults: FaultInjector | undefined;
  /** The same-host shared-memory links, when that path is available (IBAL_SOFT_SHM=0 turns it off). */
  readonly shm: ShmLinks | undefined;

  private readonly peers = new Map<string, Map<number, Peer>>();
  private readonly free: Buffer[] = [];
  /** UDP sends complete in order, so one shared callback can recycle buffers FIFO. */
  private readonly inflight: Buffer[] = [];
  private inflightHead = 0;
  /** inflight.length right after each datagram sent with a callback. */
  private readonly inflightMarks: number[] = [];
  private held: { buf: Buffer; peer: Peer } | undefined;
  private heldTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private sinceCb = 0;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.counters.sendErrors++;
    // Everything queued up to the datagram this callback belongs to is sent.
    const upto = this.inflightMarks.shift() ?? this.inflight.length;
    while (this.inflightHead < upto) {
      const b = this.inflight[this.inflightHead++]!;
      if (this.free.length < 512) this.free.push(b);
    }
    if (this.inflightHead > 1024 && this.inflightHead * 2 > this.inflight.length) {
      this.inflight.splice(0, this.inflightHead);
      for (let i = 0; i < this.inflightMarks.length; i++) this.inflightMarks[i]! -= this.inflightHead;
      this.inflightHead = 0;
    }
  };

  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: string,
    readonly port: number,
    private readonly pcap: PcapWriter | undefined,
  ) {
    this.family = net.isIPv6(address) ? 6 : 4;
    this.addr = ipToBytes(address);
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address, rinfo.port));
    this.shm = ShmLinks.create(this);
    // A socket error (e.g. ICMP port unreachable on some kernels) must not
    // crash the process: the transport's timers turn silence into RETRY_EXC_ERR.
    socket.on('error', () => {
      this.counters.sendErrors++;
    });
  }

  /**
   * Bind `address:port`. With `port` undefined, RoCEv2's 4791 is tried first
   * and an ephemeral port taken if it is in use.
   */
  static async bind(address: string, port?: number): Promise<UdpWire> {
    const family = net.isIPv6(address) ? 6 : 4;
    const tryBind = (p: number) =>
      new Promise<dgram.Socket>((resolve, reject) => {
        const s = dgram.createSocket({
          type: family === 6 ? 'udp6' : 'udp4',
          // Peers are always IP literals: answer dgram's per-send address
          // lookup synchronously instead of through dns.lookup and a tick.
          lookup: literalLookup,
          recvBufferSize: 8 << 20,
          sendBufferSize: 8 << 20,
        });
        const onError = (err: Error) => {
          s.close();
          reject(err);
        };
        s.once('error', onError);
        s.bind({ address, port: p, exclusive: true }, () => {
          s.off('error', onError);
          resolve(s);
        });
      });
    let socket: dgram.Socket;
    if (port !== undefined) {
      socket = await tryBind(port);
    } else {
      try {
        socket = await tryBind(ROCE_PORT);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        socket = await tryBind(0);
      }
    }
    const pcapFile = process.env.IBAL_PCAP;
    const bound = socket.address().port;
    const pcap = pcapFile ? sharedPcap(pcapFile) : undefined;
    return new UdpWire(socket, address, bound, pcap);
  }

  peer(address: string, port: number): Peer {
    let byPort = this.peers.get(address);
    if (!byPort) {
      byPort = new Map();
      this.peers.set(address, byPort);
    }
    let p = byPort.get(port);
    if (!p) {
      p = new Peer(address, port, net.isIPv6(address) ? 6 : 4, ipToBytes(address), this);
      byPort.set(port, p);
      this.shm?.offer(p);
    }
    return p;
  }

  /** A buffer to build one packet in; ownership passes back with send(). */
  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(MAX_PACKET);
  }

  /** Send `len` bytes of `buf` (a complete RoCE packet with ICRC) to `peer`. */
  send(buf: Buffer, len: number, peer: Peer): void {
    if (this.closed) return;
    this.counters.txPackets++;
    this.counters.txBytes += len;
    if (this.pcap) this.pcap.writeRoce(this.endpoint(this, peer), buf, len);
    const link = peer.link;
    if (link && (link.out || link.holding)) {
      // Copied into the peer's ring (or held for it): the buffer is free again at once.
      if (link.out) this.shm!.send(link, buf, len);
      else this.shm!.hold(link, buf, len);
      if (this.free.length < 512) this.free.push(buf);
      return;
    }
    this.inflight.push(buf);
    // A send callback costs a tick per datagram. Sends on one socket finish
    // in order, so asking for one every SENT_CB_EVERY datagrams (and when
    // the free list runs dry) recycles all the buffers before it as well.
    if (++this.sinceCb >= SENT_CB_EVERY || this.free.length === 0) {
      this.sinceCb = 0;
      this.inflightMarks.push(this.inflight.length);
      this.socket.send(buf, 0, len, peer.port, peer.address, this.onSent);
    } else {
      this.socket.send(buf, 0, len, peer.port, peer.address);
    }
  }

  ref(): void {
    this.socket.ref();
  }

  unref(): void {
    this.socket.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heldTimer) clearTimeout(this.heldTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held = undefined;
    this.shm?.close();
    this.socket.close();
  }

  /** A control datagram of the same-host negotiation (not a RoCE packet; not counted). */
  sendControl(msg: Buffer, peer: Peer): void {
    if (!this.closed) this.socket.send(msg, 0, msg.length, peer.port, peer.address);
  }

  sendUdp(buf: Buffer, peer: Peer): void {
    if (!this.closed) this.socket.send(buf, 0, buf.length, peer.port, peer.address);
  }

  /** A packet the peer wrote into our shared-memory ring: the same path as a datagram. */
  receiveFromShm(buf: Buffer, peer: Peer): void {
    if (!this.closed) this.receivePacket(buf, peer);
  }

  private endpoint(src: { addr: Uint8Array; port: number }, dst: { addr: Uint8Array; port: number }) {
    return { family: this.family, src: src.addr, dst: dst.addr, srcPort: src.port, dstPort: dst.port };
  }

  private receive(msg: Buffer, address: string, port: number): void {
    if (this.closed) return;
    if (isShmControl(msg)) {
      this.shm?.onControl(msg, this.peer(address, port));
      return;
    }
    this.receivePacket(msg, this.peer(address, port));
  }

  private receivePacket(msg: Buffer, peer: Peer): void {
    const f = this.faults;
    if (f) {
      switch (f.decide(msg, msg.length)) {
        case FaultAction.Drop:
          return;
        case FaultAction.Duplicate:
          this.deliver(msg, peer);
          break;
        case FaultAction.Hold:
          this.releaseHeld();
          this.held = { buf: msg, peer };
          // Swap with the next datagram; if none comes soon, let it through.
          this.heldTimer = setTimeout(() => this.releaseHeld(), 1);
          return;
        case FaultAction.Delay: {
          const t = setTimeout(() => {
            this.timers.delete(t);
            if (!this.closed) this.deliver(msg, peer);
          }, f.randomDelay());
          this.timers.add(t);
          return;
        }
        default:
          break;
      }
      this.deliver(msg, peer);
      this.releaseHeld();
      return;
    }
    this.deliver(msg, peer);
  }

  private releaseHeld(): void {
    if (this.heldTimer) {
      clearTimeout(this.heldTimer);
      this.heldTimer = undefined;
    }
    const h = this.held;
    if (h) {
      this.held = undefined;
      this.deliver(h.buf, h.peer);
    }
  }

  private deliver(buf: Buffer, peer: Peer): void {
    this.counters.rxPackets++;
    this.counters.rxBytes += buf.length;
    if (this.pcap) this.pcap.writeRoce(this.endpoint(peer, this), buf, buf.length);
    this.onPacket(buf, peer);
  }
}
