// UD multicast over IP multicast, as RoCEv2 carries it: a multicast GID is
// an IPv4-mapped 224.0.0.0/4 address or an IPv6 ff00::/8 one, a packet to a
// group is one UDP datagram to that address (destination QP 0xFFFFFF) that
// every host which joined the group receives, and each receiving HCA hands
// a copy to every UD QP attached to the group (ibv_attach_mcast). Members
// join with IGMP/MLD through the kernel (IP_ADD_MEMBERSHIP on the device's
// interface), rxe's way; nothing here is an IB subnet manager.
//
// Groups use one socket each, bound to the group address and port, so they
// never take a unicast device's datagrams; sends leave through a socket of
// their own whose multicast interface is the device's address, so members
// on this host (looped back) and on its link get them.
import dgram from 'node:dgram';
import os from 'node:os';
import { IcrcCalculator, checkIcrc, writeIcrc } from '../packet/icrc.js';
import { BTH_BYTES, ICRC_BYTES } from '../packet/opcode.js';
import { ipToBytes } from './gid.js';

/** A multicast IP address: 224.0.0.0/4, or ff00::/8. */
export function isMulticastAddr(family: 4 | 6, addr: Uint8Array): boolean {
  return family === 4 ? addr[0]! >= 224 && addr[0]! <= 239 : addr[0] === 0xff;
}

/** What the groups need of the device's wire. */
export interface MulticastHost {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

/** A datagram to a group: the packet, the group, the sender, and whether its ICRC (computed towards the group) verified. */
export type GroupPacketHandler = (buf: Buffer, group: string, port: number, from: { address: string; port: number }, icrc: boolean) => void;

interface Group {
  socket: dgram.Socket;
  members: number;
  /** The ICRC of a datagram to the group covers the group as its destination: one calculator per sender. */
  calcs: Map<string, IcrcCalculator>;
  ready: Promise<void>;
}

/** Senders whose ICRC calculators a group keeps (and groups this device's sends keep one for); the oldest go first. */
const MAX_SENDERS = 256;

/**
 * How the sockets name the device's interface: IPv4 by its address; IPv6 by
 * the interface's scope (`::%eth0`), which is what IPV6_MULTICAST_IF and
 * IPV6_JOIN_GROUP take (an address there would leave the kernel to pick).
 */
function interfaceOf(host: MulticastHost): string {
  if (host.family === 4) return host.address;
  const want = ipToBytes(host.address).join('.');
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv6' && ipToBytes(a.address.split('%')[0]!).join('.') === want)) return `::%${name}`;
  }
  return '::';
}

export class MulticastGroups {
  private readonly groups = new Map<string, Group>();
  private tx: dgram.Socket | undefined;
  private txReady: Promise<void> | undefined;
  /** The ICRC covers the UDP source port: the one of the socket the datagram really leaves from, per group. */
  private readonly txCalcs = new Map<string, IcrcCalculator>();
  private closed = false;

  constructor(
    private readonly host: MulticastHost,
    private readonly onPacket: GroupPacketHandler,
  ) {}

  /**
   * Joins `group`:`port` for one more member (a QP attaching); resolves once
   * the socket listens. The first member binds and joins, later ones count.
   */
  join(group: string, port: number): Promise<void> {
    const key = `${group}|${port}`;
    const g = this.groups.get(key);
    if (g) {
      g.members++;
      return g.ready;
    }
    const socket = dgram.createSocket({ type: this.host.family === 6 ? 'udp6' : 'udp4', reuseAddr: true });
    const calcs = new Map<string, IcrcCalculator>();
    const groupBytes = ipToBytes(group);
    socket.on('message', (msg, rinfo) => {
      if (this.closed || msg.length < BTH_BYTES + ICRC_BYTES) return;
      const ck = `${rinfo.address}|${rinfo.port}`;
      let calc = calcs.get(ck);
      if (!calc) {
        if (calcs.size >= MAX_SENDERS) calcs.delete(calcs.keys().next().value!);
        calc = new IcrcCalculator({ family: this.host.family, src: ipToBytes(rinfo.address), dst: groupBytes, srcPort: rinfo.port, dstPort: port });
        calcs.set(ck, calc);
      }
      this.onPacket(msg, group, port, { address: rinfo.address, port: rinfo.port }, checkIcrc(msg, msg.length, calc));
    });
    // A socket error (the group dropped by the kernel, say) ends its delivery; members see no more packets, as on a failed join.
    socket.on('error', () => {});
    const ready = new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, group, () => {
        try {
          socket.addMembership(group, interfaceOf(this.host));
          socket.off('error', reject);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
    this.groups.set(key, { socket, members: 1, calcs, ready });
    ready.catch(() => {
      if (this.groups.get(key)?.socket === socket) this.groups.delete(key);
      socket.close();
    });
    return ready;
  }

  /** One member fewer; the last one leaves the group and closes its socket. */
  leave(group: string, port: number): void {
    const key = `${group}|${port}`;
    const g = this.groups.get(key);
    if (!g) return;
    if (--g.members > 0) return;
    this.groups.delete(key);
    g.ready.then(
      () => {
        try {
          g.socket.dropMembership(group, interfaceOf(this.host));
        } catch {
          // Dropped already (the interface went away): closing is all that is left.
        }
        g.socket.close();
      },
      () => {},
    );
  }

  /** Sends a datagram to a group, from the device's address. */
  send(buf: Buffer, len: number, group: string, port: number, done: (err?: Error | null) => void): void {
    if (this.closed) return done();
    if (!this.tx) {
      const tx = dgram.createSocket(this.host.family === 6 ? 'udp6' : 'udp4');
      tx.on('error', () => {});
      this.tx = tx;
      this.txReady = new Promise<void>((resolve) => {
        tx.bind(0, this.host.address, () => {
          try {
            tx.setMulticastInterface(interfaceOf(this.host));
            tx.setMulticastLoopback(true);
            tx.setMulticastTTL(16);
          } catch {
            // Left at the kernel's defaults: the route decides the interface.
          }
          resolve();
        });
      });
    }
    // Copied: the caller's buffer goes back to its pool at once.
    const copy = Buffer.from(buf.subarray(0, len));
    void this.txReady!.then(() => {
      if (this.closed) return done();
      const key = `${group}|${port}`;
      let calc = this.txCalcs.get(key);
      if (!calc) {
        if (this.txCalcs.size >= MAX_SENDERS) this.txCalcs.delete(this.txCalcs.keys().next().value!);
        calc = new IcrcCalculator({ family: this.host.family, src: ipToBytes(this.host.address), dst: ipToBytes(group), srcPort: this.tx!.address().port, dstPort: port });
        this.txCalcs.set(key, calc);
      }
      writeIcrc(copy, len, calc);
      this.tx!.send(copy, port, group, done);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of this.groups.values()) g.ready.then(() => g.socket.close(), () => {});
    this.groups.clear();
    this.tx?.close();
  }
}
