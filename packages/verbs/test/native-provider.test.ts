// The native provider through @ibal/verbs. Without an HCA it lists no
// device and IBAL_PROVIDER=native says why; with one, the RC cases the soft
// HCA passes run on it unchanged. No device is ever faked here.
import { afterEach, describe, expect, it } from 'vitest';
import { nativeProvider, nativeStatus } from '@ibal/hca';
import {
  Access,
  Mtu,
  MwType,
  NoDeviceError,
  PROVIDER_ENV,
  QpAttrMask as M,
  QpState,
  QpType,
  SendFlags,
  WcFlags,
  WcOpcode,
  WrOpcode,
  allocMw,
  createQp,
  getDeviceList,
  incRkey,
  openDevice,
  regMr,
  registeredProviders,
  type Context,
  type QP,
} from '../src/index.js';

const saved = process.env[PROVIDER_ENV];
afterEach(() => {
  if (saved === undefined) delete process.env[PROVIDER_ENV];
  else process.env[PROVIDER_ENV] = saved;
});

describe('native provider in the registry', () => {
  it('is registered by default and lists exactly the devices libibverbs has', () => {
    delete process.env[PROVIDER_ENV];
    expect(registeredProviders()).toContain(nativeProvider);
    const native = getDeviceList().filter((d) => d.provider === 'native');
    expect(native.map((d) => d.name)).toEqual(nativeStatus().deviceNames);
  });

  it.runIf(nativeStatus().deviceCount === 0)('IBAL_PROVIDER=native without a device is a NoDeviceError that says why', async () => {
    process.env[PROVIDER_ENV] = 'native';
    const why = nativeStatus().verbs.reason!;
    expect(why.length).toBeGreaterThan(0);
    expect(() => getDeviceList()).toThrow(NoDeviceError);
    expect(() => getDeviceList()).toThrow(`IBAL_PROVIDER=native: no RDMA device found: ${why}`);
    await expect(openDevice()).rejects.toThrow(NoDeviceError);
  });
});

const nativeDevice = nativeStatus().deviceNames[0];
const ALL = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
const SIG = SendFlags.SIGNALED;

