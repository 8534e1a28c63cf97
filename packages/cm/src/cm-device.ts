// The CM's per-device half, as Linux keeps a cm_device per HCA: one
// context, the MAD agent for the CM class on QP1, the tables that map
// incoming messages to connections (local comm ID, remote comm ID + CA GUID,
// remote QPN for stale-connection checks, service IDs of listeners) and
// every timer. Devices are opened on first use and closed with their last id
// (and last connection in timewait), so an idle CM holds no socket.

import { randomInt } from 'node:crypto';
import net from 'node:net';
import { NotFoundError, gidFromIp, softProvider, type MadAddress, type SoftDevice } from '@ibal/hca';
import { openDevice, registerMadAgent, type Context, type MadAgent } from '@ibal/verbs';
import { ROCE_UDP_PORT, isWildcard, sameIp, ipVersion, type CmAddress } from './address.js';
import { AddressError } from './errors.js';
import { CmAttr, MAD_SIZE, MadMethod, MAD_STATUS_UNSUPPORTED_METHOD_ATTR, MGMT_CLASS_CM, CM_CLASS_VERSION, readMadHeader, writeMadHeader } from './mad.js';
import { decodeDrep } from './messages/drep.js';
import { decodeDreq, encodeDreq } from './messages/dreq.js';
import { decodeMra } from './messages/mra.js';
import { decodeRej, encodeRej, MsgRejected, RejReason } from './messages/rej.js';
import { decodeRep } from './messages/rep.js';
import { decodeReq } from './messages/req.js';
import { decodeRtu } from './messages/rtu.js';
import { decodeSidrRep, decodeSidrReq, encodeSidrRep, SidrStatus } from './messages/sidr.js';
import { encodeDrep } from './messages/drep.js';
import { TimerSet } from './timers.js';
import type { CmId } from './id.js';

/** Why MADs were dropped or how they were answered, per device; see cmCounters(). */
export interface CmCounters {
  rxMads: number;
  txMads: number;
  /** Header not a CM SEND (or GET) of class version 2. */
  rxBadHeader: number;
  rxUnknownAttr: number;
  /** A message for no connection we know (late, or for a connection already gone). */
  rxUnmatched: number;
  /** A message the connection's state does not expect (counted, ignored). */
  rxBadState: number;
  /** Fields that make no sense (bad transport type, comm ID 0...). */
  rxInvalid: number;
  retransmits: number;
  /** Duplicate REQ/REP/DREQ/SIDR_REQ answered from stored state. */
  duplicates: number;
  mraSent: number;
  staleRejects: number;
  timeouts: number;
  rejectsSent: number;
}

function newCounters(): CmCounters {
  return {
    rxMads: 0,
    txMads: 0,
    rxBadHeader: 0,
    rxUnknownAttr: 0,
    rxUnmatched: 0,
    rxBadState: 0,
    rxInvalid: 0,
    retransmits: 0,
    duplicates: 0,
    mraSent: 0,
    staleRejects: 0,
    timeouts: 0,
    rejectsSent: 0,
  };
}

export function gidKey(gid: Uint8Array, udpPort: number | undefined): string {
  return `${Buffer.from(gid).toString('hex')}:${udpPort ?? ROCE_UDP_PORT}`;
}

/** Counters of devices now closed, so totals survive a device's release. */
const retired = newCounters();
const active = new Map<string, CmDevice>();
const opening = new Map<string, Promise<CmDevice>>();
/** Contexts of released devices that could not close yet because the user still holds resources on them. */
const stuck = new Set<Context>();

export class CmDevice {
  readonly counters = newCounters();
  readonly timers = new TimerSet();
  readonly byLocalId = new Map<number, CmId>();
  readonly byRemote = new Map<string, CmId>();
  readonly byRemoteQpn = new Map<string, CmId>();
  readonly listeners = new Map<bigint, CmId>();
  readonly sidrOut = new Map<number, CmId>();
  readonly sidrIn = new Map<string, CmId>();
  /** Ports taken per port space (listeners and active ids). */
  readonly ports = new Map<number, Set<number>>();
  /** Ids (live or lingering in timewait) holding the device open. */
  readonly holders = new Set<CmId>();
  readonly guid: bigint;
  readonly gid: Uint8Array;
  readonly udpPort: number;
  readonly address: string;
  readonly activeMtu: number;
  readonly maxRdAtomic: number;
  private nextCommId = randomInt(1, 0x7fffffff);
  private tidHi = BigInt(randomInt(0, 0x7fffffff)) << 32n;
  private tidLo = 0;
  private agent: MadAgent | undefined;
  private closed = false;

