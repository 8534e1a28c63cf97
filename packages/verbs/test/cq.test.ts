import { beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  ResourceClosedError,
  WcOpcode,
  WcStatus,
  WorkCompletionError,
  wcOpcodeName,
  type CQ,
  type Context,
  type WorkCompletion,
} from '../src/index.js';
import { kHandle } from '../src/internal.js';
import type { CqDouble } from './provider-double.js';
import { openDouble, tick } from './helpers.js';

let ctx: Context;
let cq: CQ;
let hcq: CqDouble;

beforeEach(async () => {
  ({ ctx } = await openDouble());
  cq = ctx.createCq(256);
  hcq = cq[kHandle] as CqDouble;
});

function pushN(n: number, from = 0): void {
  for (let i = 0; i < n; i++) hcq.push({ wrId: from + i, opcode: WcOpcode.RECV, byteLen: 10 + i });
}

describe('createCq', () => {
  it('checks the size against the device', () => {
    expect(() => ctx.createCq(0)).toThrow(InvalidArgumentError);
    expect(() => ctx.createCq(1.5)).toThrow(InvalidArgumentError);
    expect(() => ctx.createCq(1025)).toThrow(/maxCqe 1024/);
    expect(ctx.createCq(1024).cqe).toBe(1024);
  });
});

