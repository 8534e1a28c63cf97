// The two queues of MPI matching, per context: receives posted before their
// message (searched when a message arrives) and messages that arrived before
// their receive (searched when a receive is posted). Both are kept in
// arrival order, which is what makes MPI's non-overtaking rule hold: the
// transports deliver each peer's messages in the order they were sent.
import { ANY_SOURCE, ANY_TAG } from '../constants.js';
import type { Request } from '../request.js';

export interface PostedRecv {
  source: number;
  tag: number;
  /** Typed-array bytes to receive into, or undefined for an object receive. */
  buf: Uint8Array | undefined;
  req: Request<unknown>;
}

export interface Unexpected {
  source: number;
  tag: number;
  /** World rank of the sender (where FIN goes). */
  peer: number;
  type: number;
  flags: number;
  length: number;
  /** EAGER: a copy of the payload. */
  data: Uint8Array | undefined;
  /** RTS, and a synchronous EAGER (its FIN answers the match): the sender's request id; RTS: address and key. */
  id: number;
  addrLo: number;
  addrHi: number;
  key: number;
}

export function matches(wantSource: number, wantTag: number, source: number, tag: number): boolean {
  return (wantSource === ANY_SOURCE || wantSource === source) && (wantTag === ANY_TAG || wantTag === tag);
}

export class MatchQueues {
  readonly posted: PostedRecv[] = [];
  readonly unexpected: Unexpected[] = [];

  takePosted(source: number, tag: number): PostedRecv | undefined {
    const q = this.posted;
    for (let i = 0; i < q.length; i++) {
      const p = q[i]!;
      if (matches(p.source, p.tag, source, tag)) {
        if (i === 0) q.shift();
        else q.splice(i, 1);
        return p;
      }
    }
    return undefined;
  }

  findUnexpected(source: number, tag: number): number {
    const q = this.unexpected;
    for (let i = 0; i < q.length; i++) {
      const u = q[i]!;
      if (matches(source, tag, u.source, u.tag)) return i;
    }
    return -1;
  }

  takeUnexpected(i: number): Unexpected {
    return i === 0 ? this.unexpected.shift()! : this.unexpected.splice(i, 1)[0]!;
  }
}
