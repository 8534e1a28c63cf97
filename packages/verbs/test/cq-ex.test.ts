// The extended CQ over the soft HCA: start/next/end polling with the
// ibv_wc_read_* accessors, completion timestamps, and a CqEx still being a CQ.
import { afterEach, describe, expect, it } from 'vitest';
import {
  Access,
  CQ,
  InvalidArgumentError,
  SendFlags,
  WC_STANDARD_FLAGS,
  WcExFlags,
  WcFlags,
  WcOpcode,
  WcStatus,
  WrOpcode,
  createCqEx,
  regMr,
  type CqEx,
} from '../src/index.js';
import { connectRc, endpoint, rcQp } from './soft-pair.js';

const SIG = SendFlags.SIGNALED;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

/** Two connected QPs whose CQs are extended ones created with `wcFlags`. */
async function pair(wcFlags?: number) {
  const a = await endpoint(cleanup, undefined, 'verbs_cqex');
  const b = await endpoint(cleanup, undefined, 'verbs_cqex');
  const acq = createCqEx(a.ctx, { cqe: 64, wcFlags });
  const bcq = createCqEx(b.ctx, { cqe: 64, wcFlags });
  const qa = rcQp(a.pd, acq);
  const qb = rcQp(b.pd, bcq);
  connectRc(qa, b.ctx, qb);
  connectRc(qb, a.ctx, qa);
  return { a, b, acq, bcq, qa, qb };
}

/** Polls until a completion is current (the soft HCA completes asynchronously), bounded. */
async function start(cq: CqEx): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cq.startPoll()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error('no completion within 2 s');
}

/** nextPoll, waiting (bounded) until the next completion exists. */
async function advance(cq: CqEx): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cq.nextPoll()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error('no further completion within 2 s');
}

