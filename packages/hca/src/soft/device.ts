import { isIP } from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import { NodeType, QpState, QpType } from '../enums.js';
import { InvalidArgumentError, NotFoundError, ResourceClosedError } from '../errors.js';
import { checkIcrc } from '../packet/icrc.js';
import { DecodeResult, decodePacket, newParsedPacket, type ParsedPacket } from '../packet/packet.js';
import type { AsyncEvent, HcaDevice, HcaProvider, QpInitAttr } from '../provider.js';
import { SoftContext } from './context.js';
import { DeviceCounters } from './counters.js';
import { Directory } from './directory.js';
import { FaultInjector, type FaultOptions } from './faults.js';
import { GSI_QPN, receiveGsi } from './gsi.js';
import { gidFromIp, ipToBytes } from './gid.js';
import { isMulticastAddr } from './multicast.js';
import { MrTable, type PdRef } from './mr.js';
import { SoftQp, type AckFlusher, type QpHost } from './qp.js';
import { ROCE_PORT, UdpWire, type Peer } from './wire.js';

/** The destination QP of every multicast packet (IBTA: the multicast QPN). */
const MCAST_QPN = 0xffffff;

export interface SoftDeviceOptions {
  /** Device name, like rxe0; default softN. */
  name?: string;
  /** IP address to bind; default 127.0.0.1. */
  address?: string;
  /** UDP port; default 4791, or an ephemeral port if 4791 is taken. */
  port?: number;
  /** Seeded fault injection on received datagrams. */
  faults?: FaultOptions;
}

/** IB MTU enum that fits an interface MTU after IP, UDP, BTH, the largest extension headers and ICRC. */
function mtuEnumFor(ifMtu: number): number {
  const room = ifMtu - 20 - 8 - 12 - 28 - 4;
  let e = 5;
  while (e > 1 && 128 << e > room) e--;
  return e;
}

function interfaceMtu(address: string): number {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (!addrs?.some((a) => a.address === address)) continue;
    try {
      return Number(fs.readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    } catch {
      return 1500;
    }
  }
  // Unassigned loopback addresses (127.0.0.2...) route through lo.
  return address.startsWith('127.') || address === '::1' ? 65536 : 1500;
}

let deviceCount = 0;

/**
 * A soft RoCEv2 device: an IP address and UDP port, like an rxe device bound
 * to a netdev. The wire is bound when the first context opens and closed with
 * the last, so an idle device holds no socket.
 */
export class SoftDevice implements HcaDevice, QpHost {
  readonly name: string;
  readonly address: string;
  readonly nodeType = NodeType.CA;
  readonly provider = 'soft';
  readonly gid: Uint8Array;
  private readonly index: number;
  readonly mrs = new MrTable();
  readonly counters = new DeviceCounters();
  readonly activeMtuEnum: number;
  faults: FaultInjector | undefined;
  removed = false;
  /** What same-host peers may READ without asking (directory.ts): made with each wire that has the fast path, dropped with it. */
  directory: Directory | undefined;

  private readonly requestedPort: number | undefined;
  private wireRef: UdpWire | undefined;
  private binding: Promise<UdpWire> | undefined;
  private readonly contexts = new Set<SoftContext>();
  private readonly qps = new Map<number, SoftQp>();
  private nextQpn = 0x11;
  private readonly rx = newParsedPacket();
  /** Inside progress(): responders whose coalesced ACK goes out when it ends. */
  private progressing = false;
  private readonly deferredAcks: AckFlusher[] = [];

