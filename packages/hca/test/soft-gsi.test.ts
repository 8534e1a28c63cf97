// QP1 on the soft HCA: MAD agents send and receive 256-byte MADs as UD SEND
// ONLY packets with the GSI Q_Key; anything else addressed to QP1 is counted
// and dropped.
import { afterEach, describe, expect, it } from 'vitest';
import { addSoftDevice, gsiCounters, GSI_QKEY, ResourceBusyError, InvalidArgumentError, type MadAddress, type SoftDevice } from '../src/index.js';
import { SoftContext } from '../src/soft/context.js';

const live: SoftDevice[] = [];
afterEach(() => {
  for (const d of live.splice(0)) d.remove();
});

let n = 0;
async function dev() {
  const d = addSoftDevice({ name: `gsi_${process.pid}_${n++}`, address: '127.0.0.1', port: 0 });
  live.push(d);
  const ctx = (await d.open()) as SoftContext;
  return { d, ctx };
}

function mad(cls: number, ver: number, fill: number): Uint8Array {
  const m = new Uint8Array(256).fill(fill);
  m[0] = 1;
  m[1] = cls;
  m[2] = ver;
  return m;
}

describe('soft GSI (QP1)', () => {
  it('delivers a MAD to the agent of its class with the source address, and counts strays', async () => {
    const a = await dev();
    const b = await dev();
    const got: { m: Uint8Array; src: MadAddress }[] = [];
    b.ctx.registerMadAgent({ portNum: 1, mgmtClass: 7, classVersion: 2 }, (m, src) => got.push({ m, src }));
    const sender = a.ctx.registerMadAgent({ portNum: 1, mgmtClass: 7, classVersion: 2 }, () => {});
    const dest = { dgid: b.ctx.queryGid(1, 0), udpPort: b.d.port, remoteQpn: 1, remoteQkey: GSI_QKEY };
    sender.send(mad(7, 2, 0xab), dest);
    sender.send(mad(4, 1, 0xcd), dest); // no agent for class 4
    sender.send(mad(7, 2, 0xee), { ...dest, remoteQkey: 0x1234 }); // wrong Q_Key
    const end = Date.now() + 5000;
    while ((got.length < 1 || gsiCounters(b.d).rxNoAgent < 1 || gsiCounters(b.d).rxBadQkey < 1) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    expect(got).toHaveLength(1);
    expect(got[0]!.m[100]).toBe(0xab);
    expect(got[0]!.src.udpPort).toBe(a.d.port);
    expect(got[0]!.src.remoteQpn).toBe(1);
    expect(Buffer.from(got[0]!.src.dgid).equals(Buffer.from(a.ctx.queryGid(1, 0)))).toBe(true);
    expect(gsiCounters(b.d)).toMatchObject({ rxMads: 1, rxNoAgent: 1, rxBadQkey: 1 });
    expect(sender.counters.txMads).toBe(3);
  });

  it('one agent per class and version; bad arguments are typed errors', async () => {
    const a = await dev();
    const ag = a.ctx.registerMadAgent({ portNum: 1, mgmtClass: 7, classVersion: 2 }, () => {});
    expect(() => a.ctx.registerMadAgent({ portNum: 1, mgmtClass: 7, classVersion: 2 }, () => {})).toThrow(ResourceBusyError);
    expect(() => a.ctx.registerMadAgent({ portNum: 2, mgmtClass: 7, classVersion: 2 }, () => {})).toThrow(InvalidArgumentError);
    expect(() => ag.send(new Uint8Array(100), { dgid: new Uint8Array(16), remoteQpn: 1, remoteQkey: GSI_QKEY })).toThrow(InvalidArgumentError);
    ag.unregister();
    a.ctx.registerMadAgent({ portNum: 1, mgmtClass: 7, classVersion: 2 }, () => {}).unregister();
  });
});
