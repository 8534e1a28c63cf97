import dgram from 'node:dgram';
import net from 'node:net';
import { IcrcCalculator } from '../packet/icrc.js';
import { PcapWriter } from '../pcap.js';
import { FaultAction, type FaultInjector } from './faults.js';
import { ipToBytes } from './gid.js';
import { ShmLinks, isShmControl, type PeerLink, type ShmWireHost } from './shm-link.js';
import { BatchUdpSocket, ipv6Text, type DatagramBatch } from '../sys/mmsg.js';
import { SysCallError } from '../sys/errors.js';
import { sysStatus } from '../sys/status.js';

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

/** IBAL_SOFT_VM=0 keeps large RDMA on the ring as packets even when the peer could take it by reference. */
const vmAllowed = process.env.IBAL_SOFT_VM !== '0';

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
  /** Its index in the batched socket's destination table, once registered. */
  udpIndex = -1;
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

  /** Node's dgram socket, when the batched one is not available. */
  private readonly socket: dgram.Socket | undefined;
  /** sendmmsg/recvmmsg (the ibal_sys addon): datagrams leave and arrive in batches. */
  private readonly batch: BatchUdpSocket | undefined;
  /** Peers of the batched socket by IPv4 address and port (no string per datagram). */
  private readonly peers4 = new Map<number, Peer>();

  private constructor(
    transport: dgram.Socket | BatchUdpSocket,
    readonly address: string,
    readonly port: number,
    private readonly pcap: PcapWriter | undefined,
  ) {
    this.family = net.isIPv6(address) ? 6 : 4;
    this.addr = ipToBytes(address);
    if (transport instanceof BatchUdpSocket) {
      this.batch = transport;
      transport.onMessages = (b) => this.receiveBatch(b);
      transport.start();
    } else {
      this.socket = transport;
      transport.on('message', (msg, rinfo) => this.receive(msg, rinfo.address, rinfo.port));
      // A socket error (e.g. ICMP port unreachable on some kernels) must not
      // crash the process: the transport's timers turn silence into RETRY_EXC_ERR.
      transport.on('error', () => {
        this.counters.sendErrors++;
      });
    }
    this.shm = ShmLinks.create(this);
  }

  /** Which socket carries the datagrams: "sendmmsg" (batched) or "dgram". */
  get kind(): 'sendmmsg' | 'dgram' {
    return this.batch ? 'sendmmsg' : 'dgram';
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
    const pcapFile = process.env.IBAL_PCAP;
    const pcap = pcapFile ? sharedPcap(pcapFile) : undefined;
    if (process.env.IBAL_SOFT_MMSG !== '0' && sysStatus().mmsg.on) {
      const open = (p: number) =>
        new BatchUdpSocket({
          family,
          address,
          port: p,
          batch: 64,
          slotSize: MAX_PACKET,
          rcvbuf: 8 << 20,
          sndbuf: 8 << 20,
          // rxe sends RoCEv2 over IPv6 with a zero UDP checksum.
          noCheck6Rx: family === 6,
        });
      let b: BatchUdpSocket;
      const inUse = (err: unknown) => err instanceof SysCallError && err.errno === 'EADDRINUSE';
      try {
        b = open(port ?? ROCE_PORT);
      } catch (err) {
        if (port !== undefined || !inUse(err)) throw err;
        b = open(0);
      }
      return new UdpWire(b, address, b.port, pcap);
    }
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
    return new UdpWire(socket, address, socket.address().port, pcap);
  }

  peer(address: string, port: number): Peer {
    let byPort = this.peers.get(address);
    if (!byPort) {
      byPort = new Map();
      this.peers.set(address, byPort);
    }
    let p = byPort.get(port);
    if (!p) {
      const family = net.isIPv6(address) ? 6 : 4;
      const bytes = ipToBytes(address);
      // One Peer per endpoint however its IPv6 address was spelled (a GID
      // gives 0:0:...:1, a received datagram ::1): the shared-memory link
      // negotiated with one spelling must carry the other's packets too.
      const canonical = family === 6 ? ipv6Text(bytes) : address;
      p = canonical === address ? undefined : this.peers.get(canonical)?.get(port);
      let fresh = false;
      if (!p) {
        p = new Peer(canonical, port, family, bytes, this);
        fresh = true;
        if (canonical !== address) {
          let c = this.peers.get(canonical);
          if (!c) this.peers.set(canonical, (c = new Map()));
          c.set(port, p);
        }
      }
      // Known before the offer: negotiating may look the peer up again.
      byPort.set(port, p);
      if (fresh) this.shm?.offer(p);
    }
    return p;
  }

  /**
   * Whether a large RDMA WRITE/READ to `peer` may travel by reference
   * (vm-path.ts): a shared-memory link whose peer can reach our memory, and
   * no capture that would miss the data packets.
   */
  vmPeer(peer: Peer): boolean {
    const l = peer.link;
    return !this.pcap && l !== undefined && l.out !== undefined && l.vmOk && vmAllowed;
  }

  /** Sends a by-reference READ's descriptor through the peer's ring (see vm-path.ts). */
  sendReadDesc(peer: Peer, desc: Uint8Array): boolean {
    return peer.link !== undefined && this.shm !== undefined && this.shm.sendReadDesc(peer.link, desc);
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
    const batch = this.batch;
    if (batch) {
      // Copied into the send arena; leaves with the rest of this turn's datagrams in one sendmmsg.
      if (peer.udpIndex < 0) peer.udpIndex = batch.peer(peer.address, peer.port);
      if (!batch.send(len === buf.length ? buf : buf.subarray(0, len), peer.udpIndex)) this.counters.sendErrors++;
      if (this.free.length < 512) this.free.push(buf);
      return;
    }
    const socket = this.socket!;
    this.inflight.push(buf);
    // A send callback costs a tick per datagram. Sends on one socket finish
    // in order, so asking for one every SENT_CB_EVERY datagrams (and when
    // the free list runs dry) recycles all the buffers before it as well.
    if (++this.sinceCb >= SENT_CB_EVERY || this.free.length === 0) {
      this.sinceCb = 0;
      this.inflightMarks.push(this.inflight.length);
      socket.send(buf, 0, len, peer.port, peer.address, this.onSent);
    } else {
      socket.send(buf, 0, len, peer.port, peer.address);
    }
  }

  ref(): void {
    this.socket?.ref();
    this.batch?.ref();
  }

  unref(): void {
    this.socket?.unref();
    this.batch?.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heldTimer) clearTimeout(this.heldTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held = undefined;
    this.shm?.close();
    this.socket?.close();
    this.batch?.close();
  }

  /** A control datagram of the same-host negotiation (not a RoCE packet; not counted). */
  sendControl(msg: Buffer, peer: Peer): void {
    this.sendUdp(msg, peer);
  }

  sendUdp(buf: Buffer, peer: Peer): void {
    if (this.closed) return;
    if (this.batch) {
      if (peer.udpIndex < 0) peer.udpIndex = this.batch.peer(peer.address, peer.port);
      this.batch.send(buf, peer.udpIndex);
    } else {
      this.socket!.send(buf, 0, buf.length, peer.port, peer.address);
    }
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

  /** One recvmmsg batch: each datagram is copied out (fault injection may keep it) and handled in order. */
  private receiveBatch(b: DatagramBatch): void {
    const data = b.data;
    for (let i = 0; i < b.count && !this.closed; i++) {
      const len = b.length(i);
      const off = b.offset(i);
      const msg = Buffer.allocUnsafe(len);
      msg.set(data.subarray(off, off + len));
      const port = b.port(i);
      let peer: Peer | undefined;
      if (b.family(i) === 4) {
        const key = b.address4(i) * 65536 + port;
        peer = this.peers4.get(key);
        if (!peer) {
          peer = this.peer(b.address(i), port);
          this.peers4.set(key, peer);
        }
      } else {
        peer = this.peer(b.address(i), port);
      }
      if (isShmControl(msg)) this.shm?.onControl(msg, peer);
      else this.receivePacket(msg, peer);
    }
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