  constructor(opts: SoftDeviceOptions = {}) {
    this.index = deviceCount++;
    this.name = opts.name ?? `soft${this.index}`;
    this.address = opts.address ?? '127.0.0.1';
    ipToBytes(this.address);
    if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port >= 0 && opts.port <= 65535)) {
      throw new InvalidArgumentError(`UDP port ${opts.port} outside 0..65535`);
    }
    this.requestedPort = opts.port;
    this.gid = gidFromIp(this.address);
    this.activeMtuEnum = mtuEnumFor(interfaceMtu(this.address));
    this.faults = opts.faults ? new FaultInjector(opts.faults) : FaultInjector.fromEnv(process.env.IBAL_FAULTS);
  }

  /**
   * The node GUID. rxe derives it from the MAC; a soft device has none, so
   * it hashes what makes it unique on the host: the whole GID and the bound
   * UDP port (before the socket is bound, the pid and device index stand in
   * for an ephemeral port). FNV-1a, then the locally-administered bit.
   */
  get guid(): bigint {
    let h = 0xcbf29ce484222325n;
    const mix = (b: number): void => {
      h = BigInt.asUintN(64, (h ^ BigInt(b & 0xff)) * 0x100000001b3n);
    };
    for (const b of this.gid) mix(b);
    const port = this.wireRef?.port ?? (this.requestedPort || undefined);
    const salt = port ?? process.pid * 256 + (this.index & 0xff);
    for (let i = 0; i < 6; i++) mix(Math.floor(salt / 2 ** (8 * i)));
    return (h & ~0x0300_0000_0000_0000n) | 0x0200_0000_0000_0000n;
  }

  get activeMtu(): number {
    return 128 << this.activeMtuEnum;
  }

  get wire(): UdpWire {
    if (!this.wireRef) throw new ResourceClosedError(`${this.name}: device is not open`);
    return this.wireRef;
  }

  /** The UDP port the device listens on, once open. */
  get port(): number | undefined {
    return this.wireRef?.port;
  }

  /** Turn fault injection on (or off, with undefined) for datagrams this device receives. */
  setFaults(opts: FaultOptions | undefined): void {
    this.faults = opts ? new FaultInjector(opts) : undefined;
    if (this.wireRef) this.wireRef.faults = this.faults;
  }

  async open(): Promise<SoftContext> {
    if (this.removed) throw new NotFoundError(`${this.name} was removed`);
    if (!this.wireRef) {
      this.binding ??= UdpWire.bind(this.address, this.requestedPort);
      try {
        const wire = await this.binding;
        if (!this.wireRef) {
          this.wireRef = wire;
          wire.faults = this.faults;
          wire.onPacket = this.receive;
          wire.onGroupPacket = this.receiveGroup;
          wire.onPeerExit = this.peerExit;
          if (wire.shm) {
            this.directory = Directory.create();
            if (this.directory) {
              this.mrs.publishIn(this.directory);
              for (const qp of this.qps.values()) this.directory.publishQp(qp);
            }
            wire.shm.directory = this.directory?.desc;
          }
        }
      } finally {
        this.binding = undefined;
      }
    }
    const ctx = new SoftContext(this);
    this.contexts.add(ctx);
    this.updateRef();
    return ctx;
  }

  /**
   * The device's handles (its socket, its shared-memory waits) keep the
   * event loop alive while any open context is ref'd, as a net.Socket's
   * handle does until unref(); otherwise they only work while something
   * else keeps the process running.
   */
  updateRef(): void {
    const wire = this.wireRef;
    if (!wire) return;
    let on = false;
    for (const c of this.contexts) if (c.refd) on = true;
    if (on) wire.ref();
    else wire.unref();
    wire.shm?.setRef(on);
  }

  closeContext(ctx: SoftContext): void {
    this.contexts.delete(ctx);
    this.updateRef();
    for (const qp of [...this.qps.values()]) {
      if (qp.ctx === ctx) qp.destroy();
    }
    if (this.contexts.size === 0 && this.wireRef) {
      this.wireRef.close();
      this.wireRef = undefined;
      // Peers unmap it as their links to the closed wire go down.
      this.mrs.publishIn(undefined);
      this.directory?.close();
      this.directory = undefined;
    }
  }

  createQp(pd: PdRef, init: QpInitAttr, ctx: SoftContext): SoftQp {
    if (init.qpType !== QpType.RC && init.qpType !== QpType.UC && init.qpType !== QpType.UD) {
      throw new InvalidArgumentError(`unsupported QP type ${init.qpType}`);
    }
    let qpn = this.nextQpn;
    while (this.qps.has(qpn)) qpn = qpn >= 0xffffff ? 0x11 : qpn + 1;
    this.nextQpn = qpn >= 0xffffff ? 0x11 : qpn + 1;
    const qp = new SoftQp(this, pd, qpn, init);
    qp.ctx = ctx;
    this.qps.set(qpn, qp);
    return qp;
  }

  deferAck(flush: AckFlusher): boolean {
    if (!this.progressing) return false;
    this.deferredAcks.push(flush);
    return true;
  }

  /**
   * Manual progress: handles now, synchronously, what the same-host rings
   * hold for this device, then sends the ACKs that produced. Polling a CQ
   * calls it when the CQ is empty, so a caller spinning on poll (as perftest
   * and MPI progress loops do) sees completions without yielding to the
   * event loop. Datagrams still arrive only through the event loop.
   * Returns the packets handled.
   */
  progress(): number {
    const shm = this.wireRef?.shm;
    if (!shm || this.progressing) return 0;
    this.progressing = true;
    let n = 0;
    try {
      n = shm.drainNow();
    } finally {
      this.progressing = false;
      const acks = this.deferredAcks;
      if (acks.length > 0) {
        for (let i = 0; i < acks.length; i++) acks[i]!.flushPendingAck();
        acks.length = 0;
      }
    }
    return n;
  }

  /** QPs attached to each multicast group (its IP address), on this device. */
  private readonly mcast = new Map<string, Set<SoftQp>>();

  async attachMcast(qp: SoftQp, group: string): Promise<void> {
    const wire = this.wireRef;
    if (!wire) throw new ResourceClosedError(`${this.name}'s wire`);
    const bytes = ipToBytes(group);
    const family = bytes.length === 16 ? 6 : 4;
    if (family !== wire.family || !isMulticastAddr(family, bytes)) {
      throw new InvalidArgumentError(`attachMcast: ${group} is not an IPv${wire.family} multicast group (224.0.0.0/4 or ff00::/8) for ${this.name}`);
    }
    if (qp.groups.has(group)) return;
    let set = this.mcast.get(group);
    if (!set) this.mcast.set(group, (set = new Set()));
    set.add(qp);
    qp.groups.add(group);
    try {
      // RoCEv2's port: senders' address handles name 4791 unless told otherwise.
      await wire.groups.join(group, ROCE_PORT);
    } catch (err) {
      this.detachMcast(qp, group, false);
      throw new InvalidArgumentError(`attachMcast: cannot join ${group} on ${wire.address}: ${(err as Error).message}`, { cause: err });
    }
  }

  detachMcast(qp: SoftQp, group: string, leave = true): boolean {
    const set = this.mcast.get(group);
    if (!set?.delete(qp)) return false;
    qp.groups.delete(group);
    if (set.size === 0) this.mcast.delete(group);
    if (leave) this.wireRef?.groups.leave(group, ROCE_PORT);
    return true;
  }

  /** A datagram to a group: a copy to each attached UD QP that can receive (rxe_rcv_mcast_pkt). */
  private readonly receiveGroup = (buf: Buffer, peer: Peer, group: string, groupAddr: Uint8Array, icrc: boolean): void => {
    const p = this.decoded(buf, peer, icrc);
    if (!p) return;
    const c = this.counters;
    const qps = this.mcast.get(group);
    if (p.destQp !== MCAST_QPN || !qps) {
      c.rxUnknownQp++;
      return;
    }
    for (const qp of qps) {
      const st = qp.state;
      if (st !== QpState.RTR && st !== QpState.RTS && st !== QpState.SQD) {
        c.rxBadState++;
        continue;
      }
      qp.resp.onGroup(p, buf, peer, groupAddr);
    }
  };

  unregisterQp(qp: SoftQp): void {
    if (this.qps.get(qp.qpNum) === qp) this.qps.delete(qp.qpNum);
  }

  raise(e: AsyncEvent): void {
    const qp = e.qp as SoftQp | undefined;
    if (qp?.ctx) qp.ctx.raise(e);
    else for (const c of this.contexts) c.raise(e);
  }

  private readonly peerExitListeners = new Set<(peer: { address: string; udpPort: number }) => void>();

  /**
   * Calls `listener` when a process on this host that this device exchanged
   * packets with over shared memory exits. Nothing in the HCA changes (its
   * QPs to that peer time out as for any lost peer); the CM uses it to do what
   * the dead process's kernel would have done, disconnect its connections.
   * Returns the function that removes the listener.
   */
  onPeerExit(listener: (peer: { address: string; udpPort: number }) => void): () => void {
    this.peerExitListeners.add(listener);
    return () => this.peerExitListeners.delete(listener);
  }

  private readonly peerExit = (peer: Peer): void => {
    for (const l of [...this.peerExitListeners]) l({ address: peer.address, udpPort: peer.port });
  };

  /**
   * Every datagram the wire receives: decode, verify the ICRC, find the QP,
   * and hand it to the requester (responses) or responder (requests). Each
   * refusal is counted; none throws. `icrc` is the raw wire's verdict when
   * it checked the ICRC over a real IPv4 header (see wire.ts PacketHandler).
   */
  private readonly receive = (buf: Buffer, peer: Peer, icrc?: boolean): void => {
    const p = this.decoded(buf, peer, icrc);
    if (!p) return;
    const c = this.counters;
    if (p.destQp === GSI_QPN) return receiveGsi(this, p, buf, peer);
    const qp = this.qps.get(p.destQp);
    if (!qp) {
      c.rxUnknownQp++;
      return;
    }
    const op = p.opcode;
    const transport = op >>> 5;
    const qpt = qp.qpType;
    if ((qpt === QpType.RC && transport !== 0) || (qpt === QpType.UC && transport !== 1) || (qpt === QpType.UD && transport !== 3)) {
      c.rxWrongTransport++;
      return;
    }
    const state = qp.state;
    if (qpt === QpType.RC && op >= 0x0d && op <= 0x12) {
      if (state !== QpState.RTS && state !== QpState.SQD) {
        c.rxBadState++;
        return;
      }
      if (op === 0x11) qp.req.onAck(p);
      else if (op === 0x12) qp.req.onAtomicAck(p);
      else qp.req.onReadResponse(p, buf);
      return;
    }
    if (state !== QpState.RTR && state !== QpState.RTS && state !== QpState.SQD) {
      c.rxBadState++;
      return;
    }
    qp.resp.onRequest(p, buf, peer);
  };

  /** Counts a received datagram and decodes it into this.rx; undefined (counted) when malformed or its ICRC fails. */
  private decoded(buf: Buffer, peer: Peer, icrc: boolean | undefined): ParsedPacket | undefined {
    const c = this.counters;
    c.rxPackets++;
    const p = this.rx;
    if (decodePacket(buf, buf.length, p) !== DecodeResult.OK) {
      c.rxMalformed++;
      return undefined;
    }
    if (icrc === undefined ? !checkIcrc(buf, p.totalLength, peer.rx) : !icrc) {
      c.rxBadIcrc++;
      return undefined;
    }
    return p;
  }

  /** Close every context and forget the device (rdma link delete). */
  remove(): void {
    for (const ctx of [...this.contexts]) ctx.close();
    this.removed = true;
    softDevices.delete(this);
  }
}

