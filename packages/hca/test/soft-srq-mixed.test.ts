import { afterEach, describe, expect, it } from 'vitest';
import { QpType, SendFlags, WcFlags, WrOpcode, wcStatusName } from '../src/enums.js';
import type { HcaQp, HcaSrq, WorkCompletion } from '../src/provider.js';
import { newWorkCompletion } from '../src/provider.js';
import { mulberry32 } from '../src/soft/faults.js';
import { close, completions, connect, side, type Side } from './helpers/pair.js';

// Several requesters SEND at random to QPs of one device that share a
// receive queue (SRQ) and a completion queue; the receive queue is refilled
// late at random, so senders meet RNR NAKs and retry. Each requester's
// messages must arrive whole, in its own order, on its own QP.

const SENDERS = 3;
const SLOT = 8192;
const SLOTS = 96;

let live: Side[] = [];
afterEach(() => {
  close(...live);
  live = [];
});

async function run(seed: number, messages: number): Promise<{ rnrRetries: number }> {
  const r = mulberry32(seed);
  const b = await side({ size: SLOTS * SLOT });
  live.push(b);
  const srq: HcaSrq = b.pd.createSrq({ maxWr: SLOTS, maxSge: 1, srqLimit: 0 });
  b.qp.destroy();
  const senders: { s: Side; qp: HcaQp; next: number; want: number[] }[] = [];
  for (let i = 0; i < SENDERS; i++) {
    const s = await side({ size: 1 << 20, rnrRetry: 7 });
    live.push(s);
    for (let k = 0; k < s.mr.buf.length; k++) s.mr.buf[k] = Math.floor(r() * 256);
    // A QP of b's on the shared queue, connected to this sender.
    const qp = b.pd.createQp({ qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, srq, cap: { maxSendWr: 16, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 0, maxInlineData: 0 } });
    b.qp = qp;
    connect(s, b, { rnrRetry: 7, minRnrTimer: 1 });
    senders.push({ s, qp, next: 0, want: [] });
  }
  const free: number[] = Array.from({ length: SLOTS }, (_, i) => i);
  const post = (n: number) => {
    for (let i = 0; i < n && free.length > 0; i++) {
      const slot = free.shift()!;
      srq.postRecv([{ wrId: slot, sgList: [{ addr: b.mr.addr + slot * SLOT, length: SLOT, lkey: b.mr.lkey }] }]);
    }
  };
  post(8);

  // Each message: SEND_WITH_IMM of 0..SLOT bytes from a random place, immediate = sender << 16 | sequence.
  const sent = new Map<number, { from: number; len: number }>();
  let total = 0;
  const byQpn = new Map(senders.map((x, i) => [x.qp.qpNum, i]));
  const got = senders.map(() => 0);
  const wcs = Array.from({ length: 32 }, newWorkCompletion);
  const deadline = Date.now() + 60_000;
  while (got.reduce((a, n) => a + n, 0) < messages) {
    if (Date.now() > deadline) throw new Error(`seed ${seed}: ${got.join('/')} of ${messages} after 60 s`);
    // Post a few at random.
    while (total < messages && r() < 0.6) {
      const i = Math.floor(r() * SENDERS);
      const x = senders[i]!;
      const len = r() < 0.3 ? Math.floor(r() * 64) : Math.floor(r() * (SLOT + 1));
      const from = Math.floor(r() * (x.s.mr.buf.length - len));
      const imm = (i << 16) | x.next;
      sent.set(imm, { from, len });
      x.next++;
      total++;
      x.s.qp.postSend([{ wrId: imm, opcode: WrOpcode.SEND_WITH_IMM, immData: imm, sendFlags: SendFlags.SIGNALED, sgList: len ? [{ addr: x.s.mr.addr + from, length: len, lkey: x.s.mr.lkey }] : [] }]);
    }
    // The receive side takes what has arrived; the queue is refilled late, at random.
    const n = b.cq.poll(32, wcs);
    for (let k = 0; k < n; k++) {
      const w: WorkCompletion = wcs[k]!;
      expect(wcStatusName(w.status), `seed ${seed}`).toBe('SUCCESS');
      expect(w.wcFlags & WcFlags.WITH_IMM).toBeTruthy();
      const i = byQpn.get(w.qpNum)!;
      const imm = w.immData;
      // Its own QP, in its own order.
      expect([imm >>> 16, imm & 0xffff], `seed ${seed}: on QP of sender ${i}`).toEqual([i, got[i]]);
      got[i]!++;
      const m = sent.get(imm)!;
      expect(w.byteLen).toBe(m.len);
      const src = senders[i]!.s.mr.buf;
      expect(Buffer.from(b.mr.buf.subarray(w.wrId * SLOT, w.wrId * SLOT + m.len)).equals(Buffer.from(src.subarray(m.from, m.from + m.len))), `seed ${seed}: message ${imm.toString(16)}`).toBe(true);
      free.push(w.wrId);
    }
    if (r() < 0.25) post(1 + Math.floor(r() * 6));
    await new Promise((res) => setTimeout(res, r() < 0.2 ? 2 : 0));
  }
  expect(got).toEqual(senders.map((x) => x.next));
  // Every SEND completes at its sender, successfully and in order (the last ACKs may still be on the way).
  for (const x of senders) {
    const done = await completions(x.s, x.next, 30_000);
    expect(done.map((w) => [w.wrId & 0xffff, wcStatusName(w.status)]), `seed ${seed}: sender's completions`).toEqual(Array.from({ length: x.next }, (_, k) => [k, 'SUCCESS']));
  }
  return { rnrRetries: senders.reduce((a, x) => a + x.s.dev.counters.rxRnrNaks, 0) };
}

describe('soft HCA SRQ: random SENDs from several requesters to one shared receive queue, refilled late', () => {
  it.each([1, 2, 3])('seed %i', async (seed) => {
    const got = await run(seed, 600);
    // The late refills must have made senders wait, or RNR was not tested.
    expect(got.rnrRetries).toBeGreaterThan(0);
  });
});
