// One-sided communication's control messages: header-only messages of type
// RMA on the window's context, in the header's own words (header.ts):
//
//   word 0  RMA | kind << 8
//   word 1  the window's context id
//   word 2  origin's rank in the window's communicator
//   word 3  element type (index in ARRAY_CLASSES) | operation << 8 (index in RMA_OPS) | lock type << 16
//   word 4  bytes the operation covers at the target
//   word 6  target byte offset, low 32 bits
//   word 7  target byte offset, high 21 bits
//
// A Put's or an Accumulate's data follows as an ordinary message (eager or
// rendezvous, as its size decides) with tag DATA; the target posts the
// receive for it when the control message arrives, which is first: each
// pair of ranks is an ordered channel. Replies (a Get's data, the old
// values of Get_accumulate, Fetch_and_op and Compare_and_swap) come back
// with tag REPLY, in the order the origin issued them.
import { HDR_WORDS, MsgType, W_ADDR_HI, W_ADDR_LO, W_CTX, W_LEN, W_SRC, W_TAG, W_TYPE } from '../protocol/header.js';

export const enum RmaKind {
  PUT = 1,
  GET = 2,
  ACC = 3,
  /** Get_accumulate and Fetch_and_op: the old values come back, then the operation applies. */
  GET_ACC = 4,
  /** Compare_and_swap: the data is (compare, value); the old value comes back. */
  CAS = 5,
  LOCK = 6,
  LOCK_GRANTED = 7,
  UNLOCK = 8,
  UNLOCK_DONE = 9,
  /** Every operation this origin sent before it has completed at the target: answer FLUSH_DONE. */
  FLUSH = 10,
  FLUSH_DONE = 11,
  /** General active target: the target opened an exposure epoch to this origin (Win.Post). */
  POST = 12,
  /** The origin's access epoch on this target is over (Win.Complete), after everything it sent before. */
  COMPLETE = 13,
}

export const DATA_TAG = 0;
export const REPLY_TAG = 1;

export const enum LockType {
  EXCLUSIVE = 1,
  SHARED = 2,
}

/** A decoded control message. */
export interface RmaControl {
  kind: RmaKind;
  origin: number;
  dtype: number;
  op: number;
  lock: number;
  len: number;
  offset: number;
}

export function writeControl(h: Int32Array, ctx: number, origin: number, kind: RmaKind, len = 0, offset = 0, dtype = 0, op = 0, lock = 0): Int32Array {
  h.fill(0, 0, HDR_WORDS);
  h[W_TYPE] = MsgType.RMA | (kind << 8);
  h[W_CTX] = ctx;
  h[W_SRC] = origin;
  h[W_TAG] = dtype | (op << 8) | (lock << 16);
  h[W_LEN] = len;
  h[W_ADDR_LO] = offset % 0x1_0000_0000;
  h[W_ADDR_HI] = Math.floor(offset / 0x1_0000_0000);
  return h;
}

export function readControl(words: Int32Array, w: number, out: RmaControl): RmaControl {
  out.kind = (words[w + W_TYPE]! >>> 8) & 0xff;
  out.origin = words[w + W_SRC]!;
  const t = words[w + W_TAG]!;
  out.dtype = t & 0xff;
  out.op = (t >>> 8) & 0xff;
  out.lock = (t >>> 16) & 0xff;
  out.len = words[w + W_LEN]! >>> 0;
  out.offset = (words[w + W_ADDR_HI]! >>> 0) * 0x1_0000_0000 + (words[w + W_ADDR_LO]! >>> 0);
  return out;
}