const softDevices = new Set<SoftDevice>();

/** Add a soft device, as `rdma link add rxe0 type rxe netdev eth0` adds an rxe device. */
export function addSoftDevice(opts: SoftDeviceOptions = {}): SoftDevice {
  if (opts.name && [...softDevices].some((d) => d.name === opts.name)) {
    throw new InvalidArgumentError(`a soft device named ${opts.name} exists`);
  }
  const dev = new SoftDevice(opts);
  softDevices.add(dev);
  return dev;
}

/**
 * `IBAL_SOFT_DEVICES=soft0=127.0.0.1:4791,soft1=::1,soft2=[::1]:4800`
 * configures the default devices (a bare IPv6 address takes no port; bracket
 * it to add one; port 0 binds an ephemeral port); without it there is one,
 * soft0 on 127.0.0.1.
 */
function defaultDevices(): void {
  const spec = process.env.IBAL_SOFT_DEVICES;
  if (!spec) {
    addSoftDevice({ name: 'soft0' });
    return;
  }
  for (const item of spec.split(',')) {
    const d = parseDeviceSpec(item);
    if (!d) throw new InvalidArgumentError(`IBAL_SOFT_DEVICES: cannot parse "${item}" (want [name=]ip[:port] or [name=][ipv6]:port)`);
    addSoftDevice(d);
  }
}

/** One IBAL_SOFT_DEVICES item: `[name=]address[:port]`, IPv6 bare or bracketed. */
export function parseDeviceSpec(item: string): SoftDeviceOptions | undefined {
  const m = /^(?:([\w.-]+)=)?(.+)$/.exec(item.trim());
  if (!m) return undefined;
  const name = m[1];
  const rest = m[2]!;
  let address: string;
  let port: string | undefined;
  if (isIP(rest)) {
    address = rest;
  } else {
    const hp = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest) ?? /^([^:]+):(\d+)$/.exec(rest);
    if (!hp || !isIP(hp[1]!)) return undefined;
    address = hp[1]!;
    port = hp[2];
  }
  return { name, address, port: port !== undefined ? Number(port) : undefined };
}

let defaultsMade = false;

export const softProvider: HcaProvider = {
  name: 'soft',
  devices(): SoftDevice[] {
    if (!defaultsMade) {
      defaultsMade = true;
      if (softDevices.size === 0) defaultDevices();
    }
    return [...softDevices];
  },
};
