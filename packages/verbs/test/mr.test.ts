import { describe, expect, it } from 'vitest';
import { Access, CapacityError, InvalidArgumentError, NotFoundError, createAh, regMr, type PD } from '../src/index.js';
import { kHandle } from '../src/internal.js';
import { doubleLimits } from './provider-double.js';
import { openDouble } from './helpers.js';

async function pdOf(): Promise<PD> {
  const { ctx } = await openDouble();
  return ctx.allocPd();
}

describe('regMr', () => {
  it('allocates zeroed memory when given a length', async () => {
    const pd = await pdOf();
    const mr = regMr(pd, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    expect(mr.length).toBe(4096);
    expect(mr.buf).toBeInstanceOf(Uint8Array);
    expect(mr.buf.every((b) => b === 0)).toBe(true);
    expect(mr.lkey).toBe(1);
    expect(mr.rkey).toBe(0x8001);
    expect(mr.addr).toBe(0x10000);
    expect(regMr(pd, 0, 0).length).toBe(0);
  });

  it('registers caller memory in place, whatever its view type', async () => {
    const pd = await pdOf();
    const u8 = new Uint8Array(32);
    expect(regMr(pd, u8, 0).buf).toBe(u8);

    const buf = Buffer.alloc(16);
    expect(regMr(pd, buf, 0).buf).toBe(buf);

    const ab = new ArrayBuffer(24);
    const viaAb = regMr(pd, ab, 0).buf;
    viaAb[3] = 7;
    expect(new Uint8Array(ab)[3]).toBe(7);

    const sab = new SharedArrayBuffer(8);
    const viaSab = regMr(pd, sab, 0).buf;
    expect(viaSab.buffer).toBe(sab);

    const f64 = new Float64Array(new ArrayBuffer(64), 16, 2);
    const viaView = regMr(pd, f64, 0).buf;
    expect([viaView.byteOffset, viaView.byteLength, viaView.buffer]).toEqual([16, 16, f64.buffer]);
  });

  it('refuses what is not memory', async () => {
    const pd = await pdOf();
    for (const bad of ['abc', {}, null, -1, 1.5, Number.NaN]) {
      expect(() => regMr(pd, bad as never, 0), String(bad)).toThrow(InvalidArgumentError);
    }
  });

  it('requires LOCAL_WRITE for REMOTE_WRITE and REMOTE_ATOMIC, as libibverbs does', async () => {
    const pd = await pdOf();
    expect(() => regMr(pd, 8, Access.REMOTE_WRITE)).toThrow(new InvalidArgumentError('regMr: access REMOTE_WRITE requires LOCAL_WRITE (EINVAL in libibverbs)'));
    expect(() => regMr(pd, 8, Access.REMOTE_ATOMIC)).toThrow(/REMOTE_ATOMIC requires LOCAL_WRITE/);
    expect(() => regMr(pd, 8, Access.REMOTE_READ)).not.toThrow();
    expect(() => regMr(pd, 8, 0xf)).not.toThrow();
    expect(() => regMr(pd, 8, Access.MW_BIND)).not.toThrow();
    // ZERO_BASED is a window's bind access, not an MR's.
    expect(() => regMr(pd, 8, Access.ZERO_BASED)).toThrow(/unknown access flags/);
    expect(() => regMr(pd, 8, -1)).toThrow(InvalidArgumentError);
    expect(() => regMr(pd, 8, 1.5)).toThrow(InvalidArgumentError);
  });

  it('passes the access flags to the provider unchanged', async () => {
    const pd = await pdOf();
    const mr = regMr(pd, 8, Access.LOCAL_WRITE | Access.REMOTE_READ);
    expect((mr[kHandle] as unknown as { access: number }).access).toBe(5);
  });

  it("refuses a region larger than the device's maxMrSize", async () => {
    const pd = await pdOf();
    expect(() => regMr(pd, doubleLimits.maxMrSize + 1, 0)).toThrow(CapacityError);
  });

  it('builds SGEs inside the region', async () => {
    const pd = await pdOf();
    const mr = regMr(pd, 100, Access.LOCAL_WRITE);
    expect(mr.sge()).toEqual({ addr: mr.addr, length: 100, lkey: mr.lkey });
    expect(mr.sge(10)).toEqual({ addr: mr.addr + 10, length: 90, lkey: mr.lkey });
    expect(mr.sge(10, 20)).toEqual({ addr: mr.addr + 10, length: 20, lkey: mr.lkey });
    expect(() => mr.sge(90, 11)).toThrow(InvalidArgumentError);
    expect(() => mr.sge(-1)).toThrow(InvalidArgumentError);
  });
});

describe('createAh', () => {
  it('checks the address and copies it', async () => {
    const pd = await pdOf();
    const dgid = new Uint8Array(16);
    dgid[15] = 1;
    const ah = createAh(pd, { dgid, hopLimit: 64 });
    dgid[15] = 2;
    expect(ah.attr.dgid[15]).toBe(1);
    expect(ah.attr.portNum).toBe(1);
    expect(() => createAh(pd, { dgid: new Uint8Array(4) })).toThrow(/dgid must be a 16-byte/);
    expect(() => createAh(pd, { dgid, portNum: 2 })).toThrow(NotFoundError);
    expect(() => createAh(pd, { dgid, sl: 99 })).toThrow(InvalidArgumentError);
  });
});
