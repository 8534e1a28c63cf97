import { ResourceClosedError } from '../errors.js';
import type { AhAttr, HcaAh } from '../provider.js';
import { ipFromGid } from './gid.js';
import type { Peer, UdpWire } from './wire.js';
import { ROCE_PORT } from './wire.js';

/** An address handle: the destination resolved once to a wire peer. */
export class SoftAh implements HcaAh {
  readonly attr: Readonly<AhAttr>;
  readonly peer: Peer;
  closed = false;

  constructor(wire: UdpWire, attr: AhAttr) {
    this.attr = { ...attr, dgid: Uint8Array.from(attr.dgid) };
    this.peer = resolvePeer(wire, attr);
  }

  destroy(): void {
    if (this.closed) throw new ResourceClosedError('AH');
    this.closed = true;
  }
}

export function resolvePeer(wire: UdpWire, attr: AhAttr): Peer {
  return wire.peer(ipFromGid(attr.dgid), attr.udpPort ?? ROCE_PORT);
}
