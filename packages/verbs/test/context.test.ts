import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  EventType,
  InvalidArgumentError,
  NotFoundError,
  QpType,
  createQp,
  createSrq,
  type AsyncEvent,
} from '../src/index.js';
import { kHandle } from '../src/internal.js';
import { openDouble, tick } from './helpers.js';

describe('Context queries', () => {
  it('queries the device, ports and GIDs, checking port numbers', async () => {
    const { ctx } = await openDouble();
    expect(ctx.device.name).toBe('double0');
    expect(ctx.queryDevice().maxQpWr).toBe(128);
    expect(ctx.queryPort().activeMtu).toBe(3);
    expect(ctx.queryPort(1).udpPort).toBe(4791);
    expect(ctx.queryGid(1, 1)[15]).toBe(1);
    expect(() => ctx.queryPort(2)).toThrow(new NotFoundError('port 2 does not exist (double0 has ports 1..1)'));
    expect(() => ctx.queryPort(0)).toThrow(NotFoundError);
    expect(() => ctx.queryPort(1.5)).toThrow(InvalidArgumentError);
    expect(() => ctx.queryGid(1, -1)).toThrow(InvalidArgumentError);
  });
});

describe('async events', () => {
  async function setup() {
    const { ctx, hctx } = await openDouble();
    const pd = ctx.allocPd();
    const cq = ctx.createCq(4);
    const srq = createSrq(pd, { maxWr: 4 });
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap: { maxSendWr: 1, maxRecvWr: 0 } });
    return { ctx, hctx, pd, cq, srq, qp };
  }

  it('delivers events to listeners asynchronously, naming the verbs objects', async () => {
    const { ctx, hctx, cq, srq, qp } = await setup();
    const seen: AsyncEvent[] = [];
    ctx.on('event', (e) => seen.push(e));
    hctx.raise({ eventType: EventType.QP_FATAL, qp: qp[kHandle] });
    expect(seen).toHaveLength(0);
    hctx.raise({ eventType: EventType.CQ_ERR, cq: cq[kHandle] });
    hctx.raise({ eventType: EventType.SRQ_LIMIT_REACHED, srq: srq[kHandle] });
    hctx.raise({ eventType: EventType.PORT_ACTIVE, portNum: 1 });
    await tick();
    expect(seen).toEqual([
      { eventType: EventType.QP_FATAL, eventName: 'QP_FATAL', qp },
      { eventType: EventType.CQ_ERR, eventName: 'CQ_ERR', cq },
      { eventType: EventType.SRQ_LIMIT_REACHED, eventName: 'SRQ_LIMIT_REACHED', srq },
      { eventType: EventType.PORT_ACTIVE, eventName: 'PORT_ACTIVE', portNum: 1 },
    ]);
  });

  it('supports once and off', async () => {
    const { ctx, hctx } = await setup();
    let once = 0;
    let always = 0;
    const listener = (): void => void always++;
    ctx.once('event', () => void once++).on('event', listener);
    hctx.raise({ eventType: EventType.PORT_ERR, portNum: 1 });
    await tick();
    ctx.off('event', listener);
    hctx.raise({ eventType: EventType.PORT_ERR, portNum: 1 });
    await tick();
    expect([once, always]).toEqual([1, 1]);
  });

  it('buffers events for an iterator from the moment it is created and ends on close', async () => {
    const { ctx, hctx, qp, cq, srq, pd } = await setup();
    const it = ctx.events();
    hctx.raise({ eventType: EventType.COMM_EST, qp: qp[kHandle] });
    hctx.raise({ eventType: EventType.QP_LAST_WQE_REACHED, qp: qp[kHandle] });
    await tick();
    const names: string[] = [];
    const consumer = (async () => {
      for await (const e of it) names.push(e.eventName);
    })();
    await tick();
    qp.destroy();
    srq.destroy();
    cq.destroy();
    pd.dealloc();
    ctx.close();
    await consumer;
    expect(names).toEqual(['COMM_EST', 'QP_LAST_WQE_REACHED']);
    hctx.raise({ eventType: EventType.DEVICE_FATAL });
    await tick();
  });

  it('stops an iterator on abort', async () => {
    const { ctx } = await setup();
    const ac = new AbortController();
    const consumer = (async () => {
      for await (const _ of ctx.events({ signal: ac.signal })) {
        /* none */
      }
    })();
    await tick();
    ac.abort(new Error('bye'));
    await expect(consumer).rejects.toThrow('bye');
  });
});

describe('ref() and unref() (ibal extension)', () => {
  // A child process that opens the soft device (its UDP socket keeps the loop alive) and maybe unref()s the context.
  function run(unref: boolean): { status: number | null; signal: NodeJS.Signals | null; stdout: string } {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const code = `const { openDevice } = await import(${JSON.stringify(dist)}); const ctx = await openDevice(); ${unref ? 'ctx.unref();' : ''} console.log(ctx.device.name);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { timeout: 3000, killSignal: 'SIGKILL', encoding: 'utf8' });
    return { status: r.status, signal: r.signal, stdout: r.stdout };
  }

  it('an open soft context keeps the process alive until unref()d', () => {
    const kept = run(false);
    expect(kept.stdout).toMatch(/\w/);
    expect(kept.signal).toBe('SIGKILL'); // still running when the 3 s ran out
    const let_go = run(true);
    expect(let_go.stdout).toMatch(/\w/);
    expect([let_go.status, let_go.signal]).toEqual([0, null]);
  });
});
