// The soft HCA's General Services Interface: QP1. In Linux the kernel's MAD
// layer owns QP1 and user space reaches it through libibumad (umad_register
// an agent for a management class, then send/recv MADs); here a context
// registers a MAD agent the same way. MADs travel as RoCEv2 UD SEND ONLY
// packets to and from QP1 with the GSI's well-known Q_Key in the DETH and the
// default P_Key in the BTH, as rxe sends them; the "GRH" of a received MAD is
// the IP/UDP header, which gives its source address.

import { InvalidArgumentError, ResourceBusyError, ResourceClosedError } from '../errors.js';
import { Opcode } from '../packet/opcode.js';
import { encodeHeaders, finishPacket, newParsedPacket, type ParsedPacket } from '../packet/packet.js';
import type { HcaMadAgent, MadAddress, MadAgentCounters, MadAgentOptions, MadHandler } from '../provider.js';
import type { SoftContext } from './context.js';
import type { SoftDevice } from './device.js';
import { gidFromIp, ipFromGid } from './gid.js';
import { ROCE_PORT, type Peer } from './wire.js';

export const GSI_QPN = 1;
export const GSI_QKEY = 0x80010000;
export const DEFAULT_PKEY = 0xffff;
export const MAD_SIZE = 256;

/** Why received QP1 packets were dropped, per device. */
export interface GsiCounters {
  rxMads: number;
  txMads: number;
  /** Not a UD SEND ONLY. */
  rxBadOpcode: number;
  rxBadQkey: number;
  /** P_Key not the default partition. */
  rxBadPkey: number;
  /** Payload other than one 256-byte MAD. */
  rxBadLength: number;
  /** Base version other than 1. */
  rxBadVersion: number;
  /** No agent registered for the class and version. */
  rxNoAgent: number;
}

class Gsi {
  readonly agents = new Set<SoftMadAgent>();
  readonly counters: GsiCounters = {
    rxMads: 0,
    txMads: 0,
    rxBadOpcode: 0,
    rxBadQkey: 0,
    rxBadPkey: 0,
    rxBadLength: 0,
    rxBadVersion: 0,
    rxNoAgent: 0,
  };
  readonly tx: ParsedPacket = newParsedPacket();
  psn = 0;
}

const gsis = new WeakMap<SoftDevice, Gsi>();

function gsiOf(dev: SoftDevice): Gsi {
  let g = gsis.get(dev);
  if (!g) {
    g = new Gsi();
    gsis.set(dev, g);
  }
  return g;
}

/** The device's QP1 drop and traffic counters. */
export function gsiCounters(dev: SoftDevice): Readonly<GsiCounters> {
  return gsiOf(dev).counters;
}

/** A packet for QP1 whose ICRC the device has checked: deliver its MAD or count why not. */
export function receiveGsi(dev: SoftDevice, p: ParsedPacket, buf: Uint8Array, peer: Peer): void {
  const g = gsiOf(dev);
  const c = g.counters;
  if (p.opcode !== Opcode.UD_SEND_ONLY) {
    c.rxBadOpcode++;
    return;
  }
  if (p.dethQkey !== GSI_QKEY) {
    c.rxBadQkey++;
    return;
  }
  // Full or limited membership of the default partition.
  if ((p.pkey & 0x7fff) !== 0x7fff) {
    c.rxBadPkey++;
    return;
  }
  if (p.payloadLength !== MAD_SIZE) {
    c.rxBadLength++;
    return;
  }
  const off = p.payloadOffset;
  if (buf[off] !== 1) {
    c.rxBadVersion++;
    return;
  }
  const mgmtClass = buf[off + 1]!;
  const classVersion = buf[off + 2]!;
  for (const a of g.agents) {
    if (a.closed || a.ctx.closed || a.mgmtClass !== mgmtClass || a.classVersion !== classVersion) continue;
    c.rxMads++;
    a.counters.rxMads++;
    // A private copy: the buffer may be a shared-memory ring slot reused after we return.
    const mad = Uint8Array.prototype.slice.call(buf, off, off + MAD_SIZE);
    const src: MadAddress = {
      dgid: gidFromIp(peer.address),
      udpPort: peer.port,
      remoteQpn: p.dethSrcQp,
      remoteQkey: p.dethQkey,
      pkey: p.pkey,
    };
    a.deliver(mad, src);
    return;
  }
  c.rxNoAgent++;
}