  private constructor(
    readonly name: string,
    readonly ctx: Context,
  ) {
    const attr = ctx.queryDevice();
    const port = ctx.queryPort(1);
    this.guid = attr.nodeGuid;
    this.maxRdAtomic = Math.min(attr.maxQpRdAtom, attr.maxQpInitRdAtom);
    this.gid = ctx.queryGid(1, 0);
    this.udpPort = port.udpPort ?? ROCE_UDP_PORT;
    this.activeMtu = port.activeMtu;
    this.address = ipFromGid(this.gid);
    this.agent = registerMadAgent(ctx, { portNum: 1, mgmtClass: MGMT_CLASS_CM, classVersion: CM_CLASS_VERSION }, (mad, src) => this.onMad(mad, src));
    const soft = (softProvider.devices() as SoftDevice[]).find((d) => d.name === name);
    this.stopPeerExit = soft?.onPeerExit((peer) => {
      const gid = gidFromIp(peer.address);
      for (const id of [...this.byLocalId.values()]) id.onPeerExit(gid, peer.udpPort);
    });
  }

  private readonly stopPeerExit: (() => void) | undefined;

  /** The CM device for a soft device by name, opening it on first use. */
  static async open(name: string): Promise<CmDevice> {
    const have = active.get(name);
    if (have) return have;
    let p = opening.get(name);
    if (!p) {
      p = (async () => {
        const ctx = await openDevice(name);
        try {
          const d = new CmDevice(name, ctx);
          active.set(name, d);
          return d;
        } catch (err) {
          ctx.close();
          throw err;
        }
      })();
      opening.set(name, p);
      p.then(
        () => opening.delete(name),
        () => opening.delete(name),
      );
    }
    return p;
  }

  hold(id: CmId): void {
    this.holders.add(id);
    this.updateRef();
  }

  /** The id no longer needs the device; the last one out closes it. */
  release(id: CmId): void {
    this.holders.delete(id);
    if (this.closed) return;
    if (this.holders.size > 0) this.updateRef();
    else this.close();
  }

  /** The device's context keeps the event loop alive while any id holding it does (CmId.unref). */
  updateRef(): void {
    if (this.closed) return;
    let on = false;
    for (const id of this.holders) if (id.refd) on = true;
    if (on) this.ctx.ref();
    else this.ctx.unref();
  }

  /** Close the device if no id took it (a failed bind or resolve). */
  dropIfIdle(): void {
    if (this.holders.size === 0 && !this.closed) this.close();
  }

  private close(): void {
    this.closed = true;
    this.timers.clear();
    active.delete(this.name);
    for (const k of Object.keys(retired) as (keyof CmCounters)[]) retired[k] += this.counters[k];
    this.agent?.unregister();
    this.agent = undefined;
    this.stopPeerExit?.();
    try {
      this.ctx.close();
    } catch {
      // The user still holds PDs/CQs/QPs on id.verbs: the context stays open for them (as librdmacm's
      // device does) and cmResources() keeps counting it until they are gone.
      stuck.add(this.ctx);
    }
  }

  allocCommId(): number {
    for (;;) {
      const id = this.nextCommId;
      this.nextCommId = this.nextCommId >= 0xfffffffe ? 1 : this.nextCommId + 1;
      if (!this.byLocalId.has(id) && !this.sidrOut.has(id)) return id;
    }
  }

  newTid(): bigint {
    this.tidLo = (this.tidLo + 1) >>> 0;
    return this.tidHi | BigInt(this.tidLo);
  }

  /** Reserve `port` (0: an ephemeral one) in a port space; returns it. */
  bindPort(ps: number, port: number, exclusive: boolean): number | undefined {
    let set = this.ports.get(ps);
    if (!set) this.ports.set(ps, (set = new Set()));
    if (port !== 0) {
      if (exclusive && set.has(port)) return undefined;
      set.add(port);
      return port;
    }
    for (let i = 0; i < 65536; i++) {
      const p = randomInt(32768, 61000);
      if (!set.has(p)) {
        set.add(p);
        return p;
      }
    }
    return undefined;
  }

  unbindPort(ps: number, port: number): void {
    this.ports.get(ps)?.delete(port);
  }

  send(mad: Uint8Array, dest: MadAddress): void {
    if (this.closed || !this.agent) return;
    try {
      this.agent.send(mad, dest);
      this.counters.txMads++;
    } catch {
      // The context went away under us (device removed): the peer's timers will notice.
    }
  }