describe('poll', () => {
  it('returns one shared empty array when nothing is there', () => {
    const a = cq.poll(8);
    expect(a).toHaveLength(0);
    expect(cq.poll(8)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it('fills reused objects and returns a reused array sized to the count', () => {
    pushN(3);
    const first = cq.poll(4);
    expect(first.map((wc) => wc.wrId)).toEqual([0, 1, 2]);
    const objects = [...first];
    pushN(3, 10);
    const second = cq.poll(4);
    expect(second).toBe(first);
    expect(second.map((wc) => wc.wrId)).toEqual([10, 11, 12]);
    second.forEach((wc, i) => expect(wc).toBe(objects[i]));

    pushN(1, 20);
    const one = cq.poll(4);
    expect(one).toHaveLength(1);
    expect(one[0]).toBe(objects[0]);
    expect(one[0]!.byteLen).toBe(10);
  });

  it('polls at most n and leaves the rest', () => {
    pushN(5);
    expect(cq.poll(2).map((wc) => wc.wrId)).toEqual([0, 1]);
    expect(cq.poll().map((wc) => wc.wrId)).toEqual([2]);
    expect(cq.poll(10).map((wc) => wc.wrId)).toEqual([3, 4]);
  });

  it('handles large batches with one shared array', () => {
    pushN(100);
    const big = cq.poll(100);
    expect(big).toHaveLength(100);
    expect(big[99]!.wrId).toBe(99);
    pushN(70, 200);
    const again = cq.poll(100);
    expect(again).toBe(big);
    expect(again).toHaveLength(70);
    expect(again[69]!.wrId).toBe(269);
    pushN(90, 300);
    expect(cq.poll(100).map((wc) => wc.wrId)).toEqual(Array.from({ length: 90 }, (_, i) => 300 + i));
  });

  it('takes any n, however far beyond what the CQ holds, as ibv_poll_cq does', () => {
    pushN(3);
    expect(cq.poll(2 ** 31).map((wc) => wc.wrId)).toEqual([0, 1, 2]);
    expect(cq.poll(Number.MAX_SAFE_INTEGER)).toHaveLength(0);
  });

  it('refuses a bad count', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) expect(() => cq.poll(n), String(n)).toThrow(InvalidArgumentError);
  });

  it('arms through reqNotify', () => {
    cq.reqNotify();
    expect(hcq.armed).toBe(true);
  });
});

describe('next', () => {
  it('resolves at once with a copy when a completion is queued', async () => {
    pushN(1, 7);
    const wc = await cq.next();
    expect(wc.wrId).toBe(7);
    pushN(1, 8);
    cq.poll();
    expect(wc.wrId).toBe(7);
  });

  it('does not disturb what poll returned', async () => {
    pushN(2);
    const polled = cq.poll(1);
    await cq.next();
    expect(polled[0]!.wrId).toBe(0);
  });

  it('waits for the notification instead of polling in a loop', async () => {
    const p = cq.next();
    let done = false;
    void p.then(() => (done = true));
    for (let i = 0; i < 5; i++) await tick();
    expect(done).toBe(false);
    expect(hcq.pollCalls).toBe(2);
    expect(hcq.armed).toBe(true);
    pushN(1, 42);
    expect((await p).wrId).toBe(42);
  });

  it('catches a completion that lands between the poll and the arm', async () => {
    const arm = hcq.reqNotify.bind(hcq);
    hcq.reqNotify = () => {
      // Queued before the arm takes effect, so hardware would never notify for it.
      hcq.push({ wrId: 5 });
      arm();
    };
    const wc = await cq.next();
    expect(wc.wrId).toBe(5);
  });

  it('serves concurrent waiters one completion each', async () => {
    const a = cq.next();
    const b = cq.next();
    await tick();
    pushN(1, 1);
    await tick();
    pushN(1, 2);
    const got = [(await a).wrId, (await b).wrId].sort();
    expect(got).toEqual([1, 2]);
  });

  it('rejects with WorkCompletionError on request', async () => {
    hcq.push({ wrId: 9, status: WcStatus.REM_ACCESS_ERR, opcode: WcOpcode.RDMA_WRITE });
    const err = (await cq.next({ throwOnError: true }).catch((e: unknown) => e)) as WorkCompletionError;
    expect(err).toBeInstanceOf(WorkCompletionError);
    expect(err.code).toBe('ERR_IBAL_WC_REM_ACCESS_ERR');
    expect(err.wrId).toBe(9);
    expect(err.message).toBe('RDMA_WRITE work request 9 completed with REM_ACCESS_ERR');
    hcq.push({ wrId: 10, status: WcStatus.WR_FLUSH_ERR });
    expect((await cq.next()).status).toBe(WcStatus.WR_FLUSH_ERR);
  });

  it('stops waiting when aborted', async () => {
    const ac = new AbortController();
    const p = cq.next({ signal: ac.signal });
    await tick();
    ac.abort(new Error('enough'));
    await expect(p).rejects.toThrow('enough');
    pushN(1);
    await tick();
    expect(cq.poll()).toHaveLength(1);
    const pre = new AbortController();
    pre.abort();
    await expect(cq.next({ signal: pre.signal })).rejects.toThrow(/aborted/);
  });

  it('rejects pending waiters when the CQ is destroyed', async () => {
    const p = cq.next();
    await tick();
    cq.destroy();
    await expect(p).rejects.toThrow(ResourceClosedError);
  });
});

describe('async iteration', () => {
  it('yields completions as they arrive', async () => {
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const wc of cq) {
        seen.push(wc.wrId);
        if (seen.length === 3) break;
      }
    })();
    pushN(1, 1);
    await tick();
    pushN(2, 2);
    await consumer;
    expect(seen).toEqual([1, 2, 3]);
    pushN(1, 4);
    expect(cq.poll().map((wc) => wc.wrId)).toEqual([4]);
  });

  it('yields copies that survive later polls', async () => {
    pushN(2);
    const kept: WorkCompletion[] = [];
    for await (const wc of cq) {
      kept.push(wc);
      if (kept.length === 2) break;
    }
    expect(kept[0]).not.toBe(kept[1]);
    expect(kept.map((wc) => wc.wrId)).toEqual([0, 1]);
  });

  it('ends when the CQ is destroyed', async () => {
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const wc of cq) seen.push(wc.wrId);
    })();
    pushN(1);
    await tick();
    cq.destroy();
    await consumer;
    expect(seen).toEqual([0]);
  });

  it('throws the abort reason', async () => {
    const ac = new AbortController();
    const consumer = (async () => {
      for await (const _ of cq.completions({ signal: ac.signal })) {
        /* nothing arrives */
      }
    })();
    await tick();
    ac.abort(new Error('stop'));
    await expect(consumer).rejects.toThrow('stop');
  });
});

describe('wcOpcodeName', () => {
  it('names libibverbs completion opcodes', () => {
    expect(wcOpcodeName(WcOpcode.RECV_RDMA_WITH_IMM)).toBe('RECV_RDMA_WITH_IMM');
    expect(wcOpcodeName(77)).toBe('UNKNOWN(77)');
  });
});