export class SoftMadAgent implements HcaMadAgent {
  readonly counters: MadAgentCounters = { txMads: 0, rxMads: 0 };
  closed = false;

  constructor(
    readonly ctx: SoftContext,
    private readonly gsi: Gsi,
    readonly mgmtClass: number,
    readonly classVersion: number,
    private readonly onMad: MadHandler,
  ) {}

  deliver(mad: Uint8Array, src: MadAddress): void {
    // Never run the class agent inside the device's receive loop.
    queueMicrotask(() => {
      if (!this.closed && !this.ctx.closed) this.onMad(mad, src);
    });
  }

  send(mad: Uint8Array, dest: MadAddress): void {
    if (this.closed) throw new ResourceClosedError('MAD agent');
    this.ctx.check();
    if (!(mad instanceof Uint8Array) || mad.length !== MAD_SIZE) {
      throw new InvalidArgumentError(`a MAD is ${MAD_SIZE} bytes, got ${mad instanceof Uint8Array ? mad.length : typeof mad}`);
    }
    if (!(dest.dgid instanceof Uint8Array) || dest.dgid.length !== 16) throw new InvalidArgumentError('MAD destination: dgid must be 16 bytes');
    const qpn = dest.remoteQpn;
    if (!(Number.isInteger(qpn) && qpn >= 0 && qpn <= 0xffffff)) throw new InvalidArgumentError(`MAD destination: bad QPN ${String(qpn)}`);
    const wire = this.ctx.device.wire;
    const peer = wire.peer(ipFromGid(dest.dgid), dest.udpPort ?? ROCE_PORT);
    const h = this.gsi.tx;
    h.opcode = Opcode.UD_SEND_ONLY;
    h.se = false;
    h.migReq = false;
    h.padCount = 0;
    h.tver = 0;
    h.pkey = DEFAULT_PKEY;
    h.fecn = false;
    h.becn = false;
    h.destQp = qpn;
    h.ackReq = false;
    h.psn = this.gsi.psn;
    this.gsi.psn = (this.gsi.psn + 1) & 0xffffff;
    h.dethQkey = (dest.remoteQkey ?? GSI_QKEY) >>> 0;
    h.dethSrcQp = GSI_QPN;
    const buf = wire.acquire();
    const hdr = encodeHeaders(buf, 0, h);
    buf.set(mad, hdr);
    const len = finishPacket(buf, hdr, MAD_SIZE, peer.tx);
    wire.send(buf, len, peer);
    this.counters.txMads++;
    this.gsi.counters.txMads++;
  }

  unregister(): void {
    if (this.closed) return;
    this.closed = true;
    this.gsi.agents.delete(this);
  }
}

/** umad_register for a soft context: one agent per class and version per device. */
export function registerSoftMadAgent(ctx: SoftContext, opts: MadAgentOptions, onMad: MadHandler): SoftMadAgent {
  if (opts.portNum !== 1) throw new InvalidArgumentError(`${ctx.device.name} has one port, port 1; asked for ${String(opts.portNum)}`);
  const byte = (v: number, what: string) => {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xff)) throw new InvalidArgumentError(`registerMadAgent: ${what} must be a byte, got ${String(v)}`);
  };
  byte(opts.mgmtClass, 'mgmtClass');
  byte(opts.classVersion, 'classVersion');
  if (typeof onMad !== 'function') throw new InvalidArgumentError('registerMadAgent: onMad must be a function');
  const g = gsiOf(ctx.device);
  for (const a of [...g.agents]) {
    if (a.ctx.closed) a.unregister();
    else if (a.mgmtClass === opts.mgmtClass && a.classVersion === opts.classVersion) {
      throw new ResourceBusyError(`${ctx.device.name}: an agent for class 0x${opts.mgmtClass.toString(16)} version ${opts.classVersion} is registered`);
    }
  }
  const agent = new SoftMadAgent(ctx, g, opts.mgmtClass, opts.classVersion, onMad);
  g.agents.add(agent);
  return agent;
}