  /** Every MAD of the CM class on this port. Never throws: it faces the network. */
  private onMad(mad: Uint8Array, src: MadAddress): void {
    const c = this.counters;
    c.rxMads++;
    if (mad.length !== MAD_SIZE) {
      c.rxBadHeader++;
      return;
    }
    const h = readMadHeader(mad);
    if (h.baseVersion !== 1 || h.mgmtClass !== MGMT_CLASS_CM || h.classVersion !== CM_CLASS_VERSION) {
      c.rxBadHeader++;
      return;
    }
    const dest: MadAddress = { dgid: src.dgid, udpPort: src.udpPort, remoteQpn: src.remoteQpn, remoteQkey: 0x80010000 };
    if (h.method === MadMethod.GET) {
      this.answerGet(h.attrId, h.tid, dest);
      return;
    }
    if (h.method !== MadMethod.SEND) {
      c.rxBadHeader++;
      return;
    }
    try {
      this.dispatch(h.attrId, h.tid, mad, dest);
    } catch {
      // A handler tripped over a field combination nothing checks for: drop, count, live on.
      c.rxInvalid++;
    }
  }

  private dispatch(attr: number, tid: bigint, mad: Uint8Array, src: MadAddress): void {
    const c = this.counters;
    switch (attr) {
      case CmAttr.REQ: {
        const req = decodeReq(mad);
        if (req.localCommId === 0) {
          c.rxInvalid++;
          return;
        }
        const dup = this.byRemote.get(`${req.localCommId}:${req.localCaGuid}`);
        if (dup) {
          dup.onDuplicateReq(tid);
          return;
        }
        this.onReq?.(this, req, tid, src);
        return;
      }
      case CmAttr.REP: {
        const rep = decodeRep(mad);
        const id = this.byLocalId.get(rep.remoteCommId);
        if (!id) {
          c.rxUnmatched++;
          // A REP for nothing we know: tell the sender so it does not wait out its retries.
          this.sendRej(tid, src, 0, rep.localCommId, MsgRejected.REP, RejReason.INVALID_COMM_ID);
          return;
        }
        id.onRep(rep, tid);
        return;
      }
      case CmAttr.RTU: {
        const rtu = decodeRtu(mad);
        const id = this.byLocalId.get(rtu.remoteCommId);
        if (!id || id.remoteCommId !== rtu.localCommId) {
          c.rxUnmatched++;
          return;
        }
        id.onRtu(rtu);
        return;
      }
      case CmAttr.REJ: {
        const rej = decodeRej(mad);
        const id = this.byLocalId.get(rej.remoteCommId);
        if (!id) {
          c.rxUnmatched++;
          return;
        }
        id.onRej(rej);
        return;
      }
      case CmAttr.MRA: {
        const mra = decodeMra(mad);
        const id = this.byLocalId.get(mra.remoteCommId);
        if (!id) {
          c.rxUnmatched++;
          return;
        }
        id.onMra(mra);
        return;
      }
      case CmAttr.DREQ: {
        const dreq = decodeDreq(mad);
        const id = this.byLocalId.get(dreq.remoteCommId);
        if (!id || id.remoteCommId !== dreq.localCommId) {
          c.rxUnmatched++;
          // IBTA: a DREQ for an unknown connection is still answered, so the peer can finish.
          this.send(encodeDrep({ localCommId: dreq.remoteCommId, remoteCommId: dreq.localCommId, privateData: new Uint8Array(0) }, tid), src);
          return;
        }
        id.onDreq(dreq, tid);
        return;
      }
      case CmAttr.DREP: {
        const drep = decodeDrep(mad);
        const id = this.byLocalId.get(drep.remoteCommId);
        if (!id || id.remoteCommId !== drep.localCommId) {
          c.rxUnmatched++;
          return;
        }
        id.onDrep();
        return;
      }
      case CmAttr.SIDR_REQ: {
        const req = decodeSidrReq(mad);
        const key = `${req.requestId}:${gidKey(src.dgid, src.udpPort)}`;
        const dup = this.sidrIn.get(key);
        if (dup) {
          dup.onDuplicateSidrReq();
          return;
        }
        this.onSidrReq?.(this, req, tid, src, key);
        return;
      }
      case CmAttr.SIDR_REP: {
        const rep = decodeSidrRep(mad);
        const id = this.sidrOut.get(rep.requestId);
        if (!id) {
          c.rxUnmatched++;
          return;
        }
        id.onSidrRep(rep, src);
        return;
      }
      default:
        c.rxUnknownAttr++;
    }
  }

  /** ClassPortInfo is the one attribute a CM answers a GET for; others get "unsupported". */
  private answerGet(attr: number, tid: bigint, dest: MadAddress): void {
    const out = new Uint8Array(MAD_SIZE);
    const supported = attr === CmAttr.CLASS_PORT_INFO;
    writeMadHeader(out, { method: MadMethod.GET_RESP, tid, attrId: attr, status: supported ? 0 : MAD_STATUS_UNSUPPORTED_METHOD_ATTR });
    if (supported) {
      out[24] = 1; // BaseVersion
      out[25] = CM_CLASS_VERSION;
      // CapabilityMask 0; CapabilityMask2 0; RespTimeValue: the default CM response timeout.
      out[31] = 20;
    }
    this.send(out, dest);
  }

