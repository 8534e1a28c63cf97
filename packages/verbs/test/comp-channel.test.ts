import { beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ResourceBusyError, ResourceClosedError, type CompChannel, type CQ, type Context } from '../src/index.js';
import { kHandle } from '../src/internal.js';
import type { CqDouble } from './provider-double.js';
import { openDouble, tick } from './helpers.js';

let ctx: Context;
let ch: CompChannel;
let cq: CQ;
let hcq: CqDouble;

beforeEach(async () => {
  ({ ctx } = await openDouble());
  ch = ctx.createCompChannel();
  cq = ctx.createCq(16, { channel: ch });
  hcq = cq[kHandle] as CqDouble;
});

describe('CompChannel (ibv_get_cq_event semantics)', () => {
  it('returns the CQ that fired, one event per arm', async () => {
    expect(cq.channel).toBe(ch);
    cq.reqNotify();
    hcq.push({ wrId: 1 });
    hcq.push({ wrId: 2 });
    expect(await ch.getCqEvent()).toBe(cq);
    ch.ackCqEvents(cq);
    let second = false;
    void ch.getCqEvent().then(() => (second = true));
    await tick();
    expect(second).toBe(false);
    cq.reqNotify();
    hcq.push({ wrId: 3 });
    await tick();
    expect(second).toBe(true);
  });

  it('produces nothing without an arm', async () => {
    hcq.push({ wrId: 1 });
    const ac = new AbortController();
    const p = ch.getCqEvent({ signal: ac.signal });
    await tick();
    ac.abort(new Error('timeout'));
    await expect(p).rejects.toThrow('timeout');
  });

  it('serves several CQs in firing order', async () => {
    const cq2 = ctx.createCq(4, { channel: ch });
    cq2.reqNotify();
    cq.reqNotify();
    (cq2[kHandle] as CqDouble).push({});
    hcq.push({});
    expect(await ch.getCqEvent()).toBe(cq2);
    expect(await ch.getCqEvent()).toBe(cq);
  });

  it('refuses to destroy a CQ with unacknowledged events, as destroy would otherwise block', async () => {
    cq.reqNotify();
    hcq.push({});
    cq.reqNotify();
    hcq.push({});
    await ch.getCqEvent();
    await ch.getCqEvent();
    expect(() => cq.destroy()).toThrow(ResourceBusyError);
    expect(() => cq.destroy()).toThrow(/2 completion event\(s\) not acknowledged/);
    ch.ackCqEvents(cq, 2);
    cq.destroy();
    ch.destroy();
  });

  it('checks acknowledgements', async () => {
    expect(() => ch.ackCqEvents(cq)).toThrow(/cannot acknowledge 1 events, 0 outstanding/);
    cq.reqNotify();
    hcq.push({});
    await ch.getCqEvent();
    expect(() => ch.ackCqEvents(cq, 2)).toThrow(InvalidArgumentError);
    expect(() => ch.ackCqEvents(cq, 0)).toThrow(InvalidArgumentError);
    const other = ctx.createCq(4);
    expect(() => ch.ackCqEvents(other)).toThrow(/does not use this completion channel/);
    cq.ackEvents();
  });

  it('forgets undelivered events of a destroyed CQ', async () => {
    const cq2 = ctx.createCq(4, { channel: ch });
    cq.reqNotify();
    hcq.push({});
    await tick();
    cq.destroy();
    cq2.reqNotify();
    (cq2[kHandle] as CqDouble).push({});
    expect(await ch.getCqEvent()).toBe(cq2);
  });

  it('on a destroyed channel, getCqEvent returns a rejected promise rather than throwing', async () => {
    cq.destroy();
    ch.destroy();
    let p: Promise<CQ> | undefined;
    expect(() => (p = ch.getCqEvent())).not.toThrow();
    await expect(p).rejects.toThrow(ResourceClosedError);
    await expect(ch.getCqEvent({ signal: new AbortController().signal })).rejects.toThrow(ResourceClosedError);
  });

  it('rejects waiters when destroyed', async () => {
    cq.destroy();
    const p = ch.getCqEvent();
    await tick();
    ch.destroy();
    await expect(p).rejects.toThrow(ResourceClosedError);
  });

  it('also receives the events of arms cq.next() makes', async () => {
    const wc = cq.next();
    await tick();
    hcq.push({ wrId: 4 });
    expect((await wc).wrId).toBe(4);
    expect(await ch.getCqEvent()).toBe(cq);
    ch.ackCqEvents(cq);
  });
});
