import dgram from 'node:dgram';
import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { IcrcCalculator, checkIcrc, readIcrc, writeIcrc } from '../packet/icrc.js';
import { icrcOverIpv4Header, roceLengthOk } from '../packet/icrc-ipv4-frame.js';
import { BTH_BYTES, ICRC_BYTES } from '../packet/opcode.js';
import { PcapWriter } from '../pcap.js';
import { FaultAction, type FaultInjector } from './faults.js';
import { ipToBytes } from './gid.js';
import { MulticastGroups, isMulticastAddr } from './multicast.js';
import { ShmLinks, isShmControl, type PeerLink, type ShmWireHost } from './shm-link.js';
import { BatchUdpSocket, ipv4Number, ipv6Text, type DatagramBatch } from '../sys/mmsg.js';
import { RawRoceSocket, RawWireUnavailableError, rawSocketsAvailable } from '../sys/raw.js';
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

/** A raw-wire frame: the largest IPv4 header (options included), UDP, the largest packet. */
const MAX_FRAME = 60 + 8 + MAX_PACKET;

/** IPv4 Identification 0 with DF, as a 32-bit word: the header every ICRC calculator assumes. */
const ID0_DF = 0x4000;

/** IBAL_SOFT_WIRE: which transport an IPv4 soft device binds (IPv6 devices always take UDP). */
export type SoftWireChoice = 'udp' | 'raw' | 'auto';

/** Reads IBAL_SOFT_WIRE (udp when unset); anything else than udp, raw or auto is an error. */
export function softWireChoice(value: string | undefined = process.env.IBAL_SOFT_WIRE): SoftWireChoice {
  if (value === undefined || value === '') return 'udp';
  if (value === 'udp' || value === 'raw' || value === 'auto') return value;
  throw new InvalidArgumentError(`IBAL_SOFT_WIRE must be udp, raw or auto, not "${value}"`);
}

/**
 * Whether a device of `family` takes the raw wire under `choice`, given
 * whether raw sockets can be opened here. IPv6 stays on UDP whatever the
 * choice: it has no Identification field, so its UDP wire is already exact.
 * `raw` where raw sockets cannot be opened is an error that says why;
 * `auto` falls back to UDP.
 */
export function rawWireWanted(
  choice: SoftWireChoice,
  family: 4 | 6,
  probe: { ok: boolean; reason?: string } = rawSocketsAvailable(),
): boolean {
  if (family === 6 || choice === 'udp') return false;
  if (probe.ok) return true;
  if (choice === 'raw') throw new RawWireUnavailableError(probe.reason ?? 'raw sockets cannot be opened');
  return false;
}

/**
 * One remote endpoint of a wire. Cached so that the per-packet work on the
 * hot path (ICRC pseudo-header, address strings) is done once per peer.
 */
export class Peer {
  readonly tx: IcrcCalculator;
  readonly rx: IcrcCalculator;
  /** The same-host fast path to this peer, once negotiated (see shm-link.ts). */
  link: PeerLink | undefined;
  /** Its index in the batched or raw socket's destination table, once registered. */
  udpIndex = -1;
  /**
   * Raw wire: this peer's frames carry IPv4 IDs other than 0, yet its ICRCs
   * assume 0 and DF (a UDP-socket sender, which cannot know its ID), so that
   * form is tried first for its packets.
   */
  assumesId0 = false;
  /**
   * Something here sends to it (a QP, an AH, a MAD reply, the shm control
   * path looked it up through peer()): kept for good. A peer only heard
   * from is kept only while few are (see UdpWire's MAX_HEARD_PEERS).
   */
  pinned = false;
  /** Other spellings of its address it is cached under (IPv6 written another way). */
  aliases: string[] | undefined;
  /**
   * Names this peer to the peer itself: a same-host HELLO tells it, and our
   * directory's QP entries name their QP's peer by it (directory.ts).
   */
  readonly token = (Math.random() * 0xfffffffe + 1) >>> 0;
  /** A multicast group (multicast.ts): sent to through its own socket, never linked. */
  readonly multicast: boolean;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly family: 4 | 6,
    readonly addr: Uint8Array,
    local: { addr: Uint8Array; port: number },
  ) {
    this.tx = new IcrcCalculator({ family, src: local.addr, dst: addr, srcPort: local.port, dstPort: port });
    this.rx = new IcrcCalculator({ family, src: addr, dst: local.addr, srcPort: port, dstPort: local.port });
    this.multicast = isMulticastAddr(family, addr);
  }
}