  sendRej(tid: bigint, dest: MadAddress, localCommId: number, remoteCommId: number, msg: number, reason: number, privateData?: Uint8Array, ari?: Uint8Array): void {
    this.counters.rejectsSent++;
    this.send(
      encodeRej(
        { localCommId, remoteCommId, messageRejected: msg, rejectedInfoLength: ari ? Math.min(ari.length, 72) : 0, reason, ari: ari ?? new Uint8Array(0), privateData: privateData ?? new Uint8Array(0) },
        tid,
      ),
      dest,
    );
  }

  sendSidrRep(tid: bigint, dest: MadAddress, requestId: number, status: number, serviceId: bigint, qpn = 0, qkey = 0, privateData?: Uint8Array): Uint8Array {
    const mad = encodeSidrRep(
      { requestId, status, addInfoLength: 0, qpn, serviceId, qkey, addInfo: new Uint8Array(0), privateData: privateData ?? new Uint8Array(0) },
      tid,
    );
    this.send(mad, dest);
    return mad;
  }

  /** DREQ for an id lingering after destroy: fire and forget is not enough, so ids keep their own timers. */
  encodeDreqFor(localCommId: number, remoteCommId: number, remoteQpn: number, tid: bigint, privateData?: Uint8Array): Uint8Array {
    return encodeDreq({ localCommId, remoteCommId, remoteQpn, privateData: privateData ?? new Uint8Array(0) }, tid);
  }

  /** Set by id.ts: a new REQ for a service (listener lookup, child id). */
  onReq: ((dev: CmDevice, req: ReturnType<typeof decodeReq>, tid: bigint, src: MadAddress) => void) | undefined;
  onSidrReq: ((dev: CmDevice, req: ReturnType<typeof decodeSidrReq>, tid: bigint, src: MadAddress, key: string) => void) | undefined;
}

function ipFromGid(gid: Uint8Array): string {
  let mapped = gid[10] === 0xff && gid[11] === 0xff;
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) mapped = false;
  if (mapped) return `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((gid[i]! << 8) | gid[i + 1]!).toString(16));
  return new net.SocketAddress({ address: parts.join(':'), family: 'ipv6' }).address;
}

export { ipFromGid };

/**
 * The soft device an address belongs to (bind, or the source of a resolve):
 * the one with that IP (and UDP port, when given). With no address, the
 * first device of the destination's IP version.
 */
export async function deviceFor(local: Partial<CmAddress> | undefined, dst: CmAddress | undefined, deviceName?: string): Promise<CmDevice> {
  if (deviceName !== undefined) {
    const d = softProvider.devices().find((x) => x.name === deviceName);
    if (!d) throw new NotFoundError(`no soft device named "${deviceName}"`);
    return CmDevice.open(d.name);
  }
  const devs: SoftDevice[] = softProvider.devices() as SoftDevice[];
  const want = local?.address !== undefined && !isWildcard(local.address) ? local.address : undefined;
  const family = want ? ipVersion(want) : dst ? ipVersion(dst.address) : 4;
  const candidates = devs.filter((d) => !d.removed && (want ? sameIp(d.address, want) : ipVersion(d.address) === family));
  if (candidates.length === 0) {
    throw new AddressError(
      want
        ? `no RDMA device has address ${want} (devices: ${devs.map((d) => `${d.name}=${d.address}`).join(', ') || 'none'})`
        : `no RDMA device of IPv${family} (add one with addSoftDevice or IBAL_SOFT_DEVICES)`,
    );
  }
  for (const d of candidates) {
    if (local?.udpPort === undefined) return CmDevice.open(d.name);
    const cm = await CmDevice.open(d.name);
    if (cm.udpPort === local.udpPort) return cm;
    cm.dropIfIdle();
  }
  throw new AddressError(`no RDMA device has address ${want ?? '(any)'} with UDP port ${local?.udpPort}`);
}

/** CM counters summed over every device this process has used. */
export function cmCounters(): CmCounters {
  const out = { ...retired };
  for (const d of active.values()) for (const k of Object.keys(out) as (keyof CmCounters)[]) out[k] += d.counters[k];
  return out;
}

/** What the CM holds right now: for leak checks in tests and tools. */
export function cmResources(): { devices: number; ids: number; timers: number; connections: number; listeners: number } {
  for (const ctx of stuck) {
    try {
      ctx.close();
      stuck.delete(ctx);
    } catch {
      // Still in use.
    }
  }
  let ids = 0;
  let timers = 0;
  let connections = 0;
  let listeners = 0;
  for (const d of active.values()) {
    ids += d.holders.size;
    timers += d.timers.size;
    connections += d.byLocalId.size;
    listeners += d.listeners.size;
  }
  return { devices: active.size + stuck.size, ids, timers, connections, listeners };
}

export { SidrStatus };
