// The receiving half of the rendezvous protocol: once an RTS has matched a
// receive, the payload is pulled with the transport's one-sided copy (RDMA
// READ, process_vm_readv) straight into the receive's array, then FIN tells
// the sender its buffer is free. A receive too small for the message still
// sends FIN (the sender completes; the receive fails with TruncateError).
import { deserialize } from 'node:v8';
import { TruncateError } from '../errors.js';
import type { PostedRecv } from '../p2p/match.js';
import type { Endpoint } from '../transport/transport.js';
import { MsgFlag, MsgType, W_ID, W_TYPE } from './header.js';

export interface Rts {
  source: number;
  tag: number;
  flags: number;
  length: number;
  /** The sender's request id, echoed in FIN. */
  id: number;
  lo: number;
  hi: number;
  key: number;
}

export function sendFin(ep: Endpoint, scratch: Int32Array, id: number): void {
  scratch.fill(0);
  scratch[W_TYPE] = MsgType.FIN;
  scratch[W_ID] = id;
  ep.send(scratch, undefined);
}

/**
 * Pulls the message into the posted receive; `onTransportError` hears of a
 * failed pull, `onEnd` of every pull that ended (after its FIN).
 */
export function pullRendezvous(posted: PostedRecv, ep: Endpoint, rts: Rts, scratch: Int32Array, onTransportError: (err: Error) => void, onEnd: () => void): void {
  const { req, buf } = posted;
  const { source, tag, flags, length, id } = rts;
  req.status.source = source;
  req.status.tag = tag;
  req.status.byteCount = length;
  if (buf && length > buf.length) {
    onEnd();
    sendFin(ep, scratch, id);
    req.complete(undefined, new TruncateError(length, buf.length, source, tag));
    return;
  }
  const dst = buf ? buf.subarray(0, length) : new Uint8Array(length);
  ep.fetch(dst, rts.lo, rts.hi, rts.key, (err) => {
    onEnd();
    if (err) {
      onTransportError(err);
      req.complete(undefined, err);
      return;
    }
    sendFin(ep, scratch, id);
    if (buf) {
      req.complete(req.status);
      return;
    }
    try {
      req.complete(flags & MsgFlag.OBJECT ? deserialize(dst) : dst);
    } catch (e) {
      req.complete(undefined, e as Error);
    }
  });
}