/**
 * Each received packet. `icrc` undefined: the packet came behind the header
 * peer.rx assumes (or one the wire cannot see), and the receiver checks the
 * ICRC with peer.rx. true/false: the raw wire saw another IPv4 header and
 * already checked the ICRC over it, or the packet came through a
 * shared-memory ring, which carries none (true; false if fault injection
 * flipped a bit of it, as a wire's bit error fails the ICRC).
 */
export type PacketHandler = (buf: Buffer, peer: Peer, icrc?: boolean) => void;

/** A packet that came to a multicast group this device joined: the group's address bytes beside the sender. */
export type GroupHandler = (buf: Buffer, peer: Peer, group: string, groupAddr: Uint8Array, icrc: boolean) => void;

export interface WireCounters {
  txPackets: number;
  rxPackets: number;
  txBytes: number;
  rxBytes: number;
  sendErrors: number;
  /** Raw wire: frames that were not whole IPv4/UDP datagrams (dropped). */
  rxInvalid: number;
  /** Raw wire: packets behind an IPv4 header other than ID 0 + DF whose ICRC verified over that real header. */
  rxIcrcRealHeader: number;
  /**
   * Raw wire: packets behind such a header whose ICRC verified only as
   * computed with ID 0 and DF, as a UDP-socket sender computes it (accepted
   * unless IBAL_SOFT_ICRC=exact).
   */
  rxIcrcAssumedHeader: number;
  /**
   * Empty datagrams, dropped before any packet counter: no RoCEv2 packet is
   * empty, they are reachability probes (`@ibal/sdp` sends one to learn
   * quickly that nothing listens at a peer's port, as `nc -u -z` does).
   */
  rxEmpty: number;
  /** Peers only ever heard from, dropped from the cache to keep it bounded (see MAX_HEARD_PEERS). */
  peersEvicted: number;
}

const SENT_CB_EVERY = 32;
/**
 * Peers that only sent to us and that nothing here sends to are cached up
 * to this many, the oldest dropped first: every datagram from a new source
 * address or port makes a peer (two ICRC calculators, and a same-host link
 * offer for a local one), so without a bound a stream of datagrams from
 * changing ports, junk or spoofed, would grow this process without end.
 * rxe keeps no per-source state before a packet reaches a QP.
 */
export const MAX_HEARD_PEERS = 1024;

/** An IPv4 endpoint as a number: the address (4 bytes of `bytes` from `at`) times 65536 plus the port. */
function ipv4Key(bytes: Uint8Array, at: number, port: number): number {
  return ipv4Number(bytes, at) * 65536 + port;
}

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

/**
 * The soft HCA's link: one UDP port per device, as rxe uses one UDP tunnel
 * socket per netdev, carried by one of three transports:
 *  - raw4: IPv4 raw sockets (IBAL_SOFT_WIRE=raw or auto; root or
 *    CAP_NET_RAW). We write the IPv4 header, ID 0 and DF, so our ICRCs are
 *    the ones rxe or a RoCE NIC verify, and we read each received header, so
 *    incoming ICRCs are checked over the header the packet really had;
 *  - sendmmsg: a batched UDP socket (the ibal_sys addon);
 *  - dgram: Node's UDP socket.
 * A UDP socket can neither set nor read the IPv4 ID, so over the UDP
 * transports both directions assume ID 0 and DF (see packet/icrc.ts).
 */
export class UdpWire implements ShmWireHost {
  readonly counters: WireCounters = {
    txPackets: 0,
    rxPackets: 0,
    txBytes: 0,
    rxBytes: 0,
    sendErrors: 0,
    rxInvalid: 0,
    rxIcrcRealHeader: 0,
    rxIcrcAssumedHeader: 0,
    rxEmpty: 0,
    peersEvicted: 0,
  };
  readonly family: 4 | 6;
  readonly addr: Uint8Array;
  onPacket: PacketHandler = () => {};
  onGroupPacket: GroupHandler = () => {};
  /** The multicast groups this device's QPs are attached to. */
  readonly groups: MulticastGroups = new MulticastGroups(this, (buf, group, _port, from, icrc) => {
    if (this.closed) return;
    this.counters.rxPackets++;
    this.counters.rxBytes += buf.length;
    this.onGroupPacket(buf, this.from(from.address, from.port), group, ipToBytes(group), icrc);
  });
  /** A same-host peer's process exited (noticed by the shared-memory path only). */
  onPeerExit: (peer: Peer) => void = () => {};
  faults: FaultInjector | undefined;
  /** The same-host shared-memory links, when that path is available (IBAL_SOFT_SHM=0 turns it off). */
  readonly shm: ShmLinks | undefined;

