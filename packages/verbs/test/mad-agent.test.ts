// libibumad's part of the verbs API: registerMadAgent over the soft HCA's
// GSI, the agent's lifetime as a child of its context, and the typed error
// from a provider whose kernel owns QP1.
import { afterEach, describe, expect, it } from 'vitest';
import { MadAgent, NotFoundError, ResourceBusyError, ResourceClosedError, addSoftDevice, openDevice, registerMadAgent, type MadAddress } from '../src/index.js';
import { openDouble } from './helpers.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

let n = 0;
async function soft() {
  const dev = addSoftDevice({ name: `verbs_mad_${process.pid}_${n++}`, address: '127.0.0.1', port: 0 });
  cleanup.push(() => dev.remove());
  const ctx = await openDevice(dev.name);
  cleanup.push(() => ctx.close());
  return { dev, ctx };
}

function mad(fill: number): Uint8Array {
  const m = new Uint8Array(256).fill(fill);
  m.set([1, 0x07, 2, 0x03], 0);
  return m;
}

describe('registerMadAgent', () => {
  it('sends and receives CM-class MADs between two soft devices, with counters and the source address', async () => {
    const a = await soft();
    const b = await soft();
    const got: { m: Uint8Array; src: MadAddress }[] = [];
    const rx = registerMadAgent(b.ctx, { mgmtClass: 0x07, classVersion: 2 }, (m, src) => got.push({ m, src }));
    cleanup.push(() => rx.unregister());
    const tx = registerMadAgent(a.ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {});
    cleanup.push(() => tx.unregister());
    expect(tx).toBeInstanceOf(MadAgent);
    for (let i = 0; i < 5; i++) tx.send(mad(i), { dgid: b.ctx.queryGid(1, 0), udpPort: b.ctx.queryPort(1).udpPort, remoteQpn: 1, remoteQkey: 0x80010000 });
    const end = Date.now() + 5000;
    while (got.length < 5 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    expect(got.map((g) => g.m[200])).toEqual([0, 1, 2, 3, 4]);
    expect(got[0]!.src.udpPort).toBe(a.ctx.queryPort(1).udpPort);
    expect(tx.counters.txMads).toBe(5);
    expect(rx.counters.rxMads).toBe(5);
  });

  it('an agent keeps its context open, and is closed by unregister', async () => {
    const a = await soft();
    const ag = registerMadAgent(a.ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {});
    expect(() => a.ctx.close()).toThrow(ResourceBusyError);
    ag.unregister();
    expect(ag.closed).toBe(true);
    expect(() => ag.send(mad(0), { dgid: a.ctx.queryGid(1, 0), remoteQpn: 1, remoteQkey: 0x80010000 })).toThrow(ResourceClosedError);
    ag.unregister(); // idempotent
    // The class is free again.
    registerMadAgent(a.ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {})[Symbol.dispose]();
  });

  it('a provider without GSI access is a NotFoundError that points at librdmacm', async () => {
    const { ctx } = await openDouble();
    cleanup.push(() => ctx.close());
    expect(() => registerMadAgent(ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {})).toThrow(NotFoundError);
    expect(() => registerMadAgent(ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {})).toThrow(/librdmacm/);
  });
});
