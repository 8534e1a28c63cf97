// The receiving half of the eager protocol: the whole message came with its
// header (from a ring slot or a bounce buffer, valid only now), so it is
// copied straight into the posted receive's array, or deserialized for an
// object receive.
import { deserialize } from 'node:v8';
import { TruncateError } from '../errors.js';
import type { PostedRecv } from '../p2p/match.js';
import { MsgFlag } from './header.js';

/** Below this, a byte loop beats making a subarray view for set(). */
const SMALL = 64;

/** The message is bytes[p, p + length). */
export function deliverEager(posted: PostedRecv, source: number, tag: number, flags: number, bytes: Uint8Array, p: number, length: number): void {
  const { req, buf } = posted;
  req.status.source = source;
  req.status.tag = tag;
  req.status.byteCount = length;
  if (buf && length <= SMALL && length <= buf.length) {
    for (let i = 0; i < length; i++) buf[i] = bytes[p + i]!;
    req.complete(req.status);
    return;
  }
  const data = bytes.subarray(p, p + length);
  if (!buf) {
    let value: unknown;
    try {
      value = flags & MsgFlag.OBJECT ? deserialize(data) : data.slice();
    } catch (err) {
      req.complete(undefined, err as Error);
      return;
    }
    req.complete(value);
    return;
  }
  if (data.length > buf.length) {
    req.complete(undefined, new TruncateError(data.length, buf.length, source, tag));
    return;
  }
  buf.set(data);
  req.complete(req.status);
}
