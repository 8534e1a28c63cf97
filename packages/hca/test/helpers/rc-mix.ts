// Random batches of everything an RC QP does, with a model of the
// responder's memory that says what each READ and atomic must return and
// what the memory must hold afterwards (soft-rc-mixed.test.ts).
//
// Responder memory: SLOTS slots of SLOT bytes that WRITEs and READs use,
// then COUNTER_COUNT 8-byte atomic counters. Requester memory: WRITE and SEND
// sources in [0, SRC_BYTES) (never changed), READ and atomic results in
// [DEST_AT, DEST_AT + DEST_BYTES).
import { SendFlags, WrOpcode } from '../../src/enums.js';
import type { SendWr } from '../../src/provider.js';
import { mulberry32 } from '../../src/soft/faults.js';

export const MiB = 1 << 20;
const KiB = 1 << 10;
const SLOT = 256 * KiB;
const SLOTS = 12;
const COUNTERS = SLOTS * SLOT;
const COUNTER_COUNT = 64;
/** Responder bytes the model covers: the slots and the counters. */
export const MODEL_BYTES = COUNTERS + 8 * COUNTER_COUNT;
const SRC_BYTES = MiB;
const DEST_AT = MiB;
const DEST_BYTES = 3 * MiB;
/** Requester memory the mix needs. */
export const LOCAL_BYTES = DEST_AT + DEST_BYTES;

/** A length that lands on every path: tiny, around an MTU, around the 64 KiB by-reference/direct size, large. */
function pickLength(r: () => number, max: number): number {
  const kinds = [1 + Math.floor(r() * 64), 4096 + Math.floor(r() * 9) - 4, 64 * KiB + Math.floor(r() * 17) - 8, Math.floor(r() * max)];
  return Math.max(1, Math.min(max, kinds[Math.floor(r() * kinds.length)]!));
}

export interface Region {
  addr: number;
  key: number;
}

/** What a READ or atomic of the batch must have left at `at` in requester memory. */
export interface Expected {
  kind: 'read' | 'atomic';
  at: number;
  bytes: Uint8Array;
}

export interface Batch {
  wrs: SendWr[];
  expected: Expected[];
  /** The SENDs, in order: payload length and where in requester memory it came from. */
  sends: { len: number; from: number }[];
  /** wrIds that complete, in order. */
  signaled: number[];
}

export class RcMix {
  readonly r: () => number;
  /** What the responder's [0, MODEL_BYTES) must hold, kept in step with every request in posting order. */
  readonly model: Uint8Array;
  private readonly view: DataView;
  private wrId = 0;

  /**
   * `local`: requester memory of LOCAL_BYTES (its first MiB is filled here);
   * `remote`: the responder's MR, whose first MODEL_BYTES hold `initial`;
   * `ro`: an MR of the responder that only remote reads may touch, and its bytes.
   */
  constructor(
    seed: number,
    private readonly local: Region & { buf: Uint8Array },
    private readonly remote: Region,
    initial: Uint8Array,
    private readonly ro?: Region & { buf: Uint8Array },
    private readonly maxSend = 4096,
  ) {
    this.r = mulberry32(seed);
    for (let i = 0; i < SRC_BYTES; i++) local.buf[i] = Math.floor(this.r() * 256);
    this.model = Uint8Array.from(initial.subarray(0, MODEL_BYTES));
    this.view = new DataView(this.model.buffer);
  }