describe('createCqEx', () => {
  it('polls with startPoll / nextPoll / endPoll and reads each field of the current completion', async () => {
    const { a, b, acq, bcq, qa, qb } = await pair();
    expect(acq).toBeInstanceOf(CQ);
    expect(acq.wcFlags).toBe(WC_STANDARD_FLAGS);
    expect(acq.startPoll()).toBe(false);
    qb.postRecv({ wrId: 50, sgList: [b.mr.sge(0, 64)] });
    qa.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 100)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } },
      { wrId: 2, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [a.mr.sge(4096, 300)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } },
      { wrId: 3, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xabcd, sendFlags: SIG, sgList: [a.mr.sge(0, 40)] },
    ]);
    // One batch: start, then next for each further completion (waiting for the soft HCA to make them).
    const got: [number, number, number, number][] = [];
    await start(acq);
    for (;;) {
      got.push([acq.wrId, acq.status, acq.readOpcode(), acq.readByteLen()]);
      expect(acq.readQpNum()).toBe(qa.qpNum);
      if (got.length === 3) break;
      await advance(acq);
    }
    expect(acq.nextPoll()).toBe(false);
    acq.endPoll();
    expect(got).toEqual([
      [1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE, 0],
      [2, WcStatus.SUCCESS, WcOpcode.RDMA_READ, 300],
      [3, WcStatus.SUCCESS, WcOpcode.SEND, 0],
    ]);

    await start(bcq);
    // RC names the sending QP in srcQp, as rxe does.
    expect([bcq.wrId, bcq.readOpcode(), bcq.readByteLen(), bcq.readImmData(), bcq.readSrcQp(), bcq.readSl(), bcq.readSlid(), bcq.readDlidPathBits()]).toEqual([50, WcOpcode.RECV, 40, 0xabcd, qa.qpNum, 0, 0, 0]);
    expect(bcq.readWcFlags() & WcFlags.WITH_IMM).toBe(WcFlags.WITH_IMM);
    expect(bcq.readVendorErr()).toBe(0);
    bcq.endPoll();
  });

  it('endPoll after the first completion leaves the rest queued; misuse throws', async () => {
    const { a, b, acq, qa } = await pair();
    expect(() => acq.endPoll()).toThrow(InvalidArgumentError);
    expect(() => acq.nextPoll()).toThrow(/no poll is under way/);
    expect(() => acq.wrId).toThrow(InvalidArgumentError);
    for (let i = 0; i < 3; i++) qa.postSend({ wrId: 10 + i, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 8)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } });
    await start(acq);
    expect(() => acq.startPoll()).toThrow(/under way/);
    expect(acq.wrId).toBe(10);
    acq.endPoll();
    // A CqEx is a CQ: the other two come out of next().
    expect((await acq.next()).wrId).toBe(11);
    expect((await acq.next()).wrId).toBe(12);
    // Fields left out of wcFlags cannot be read.
    expect(() => acq.readCompletionTs()).toThrow(/without that field/);
    expect(() => createCqEx(a.ctx, { cqe: 4, wcFlags: 1 << 9 })).toThrow(/unknown wcFlags/);
    expect(() => createCqEx(a.ctx, { cqe: 0 })).toThrow(InvalidArgumentError);
  });

  it('stamps completions with the time the HCA generated them, in ns, and as wallclock', async () => {
    const { a, b, acq, qa } = await pair(WC_STANDARD_FLAGS | WcExFlags.WITH_COMPLETION_TIMESTAMP | WcExFlags.WITH_COMPLETION_TIMESTAMP_WALLCLOCK);
    const before = performance.now() * 1e6;
    const wallBefore = BigInt(Date.now()) * 1_000_000n;
    for (let i = 0; i < 4; i++) qa.postSend({ wrId: i, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 8)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } });
    const stamps: number[] = [];
    const wall: bigint[] = [];
    while (stamps.length < 4) {
      await start(acq);
      do {
        stamps.push(acq.readCompletionTs());
        wall.push(acq.readCompletionWallclockNs());
      } while (acq.nextPoll());
      acq.endPoll();
    }
    const after = performance.now() * 1e6;
    // The clock the stamps count in, as C code reads it to turn them into ns.
    const ex = a.ctx.queryDeviceEx();
    expect([ex.hcaCoreClock, ex.completionTimestampMask, ex.origAttr.maxCqe]).toEqual([1_000_000, (1n << 53n) - 1n, a.ctx.queryDevice().maxCqe]);
    for (const t of stamps) {
      expect(t).toBeGreaterThanOrEqual(Math.floor(before));
      expect(t).toBeLessThanOrEqual(Math.ceil(after));
    }
    expect([...stamps].sort((x, y) => x - y)).toEqual(stamps);
    // Wallclock: within a second of the system clock read around it.
    for (const w of wall) {
      expect(w > wallBefore - 1_000_000_000n).toBe(true);
      expect(w < BigInt(Date.now()) * 1_000_000n + 1_000_000_000n).toBe(true);
    }
    // A plain CQ's completions carry no stamp.
    const plain = a.ctx.createCq(4);
    expect(plain).not.toHaveProperty('startPoll');
    plain.destroy();
    // Nor do those of a CqEx created without the flag (the provider is not asked to stamp).
    const { acq: unstamped, qa: q2, a: a2, b: b2 } = await pair();
    q2.postSend({ wrId: 9, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a2.mr.sge(0, 8)], rdma: { remoteAddr: b2.mr.addr, rkey: b2.mr.rkey } });
    expect((await unstamped.next()).completionTs).toBe(0);
  });

  it('works with a completion channel and reqNotify like any CQ', async () => {
    const a = await endpoint(cleanup, undefined, 'verbs_cqex');
    const b = await endpoint(cleanup, undefined, 'verbs_cqex');
    const channel = a.ctx.createCompChannel();
    const cq = createCqEx(a.ctx, { cqe: 16, channel, wcFlags: WcExFlags.WITH_BYTE_LEN | WcExFlags.WITH_COMPLETION_TIMESTAMP });
    const qa = rcQp(a.pd, cq);
    connectRc(qa, b.ctx, b.qp);
    connectRc(b.qp, a.ctx, qa);
    const mr = regMr(a.pd, 64, Access.LOCAL_WRITE);
    cq.reqNotify();
    qa.postSend({ wrId: 77, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [mr.sge(0, 16)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } });
    const ev = await channel.getCqEvent();
    expect(ev).toBe(cq);
    cq.ackEvents(1);
    expect(cq.startPoll()).toBe(true);
    expect([cq.wrId, cq.readCompletionTs() > 0]).toEqual([77, true]);
    expect(() => cq.readQpNum()).toThrow(/without that field/);
    cq.endPoll();
    qa.destroy();
    mr.dereg();
    cq.destroy();
    channel.destroy();
  });
});
