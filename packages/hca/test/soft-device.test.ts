import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { QpAttrMask as M, QpState, QpType } from '../src/enums.js';
import { validateModifyQp } from '../src/qp-state.js';
import { addSoftDevice, parseDeviceSpec, type SoftDevice } from '../src/soft/device.js';

let devs: SoftDevice[] = [];
afterEach(() => {
  for (const d of devs) d.remove();
  devs = [];
});
let n = 0;
const dev = (address: string, port = 0) => {
  const d = addSoftDevice({ name: `dev${process.pid}_${n++}`, address, port });
  devs.push(d);
  return d;
};

describe('IBAL_SOFT_DEVICES items', () => {
  it.each([
    ['soft0=127.0.0.1:4791', { name: 'soft0', address: '127.0.0.1', port: 4791 }],
    ['soft1=127.0.0.2', { name: 'soft1', address: '127.0.0.2', port: undefined }],
    ['soft1=::1', { name: 'soft1', address: '::1', port: undefined }],
    ['fe80::1:2', { name: undefined, address: 'fe80::1:2', port: undefined }],
    ['s=[::1]:4800', { name: 's', address: '::1', port: 4800 }],
    ['[::1]', { name: undefined, address: '::1', port: undefined }],
    ['127.0.0.1:0', { name: undefined, address: '127.0.0.1', port: 0 }],
  ])('%s', (item, want) => {
    expect(parseDeviceSpec(item)).toEqual(want);
  });

  it.each(['', 'soft0=', 'soft0=localhost', 'x=1.2.3:5', '[::1', 'a=::1:'])('rejects %j', (item) => {
    expect(parseDeviceSpec(item)).toBeUndefined();
  });
});

describe('soft device identity', () => {
  it('GUIDs differ between devices on one address with ephemeral ports, and between IPv6 addresses sharing a tail', async () => {
    const a = dev('127.0.0.1');
    const b = dev('127.0.0.1');
    const c = dev('::1');
    await Promise.all([a.open(), b.open(), c.open()]);
    const guids = [a.guid, b.guid, c.guid];
    expect(new Set(guids).size).toBe(3);
    for (const g of guids) expect((g >> 56n) & 0x03n).toBe(0x02n);
    // The same device reports a stable GUID.
    expect(a.guid).toBe(guids[0]);
    const fe = parseDeviceSpec('fe80::1')!;
    const other = parseDeviceSpec('fe81::1')!;
    const d1 = addSoftDevice({ ...fe, name: `g${n++}`, port: 5001 });
    const d2 = addSoftDevice({ ...other, name: `g${n++}`, port: 5001 });
    devs.push(d1, d2);
    expect(d1.guid).not.toBe(d2.guid);
  });

  it('the advertised read/atomic depth is exactly what modifyQp accepts', async () => {
    const d = dev('127.0.0.1');
    const ctx = await d.open();
    const attr = ctx.queryDevice();
    const max = attr.maxQpRdAtom;
    expect(attr.maxQpInitRdAtom).toBe(max);
    const rts = (v: number) => () =>
      validateModifyQp(QpType.RC, QpState.RTR, { qpState: QpState.RTS, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: v }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
    expect(rts(max)).not.toThrow();
    expect(rts(max + 1)).toThrow(/maxRdAtomic/);
  });
});

describe('soft context lifetime', () => {
  it('keeps no PD once deallocated: a long-lived context making a PD per connection grew without end', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const ctx = await dev('127.0.0.1').open();
    // In a function of its own: a suspended async function keeps its locals, the last PD among them.
    const churn = (): WeakRef<object>[] =>
      Array.from({ length: 20 }, () => {
        const pd = ctx.allocPd();
        pd.regMr(new Uint8Array(64), 1).dereg();
        pd.dealloc();
        return new WeakRef(pd);
      });
    const refs = churn();
    const kept = ctx.allocPd();
    // WeakRefs hold their targets until the job that made them ends.
    await new Promise((r) => setImmediate(r));
    gc();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    ctx.close();
    // The PD still allocated was released with its context.
    expect(() => kept.regMr(new Uint8Array(8), 1)).toThrow(/closed/);
  });
});