// Both QPs on the one device, connected through its own port and GID 0 (as
// ibv_rc_pingpong does on one host).
describe.skipIf(nativeDevice === undefined)(
  `RC over the native device ${nativeDevice ?? '(skipped: libibverbs lists no RDMA device on this machine)'}`,
  () => {
    const cleanup: (() => void)[] = [];
    afterEach(() => {
      for (const f of cleanup.splice(0).reverse()) f();
    });

    async function endpoint() {
      const ctx = await openDevice(nativeDevice);
      cleanup.push(() => ctx.close());
      const pd = ctx.allocPd();
      const cq = ctx.createCq(256);
      const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 0 } });
      const mr = regMr(pd, 1 << 20, ALL);
      return { ctx, pd, cq, qp, mr };
    }

    function connect(qp: QP, rctx: Context, rqp: QP) {
      const port = rctx.queryPort(1);
      qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: ALL & ~Access.LOCAL_WRITE }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
      qp.modifyQp(
        {
          qpState: QpState.RTR,
          pathMtu: Math.min(port.activeMtu, Mtu.MTU_1024),
          destQpNum: rqp.qpNum,
          rqPsn: 0x1234,
          maxDestRdAtomic: 1,
          minRnrTimer: 12,
          ahAttr: { dgid: rctx.queryGid(1, 0), sgidIndex: 0, hopLimit: 64, portNum: 1 },
        },
        M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
      );
      qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0x1234, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
    }

    it('SEND with immediate, RDMA WRITE, READ and both atomics', async () => {
      const a = await endpoint();
      const b = await endpoint();
      connect(a.qp, b.ctx, b.qp);
      connect(b.qp, a.ctx, a.qp);
      a.mr.buf.set(new TextEncoder().encode('hello, verbs'), 0);
      b.qp.postRecv({ wrId: 7, sgList: [b.mr.sge(0, 100)] });
      a.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 42, sendFlags: SIG, sgList: [a.mr.sge(0, 12)] });
      const r = await b.cq.next({ throwOnError: true });
      expect([r.wrId, r.opcode, r.byteLen, r.immData]).toEqual([7, WcOpcode.RECV, 12, 42]);
      expect(new TextDecoder().decode(b.mr.buf.subarray(0, 12))).toBe('hello, verbs');
      expect((await a.cq.next({ throwOnError: true })).opcode).toBe(WcOpcode.SEND);

      a.mr.buf.fill(0x5a, 0, 5000);
      new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset).setBigUint64(64, 5n, true);
      a.qp.postSend([
        { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 5000)], rdma: { remoteAddr: b.mr.addr + 8192, rkey: b.mr.rkey } },
        { wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [a.mr.sge(20_000, 5000)], rdma: { remoteAddr: b.mr.addr + 8192, rkey: b.mr.rkey } },
        { wrId: 4, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [a.mr.sge(40_000, 8)], atomic: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 3n } },
        { wrId: 5, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [a.mr.sge(40_008, 8)], atomic: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 8n, swap: 10n } },
      ]);
      const done = [];
      for (let i = 0; i < 4; i++) done.push(await a.cq.next({ throwOnError: true }));
      expect(done.map((w) => [w.wrId, w.opcode])).toEqual([
        [2, WcOpcode.RDMA_WRITE],
        [3, WcOpcode.RDMA_READ],
        [4, WcOpcode.FETCH_ADD],
        [5, WcOpcode.COMP_SWAP],
      ]);
      expect(b.mr.buf.subarray(8192, 8192 + 5000).every((x) => x === 0x5a)).toBe(true);
      expect(a.mr.buf.subarray(20_000, 25_000).every((x) => x === 0x5a)).toBe(true);
      const av = new DataView(a.mr.buf.buffer, a.mr.buf.byteOffset);
      expect([av.getBigUint64(40_000, true), av.getBigUint64(40_008, true)]).toEqual([5n, 8n]);
      expect(new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset).getBigUint64(64, true)).toBe(10n);
    });

    it('memory windows, where the device has them: a type 1 bind, a WRITE through it, a type 2 bind invalidated by SEND_WITH_INV', async (t) => {
      const a = await endpoint();
      const b = await endpoint();
      const caps = b.ctx.queryDevice().deviceCapFlags;
      // IBV_DEVICE_MEM_WINDOW, IBV_DEVICE_MEM_WINDOW_TYPE_2B
      if (!(caps & (1 << 17)) || !(caps & (1 << 24))) return t.skip();
      connect(a.qp, b.ctx, b.qp);
      connect(b.qp, a.ctx, a.qp);
      const target = regMr(b.pd, 65536, ALL | Access.MW_BIND);
      cleanup.push(() => target.closed || target.dereg());
      const mw1 = allocMw(b.pd, MwType.TYPE_1);
      cleanup.push(() => mw1.closed || mw1.dealloc());
      b.qp.bindMw(mw1, { wrId: 9, sendFlags: SIG, bindInfo: { mr: target, addr: target.addr + 4096, length: 4096, mwAccessFlags: Access.REMOTE_WRITE } });
      expect((await b.cq.next({ throwOnError: true })).opcode).toBe(WcOpcode.BIND_MW);
      a.mr.buf.fill(0x3c, 0, 100);
      a.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 100)], rdma: { remoteAddr: target.addr + 4096, rkey: mw1.rkey } });
      await a.cq.next({ throwOnError: true });
      expect(target.buf.subarray(4096, 4196).every((x) => x === 0x3c)).toBe(true);

      const mw2 = allocMw(b.pd, MwType.TYPE_2);
      cleanup.push(() => mw2.closed || mw2.dealloc());
      const rkey = incRkey(mw2.rkey);
      b.qp.postSend({ wrId: 2, opcode: WrOpcode.BIND_MW, sendFlags: SIG, sgList: [], bindMw: { mw: mw2, rkey, bindInfo: { mr: target, addr: target.addr, length: 4096, mwAccessFlags: Access.REMOTE_WRITE } } });
      expect((await b.cq.next({ throwOnError: true })).opcode).toBe(WcOpcode.BIND_MW);
      b.qp.postRecv({ wrId: 3, sgList: [b.mr.sge(0, 64)] });
      a.qp.postSend({ wrId: 4, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: rkey, sendFlags: SIG, sgList: [a.mr.sge(0, 8)] });
      await a.cq.next({ throwOnError: true });
      const recv = await b.cq.next({ throwOnError: true });
      expect([recv.wcFlags & WcFlags.WITH_INV, recv.invalidatedRkey]).toEqual([WcFlags.WITH_INV, rkey]);
    });

    it('refuses to deregister an MR a posted receive still names', async () => {
      const a = await endpoint();
      a.qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
      a.qp.postRecv({ wrId: 1, sgList: [a.mr.sge(0, 64)] });
      expect(() => a.mr.dereg()).toThrow(/in flight/);
      a.qp.destroy();
      a.mr.dereg();
    });
  },
);
