import { copyBytes } from './copy.js';
import { encodeHeaders, finishPacket, newParsedPacket } from '../packet/packet.js';
import type { Peer, UdpWire } from './wire.js';

/**
 * Builds and sends packets for one QP. `h` is filled in field by field and
 * reused for every packet; begin() encodes it into a recycled datagram
 * buffer, the caller writes the payload at `hdrLen`, and end() pads, adds the
 * ICRC (unless it goes through a shared-memory ring) and sends. Nothing on
 * this path allocates.
 */
export class Tx {
  readonly h = newParsedPacket();
  buf: Buffer = Buffer.alloc(0);
  hdrLen = 0;

  constructor(private readonly wire: UdpWire) {
    this.h.pkey = 0xffff;
    this.h.tver = 0;
  }

  begin(): Buffer {
    this.buf = this.wire.acquire();
    this.hdrLen = encodeHeaders(this.buf, 0, this.h);
    return this.buf;
  }

  end(peer: Peer, payLen: number): void {
    const len = finishPacket(this.buf, this.hdrLen, payLen, this.wire.icrcFor(peer));
    this.wire.send(this.buf, len, peer);
  }

  /** A packet whose payload is one contiguous range of `src` (or none). */
  sendBytes(peer: Peer, src: Uint8Array | undefined, srcOff: number, payLen: number): void {
    this.begin();
    if (payLen > 0 && src) copyBytes(this.buf, this.hdrLen, src, srcOff, payLen);
    this.end(peer, payLen);
  }
}