  /** One batch of 1-8 requests; at most `sendsAllowed` SENDs (the responder's posted receives). */
  batch(sendsAllowed: number): Batch {
    const r = this.r;
    const { local, remote, ro, model } = this;
    const wrs: SendWr[] = [];
    const expected: Expected[] = [];
    const sends: Batch['sends'] = [];
    const readSlots = new Set<number>();
    let dest = DEST_AT;
    const room = () => DEST_AT + DEST_BYTES - dest;
    const n = 1 + Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      const pick = r();
      const flags = k === n - 1 || r() < 0.7 ? SendFlags.SIGNALED : 0;
      if (pick < 0.2) {
        if (sends.length >= sendsAllowed) continue;
        const len = Math.floor(r() * (this.maxSend + 1));
        const from = Math.floor(r() * (SRC_BYTES - len));
        const inline = len <= 64 && r() < 0.5;
        wrs.push({ wrId: this.wrId++, opcode: WrOpcode.SEND, sendFlags: flags | (inline ? SendFlags.INLINE : 0), sgList: len ? [{ addr: local.addr + from, length: len, lkey: local.key }] : [] });
        sends.push({ len, from });
      } else if (pick < 0.45) {
        // A WRITE into one slot; never one that a READ earlier in this batch covers (only a fence would order those).
        const slot = Math.floor(r() * SLOTS);
        if (readSlots.has(slot)) continue;
        const len = pickLength(r, SLOT);
        const off = slot * SLOT + Math.floor(r() * (SLOT - len + 1));
        const from = Math.floor(r() * (SRC_BYTES - len));
        wrs.push({ wrId: this.wrId++, opcode: WrOpcode.RDMA_WRITE, sendFlags: flags, sgList: [{ addr: local.addr + from, length: len, lkey: local.key }], rdma: { remoteAddr: remote.addr + off, rkey: remote.key } });
        model.set(local.buf.subarray(from, from + len), off);
      } else if (pick < 0.7 || (pick < 0.85 && !ro)) {
        // A READ of the slots, up to 1.5 MiB across several: it must see the WRITEs before it.
        if (room() <= 0) continue;
        const len = pickLength(r, Math.min(1.5 * MiB, room()));
        const off = Math.floor(r() * (SLOTS * SLOT - len + 1));
        for (let s = Math.floor(off / SLOT); s <= Math.floor((off + len - 1) / SLOT); s++) readSlots.add(s);
        wrs.push({ wrId: this.wrId++, opcode: WrOpcode.RDMA_READ, sendFlags: flags, sgList: [{ addr: local.addr + dest, length: len, lkey: local.key }], rdma: { remoteAddr: remote.addr + off, rkey: remote.key } });
        expected.push({ kind: 'read', at: dest, bytes: model.slice(off, off + len) });
        dest += (len + 7) & ~7;
      } else if (pick < 0.85 && ro) {
        // A READ of memory only remote reads may touch (a direct READ may pass what is outstanding).
        if (room() <= 0) continue;
        const len = pickLength(r, Math.min(ro.buf.length, room()));
        const off = Math.floor(r() * (ro.buf.length - len + 1));
        wrs.push({ wrId: this.wrId++, opcode: WrOpcode.RDMA_READ, sendFlags: flags, sgList: [{ addr: local.addr + dest, length: len, lkey: local.key }], rdma: { remoteAddr: ro.addr + off, rkey: ro.key } });
        expected.push({ kind: 'read', at: dest, bytes: ro.buf.slice(off, off + len) });
        dest += (len + 7) & ~7;
      } else {
        if (room() < 8) continue;
        const at = COUNTERS + 8 * Math.floor(r() * COUNTER_COUNT);
        const old = this.view.getBigUint64(at, true);
        const value = BigInt(Math.floor(r() * 1000));
        const sge = [{ addr: local.addr + dest, length: 8, lkey: local.key }];
        expected.push({ kind: 'atomic', at: dest, bytes: model.slice(at, at + 8) });
        if (r() < 0.5) {
          const compare = r() < 0.5 ? old : old + 1n;
          wrs.push({ wrId: this.wrId++, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: flags, sgList: sge, atomic: { remoteAddr: remote.addr + at, rkey: remote.key, compareAdd: compare, swap: value } });
          if (compare === old) this.view.setBigUint64(at, value, true);
        } else {
          wrs.push({ wrId: this.wrId++, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: flags, sgList: sge, atomic: { remoteAddr: remote.addr + at, rkey: remote.key, compareAdd: value } });
          this.view.setBigUint64(at, BigInt.asUintN(64, old + value), true);
        }
        dest += 8;
      }
    }
    if (wrs.length > 0) wrs[wrs.length - 1]!.sendFlags = (wrs[wrs.length - 1]!.sendFlags ?? 0) | SendFlags.SIGNALED;
    const signaled = wrs.filter((w) => (w.sendFlags ?? 0) & SendFlags.SIGNALED).map((w) => w.wrId);
    return { wrs, expected, sends, signaled };
  }

  /** The first expectation of the batch that requester memory does not meet, or undefined. */
  check(b: Batch): Expected | undefined {
    const buf = this.local.buf;
    return b.expected.find((e) => !Buffer.from(buf.buffer, buf.byteOffset + e.at, e.bytes.length).equals(Buffer.from(e.bytes)));
  }
}