  private readonly peers = new Map<string, Map<number, Peer>>();
  /** Unpinned peers, oldest first. */
  private readonly heardOnly = new Set<Peer>();
  private readonly free: Buffer[] = [];
  /** UDP sends complete in order, so one shared callback can recycle buffers FIFO. */
  private readonly inflight: Buffer[] = [];
  private inflightHead = 0;
  /** inflight.length right after each datagram sent with a callback. */
  private readonly inflightMarks: number[] = [];
  private held: { buf: Buffer; peer: Peer; icrc: boolean | undefined } | undefined;
  private heldTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private sinceCb = 0;
  private readonly onGroupSent = (err?: Error | null): void => {
    if (err) this.counters.sendErrors++;
  };
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
  /** IPv4 raw sockets: we write and read the IP header (see sys/raw.ts). */
  private readonly raw: RawRoceSocket | undefined;
  /** IBAL_SOFT_ICRC=exact: the raw wire refuses ICRCs that hold only for an assumed ID 0 + DF header. */
  private readonly exactIcrc = process.env.IBAL_SOFT_ICRC === 'exact';
  /** Peers of the batched and raw sockets by IPv4 address and port (no string per datagram). */
  private readonly peers4 = new Map<number, Peer>();

  private constructor(
    transport: dgram.Socket | BatchUdpSocket | RawRoceSocket,
    readonly address: string,
    readonly port: number,
    private readonly pcap: PcapWriter | undefined,
  ) {
    this.family = net.isIPv6(address) ? 6 : 4;
    this.addr = ipToBytes(address);
    if (transport instanceof RawRoceSocket) {
      this.raw = transport;
      transport.onFrames = (b) => this.receiveFrames(b);
      transport.start();
    } else if (transport instanceof BatchUdpSocket) {
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

  /** Which socket carries the datagrams: "raw" (IPv4 raw sockets), "sendmmsg" (batched UDP) or "dgram". */
  get kind(): 'raw' | 'sendmmsg' | 'dgram' {
    return this.raw ? 'raw' : this.batch ? 'sendmmsg' : 'dgram';
  }

  /** The port attribute `wire`: "raw4", "udp4 (sendmmsg)", "udp4", "udp6 (sendmmsg)" or "udp6". */
  get wireName(): string {
    if (this.raw) return 'raw4';
    const udp = this.family === 6 ? 'udp6' : 'udp4';
    return this.batch ? `${udp} (sendmmsg)` : udp;
  }

  /**
   * Bind `address:port`. With `port` undefined, RoCEv2's 4791 is tried first
   * and an ephemeral port taken if it is in use. IBAL_SOFT_WIRE picks the
   * transport of an IPv4 device (see rawWireWanted).
   */
  static async bind(address: string, port?: number): Promise<UdpWire> {
    const family = net.isIPv6(address) ? 6 : 4;
    const inUse = (err: unknown) => err instanceof SysCallError && err.errno === 'EADDRINUSE';
    const pcapFile = process.env.IBAL_PCAP;
    const pcap = pcapFile ? sharedPcap(pcapFile) : undefined;
    if (rawWireWanted(softWireChoice(), family)) {
      const open = (p: number) =>
        new RawRoceSocket({ address, port: p, batch: 64, slotSize: MAX_FRAME, rcvbuf: 8 << 20, sndbuf: 8 << 20 });
      let r: RawRoceSocket;
      try {
        r = open(port ?? ROCE_PORT);
      } catch (err) {
        if (port !== undefined || !inUse(err)) throw err;
        r = open(0);
      }
      return new UdpWire(r, address, r.port, pcap);
    }
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

  private lookup(address: string, port: number, pin: boolean): Peer {
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
      if (canonical !== address) (p.aliases ??= []).push(address);
      // Known before the offer: negotiating may look the peer up again.
      byPort.set(port, p);
      if (fresh) {
        if (!pin) this.heard(p);
        if (!p.multicast) this.shm?.offer(p);
      }
    }
    if (pin && !p.pinned) {
      p.pinned = true;
      this.heardOnly.delete(p);
    }
    return p;
  }

  /** The peer at `address`:`port`, to send to: made if new, and kept for good. */
  peer(address: string, port: number): Peer {
    return this.lookup(address, port, true);
  }

  /** The peer a datagram came from: cached, among the bounded unpinned ones unless something sends to it. */
  private from(address: string, port: number): Peer {
    return this.lookup(address, port, false);
  }

  private heard(p: Peer): void {
    const h = this.heardOnly;
    h.add(p);
    if (h.size <= MAX_HEARD_PEERS) return;
    for (const old of h) {
      if (h.size <= MAX_HEARD_PEERS) break;
      // A same-host link up or being negotiated stays (their number has its own bound).
      if (old === p || old.link?.in || old.link?.out) continue;
      h.delete(old);
      this.forgetPeer(old);
    }
  }

  private forgetPeer(p: Peer): void {
    for (const a of [p.address, ...(p.aliases ?? [])]) {
      const m = this.peers.get(a);
      if (m?.get(p.port) !== p) continue;
      m.delete(p.port);
      if (m.size === 0) this.peers.delete(a);
    }
    if (p.family === 4) {
      const key = ipv4Key(p.addr, 0, p.port);
      if (this.peers4.get(key) === p) this.peers4.delete(key);
    }
    this.shm?.forgetPeer(p);
    this.counters.peersEvicted++;
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

  /**
   * The ICRC calculator for a packet about to go to `peer`, or undefined
   * when it goes through a shared-memory ring and so needs none. The ICRC
   * guards bytes on a wire, where a NIC computes and checks it in hardware;
   * a ring is memory of this host, so computing and checking it there (four
   * CRCs per round trip of a signaled WRITE, ~150 ns) bought nothing. A
   * capture still gets complete packets: with IBAL_PCAP set, every packet
   * carries its ICRC.
   */
  icrcFor(peer: Peer): IcrcCalculator | undefined {
    return peer.link?.out !== undefined && !this.pcap ? undefined : peer.tx;
  }

  /** Send `len` bytes of `buf` (a complete RoCE packet, its ICRC as icrcFor says) to `peer`. */
  send(buf: Buffer, len: number, peer: Peer): void {
    if (this.closed) return;
    this.counters.txPackets++;
    this.counters.txBytes += len;
    if (this.pcap) this.pcap.writeRoce(this.endpoint(this, peer), buf, len);
    if (peer.multicast) {
      this.groups.send(buf, len, peer.address, peer.port, this.onGroupSent);
      if (this.free.length < 512) this.free.push(buf);
      return;
    }
    const link = peer.link;
    if (link && (link.out || link.holding)) {
      // Copied into the peer's ring (or held for it): the buffer is free again at once.
      if (link.out) this.shm!.send(link, buf, len);
      else this.shm!.hold(link, buf, len);
      if (this.free.length < 512) this.free.push(buf);
      return;
    }
    const raw = this.raw;
    if (raw) {
      // Copied behind our IPv4 + UDP headers into the send arena; leaves with this turn's frames.
      if (!this.sendRaw(raw, len === buf.length ? buf : buf.subarray(0, len), peer)) this.counters.sendErrors++;
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
    this.raw?.ref();
  }

  unref(): void {
    this.socket?.unref();
    this.batch?.unref();
    this.raw?.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heldTimer) clearTimeout(this.heldTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held = undefined;
    this.shm?.close();
    this.groups.close();
    this.socket?.close();
    this.batch?.close();
    this.raw?.close();
  }

  /** A control datagram of the same-host negotiation (not a RoCE packet; not counted). */
  sendControl(msg: Buffer, peer: Peer): void {
    this.sendUdp(msg, peer);
  }

  sendUdp(buf: Buffer, peer: Peer): void {
    if (this.closed) return;
    if (this.raw) {
      if (!this.sendRaw(this.raw, buf, peer)) this.counters.sendErrors++;
    } else if (this.batch) {
      if (peer.udpIndex < 0) peer.udpIndex = this.batch.peer(peer.address, peer.port);
      this.batch.send(buf, peer.udpIndex);
    } else {
      this.socket!.send(buf, 0, buf.length, peer.port, peer.address);
    }
  }

  /** The process behind `peer` exited (noticed by the shared-memory path). */
  peerExited(peer: Peer): void {
    this.onPeerExit(peer);
  }

  /** A packet the peer wrote into our shared-memory ring: the same path as a datagram. */
  receiveFromShm(buf: Buffer, peer: Peer): void {
    if (!this.closed) this.receivePacket(buf, peer, undefined, 0, true);
  }

  /** One datagram to `peer` over the raw sockets; false when it could not be queued. */
  private sendRaw(raw: RawRoceSocket, payload: Uint8Array, peer: Peer): boolean {
    // An IPv4 wire cannot reach an IPv6 peer; the UDP transports fail such sends the same way.
    if (peer.family !== 4) return false;
    if (peer.udpIndex < 0) peer.udpIndex = raw.peer(peer.address);
    return raw.send(payload, peer.udpIndex, peer.port);
  }

  private endpoint(src: { addr: Uint8Array; port: number }, dst: { addr: Uint8Array; port: number }) {
    return { family: this.family, src: src.addr, dst: dst.addr, srcPort: src.port, dstPort: dst.port };
  }

  private receive(msg: Buffer, address: string, port: number): void {
    if (this.closed) return;
    // Before the peer is looked up: a probe's one-off source port must not become a cached peer.
    if (msg.length === 0) {
      this.counters.rxEmpty++;
      return;
    }
    const peer = this.from(address, port);
    if (isShmControl(msg)) this.shm?.onControl(msg, peer);
    else this.receivePacket(msg, peer);
  }

  /** One recvmmsg batch: each datagram is copied out (fault injection may keep it) and handled in order. */
  private receiveBatch(b: DatagramBatch): void {
    const data = b.data;
    for (let i = 0; i < b.count && !this.closed; i++) {
      const len = b.length(i);
      if (len === 0) {
        this.counters.rxEmpty++;
        continue;
      }
      const off = b.offset(i);
      const msg = Buffer.allocUnsafe(len);
      msg.set(data.subarray(off, off + len));
      const port = b.port(i);
      let peer: Peer | undefined;
      if (b.family(i) === 4) {
        const key = b.address4(i) * 65536 + port;
        peer = this.peers4.get(key);
        if (!peer) {
          peer = this.from(b.address(i), port);
          this.peers4.set(key, peer);
        }
      } else {
        peer = this.from(b.address(i), port);
      }
      if (isShmControl(msg)) this.shm?.onControl(msg, peer);
      else this.receivePacket(msg, peer);
    }
  }

  /**
   * One batch of the raw receive socket: whole IPv4 frames of our UDP port.
   * The UDP payload is copied out (fault injection may keep it) and handled
   * in order, as receiveBatch does; the IPv4 header decides how its ICRC is
   * checked.
   */
  private receiveFrames(b: DatagramBatch): void {
    const d = b.data;
    for (let i = 0; i < b.count && !this.closed; i++) {
      const at = b.offset(i);
      const len = b.length(i);
      const hl = (d[at]! & 0x0f) * 4;
      if (b.truncated(i) || len < 28 || d[at]! >>> 4 !== 4 || hl < 20 || len < hl + 8 || d[at + 9] !== 17) {
        this.counters.rxInvalid++;
        continue;
      }
      const u = at + hl;
      const udpLen = (d[u + 4]! << 8) | d[u + 5]!;
      if (udpLen < 8 || hl + udpLen > len) {
        this.counters.rxInvalid++;
        continue;
      }
      if (udpLen === 8) {
        this.counters.rxEmpty++;
        continue;
      }
      const srcPort = (d[u]! << 8) | d[u + 1]!;
      const key = ipv4Key(d, at + 12, srcPort);
      let peer = this.peers4.get(key);
      if (!peer) {
        peer = this.from(`${d[at + 12]}.${d[at + 13]}.${d[at + 14]}.${d[at + 15]}`, srcPort);
        this.peers4.set(key, peer);
      }
      const n = udpLen - 8;
      const msg = Buffer.allocUnsafe(n);
      msg.set(d.subarray(u + 8, u + udpLen));
      if (isShmControl(msg)) {
        this.shm?.onControl(msg, peer);
        continue;
      }
      const idFlags = ((d[at + 4]! << 24) | (d[at + 5]! << 16) | (d[at + 6]! << 8) | d[at + 7]!) >>> 0;
      // The header peer.rx assumes: the receiver's cached check is exact.
      if (hl === 20 && idFlags === ID0_DF) this.receivePacket(msg, peer);
      else this.receivePacket(msg, peer, d, at);
    }
  }

  /**
   * The ICRC of a packet that came behind another IPv4 header than ID 0 +
   * DF, over that header. A UDP-socket sender (an ibal device on a UDP wire)
   * cannot know the ID the kernel gave its datagram and computes with 0 and
   * DF; that form is accepted too, and counted, unless IBAL_SOFT_ICRC=exact.
   */
  private checkOverRealHeader(frame: Uint8Array, at: number, msg: Buffer, peer: Peer): boolean {
    const len = msg.length;
    if (!roceLengthOk(len)) return false;
    const c = this.counters;
    const lenient = !this.exactIcrc;
    if (lenient && peer.assumesId0 && checkIcrc(msg, len, peer.rx)) {
      c.rxIcrcAssumedHeader++;
      return true;
    }
    if (icrcOverIpv4Header(frame, at, msg, len) === readIcrc(msg, len)) {
      c.rxIcrcRealHeader++;
      peer.assumesId0 = false;
      return true;
    }
    if (lenient && !peer.assumesId0 && checkIcrc(msg, len, peer.rx)) {
      c.rxIcrcAssumedHeader++;
      peer.assumesId0 = true;
      return true;
    }
    return false;
  }

  /**
   * Fault injection, then delivery. `frame` and `at`: a raw frame whose IPv4
   * header is not the one peer.rx assumes. Its ICRC is checked here, after
   * fault injection (which may corrupt the packet) and while the receive
   * slot still holds the header; a held or delayed packet keeps the verdict.
   */
  private receivePacket(msg: Buffer, peer: Peer, frame?: Uint8Array, at = 0, fromRing = false): void {
    // A ring's packet carries an ICRC only if its sender captures too; a
    // capture here gets one, computed before any injected fault.
    if (fromRing && this.pcap && msg.length >= BTH_BYTES + ICRC_BYTES) writeIcrc(msg, msg.length, peer.rx);
    const f = this.faults;
    const corrupted = f ? f.counters.corrupted : 0;
    const action = f ? f.decide(msg, msg.length) : FaultAction.Deliver;
    if (action === FaultAction.Drop) return;
    const icrc = fromRing ? f === undefined || f.counters.corrupted === corrupted : frame ? this.checkOverRealHeader(frame, at, msg, peer) : undefined;
    if (f) {
      switch (action) {
        case FaultAction.Duplicate:
          this.deliver(msg, peer, icrc);
          break;
        case FaultAction.Hold:
          this.releaseHeld();
          this.held = { buf: msg, peer, icrc };
          // Swap with the next datagram; if none comes soon, let it through.
          this.heldTimer = setTimeout(() => this.releaseHeld(), 1);
          return;
        case FaultAction.Delay: {
          const t = setTimeout(() => {
            this.timers.delete(t);
            if (!this.closed) this.deliver(msg, peer, icrc);
          }, f.randomDelay());
          this.timers.add(t);
          return;
        }
        default:
          break;
      }
      this.deliver(msg, peer, icrc);
      this.releaseHeld();
      return;
    }
    this.deliver(msg, peer, icrc);
  }

  private releaseHeld(): void {
    if (this.heldTimer) {
      clearTimeout(this.heldTimer);
      this.heldTimer = undefined;
    }
    const h = this.held;
    if (h) {
      this.held = undefined;
      this.deliver(h.buf, h.peer, h.icrc);
    }
  }

  private deliver(buf: Buffer, peer: Peer, icrc: boolean | undefined): void {
    this.counters.rxPackets++;
    this.counters.rxBytes += buf.length;
    if (this.pcap) this.pcap.writeRoce(this.endpoint(peer, this), buf, buf.length);
    this.onPacket(buf, peer, icrc);
  }
}
