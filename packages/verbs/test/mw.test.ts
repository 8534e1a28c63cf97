// Memory windows over the soft HCA, as rdma-core's rxe runs them: type 1
// windows bound with bindMw, type 2 windows bound by BIND_MW work requests
// and tied to their QP, LOCAL_INV and SEND_WITH_INV, and every rule a bind
// or a remote access through a window must pass.
import { afterEach, describe, expect, it } from 'vitest';
import {
  Access,
  InvalidArgumentError,
  Mtu,
  MwType,
  PostError,
  QpAttrMask as M,
  QpState,
  QpType,
  ResourceBusyError,
  ResourceClosedError,
  SendFlags,
  WcFlags,
  WcOpcode,
  WcStatus,
  WrOpcode,
  allocMw,
  incRkey,
  regMr,
  type CQ,
  type MR,
  type QP,
  type WorkCompletion,
} from '../src/index.js';
import { connectRc, endpoint, rcPair, rcQp } from './soft-pair.js';

const SIG = SendFlags.SIGNALED;
const RW = Access.REMOTE_READ | Access.REMOTE_WRITE;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

/** The responder's pair, with an MR that windows may be bound to. */
async function setup() {
  const [a, b] = await rcPair(cleanup, 'verbs_mw');
  const target = regMr(b.pd, 64 << 10, Access.LOCAL_WRITE | RW | Access.REMOTE_ATOMIC | Access.MW_BIND);
  return { a, b, target };
}

async function next(cq: CQ): Promise<WorkCompletion> {
  return cq.next({ signal: AbortSignal.timeout(10_000) });
}

/** RDMA WRITE of `len` bytes from a's MR (filled with `fill`) to (addr, rkey); resolves with its completion. */
async function write(qp: QP, cq: CQ, mr: MR, addr: number, rkey: number, len: number, fill = 0x5a): Promise<WorkCompletion> {
  mr.buf.fill(fill, 0, len);
  qp.postSend({ wrId: 100, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [mr.sge(0, len)], rdma: { remoteAddr: addr, rkey } });
  return next(cq);
}

async function read(qp: QP, cq: CQ, mr: MR, addr: number, rkey: number, len: number): Promise<WorkCompletion> {
  qp.postSend({ wrId: 101, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [mr.sge(4096, len)], rdma: { remoteAddr: addr, rkey } });
  return next(cq);
}

describe('memory windows', () => {
  it('the device reports windows of both types', async () => {
    const { ctx } = await endpoint(cleanup, QpType.RC, 'verbs_mw');
    const attr = ctx.queryDevice();
    expect(attr.maxMw).toBeGreaterThan(1000);
    // IBV_DEVICE_MEM_WINDOW, IBV_DEVICE_MEM_WINDOW_TYPE_2B
    expect(attr.deviceCapFlags & (1 << 17)).not.toBe(0);
    expect(attr.deviceCapFlags & (1 << 24)).not.toBe(0);
  });

  it('type 1: bindMw opens part of an MR under a new rkey; WRITE and READ through it reach the MR', async () => {
    const { a, b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_1);
    const before = mw.rkey;
    b.qp.bindMw(mw, { wrId: 9, sendFlags: SIG, bindInfo: { mr: target, addr: target.addr + 4096, length: 8192, mwAccessFlags: RW } });
    expect(mw.rkey).toBe(incRkey(before));
    expect(mw.rkey).not.toBe(target.rkey);
    const bound = await next(b.cq);
    expect([bound.status, bound.opcode, bound.wrId]).toEqual([WcStatus.SUCCESS, WcOpcode.BIND_MW, 9]);

    expect((await write(a.qp, a.cq, a.mr, target.addr + 4096 + 100, mw.rkey, 300, 0x77)).status).toBe(WcStatus.SUCCESS);
    expect([...target.buf.subarray(4196, 4496)].every((v) => v === 0x77)).toBe(true);
    expect(target.buf[4195]).toBe(0);
    expect(target.buf[4496]).toBe(0);
    // The whole window, both ends, in one READ.
    target.buf.fill(0x31, 4096, 4096 + 8192);
    expect((await read(a.qp, a.cq, a.mr, target.addr + 4096, mw.rkey, 8192)).status).toBe(WcStatus.SUCCESS);
    expect([...a.mr.buf.subarray(4096, 4096 + 8192)].every((v) => v === 0x31)).toBe(true);
    // The MR's own rkey is unaffected.
    expect((await write(a.qp, a.cq, a.mr, target.addr, target.rkey, 16)).status).toBe(WcStatus.SUCCESS);
  });

  it('type 1: a WRITE past the window, with the rkey before the bind, or after an unbind gets REM_ACCESS_ERR', async () => {
    for (const misuse of ['past the end', 'old rkey', 'unbound', 'read-only'] as const) {
      const { a, b, target } = await setup();
      const mw = allocMw(b.pd, MwType.TYPE_1);
      const old = mw.rkey;
      const rights = misuse === 'read-only' ? Access.REMOTE_READ : RW;
      b.qp.bindMw(mw, { bindInfo: { mr: target, addr: target.addr + 4096, length: 8192, mwAccessFlags: rights } });
      if (misuse === 'unbound') b.qp.bindMw(mw, { bindInfo: { addr: 0, length: 0, mwAccessFlags: 0 } });
      const addr = misuse === 'past the end' ? target.addr + 4096 + 8190 : target.addr + 4096;
      const rkey = misuse === 'old rkey' ? old : mw.rkey;
      const wc = await write(a.qp, a.cq, a.mr, addr, rkey, 16);
      expect(wc.status, misuse).toBe(WcStatus.REM_ACCESS_ERR);
      expect([...target.buf.subarray(4096, 4096 + 8192)].every((v) => v === 0), misuse).toBe(true);
    }
  });

  it('type 2: BIND_MW ties the window to its QP; SEND_WITH_INV and LOCAL_INV invalidate it', async () => {
    const { a, b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_2);
    const bindWr = (wrId: number, rkey: number) => ({
      wrId,
      opcode: WrOpcode.BIND_MW,
      sendFlags: SIG,
      sgList: [],
      bindMw: { mw, rkey, bindInfo: { mr: target, addr: target.addr + 8192, length: 4096, mwAccessFlags: RW } },
    });
    let rkey = incRkey(mw.rkey);
    b.qp.postSend(bindWr(1, rkey));
    expect(await next(b.cq)).toMatchObject({ status: WcStatus.SUCCESS, opcode: WcOpcode.BIND_MW, wrId: 1 });
    expect((await write(a.qp, a.cq, a.mr, target.addr + 8192, rkey, 4096, 0x42)).status).toBe(WcStatus.SUCCESS);
    expect(target.buf[8192 + 4095]).toBe(0x42);

    // The peer's Send with Invalidate: the receive completion names the key, which stops working.
    b.qp.postRecv({ wrId: 7, sgList: [b.mr.sge(0, 256)] });
    a.mr.buf.fill(1, 0, 64);
    a.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: rkey, sendFlags: SIG, sgList: [a.mr.sge(0, 64)] });
    expect(await next(a.cq)).toMatchObject({ status: WcStatus.SUCCESS, opcode: WcOpcode.SEND, wrId: 2 });
    const recv = await next(b.cq);
    expect(recv).toMatchObject({ status: WcStatus.SUCCESS, opcode: WcOpcode.RECV, byteLen: 64, invalidatedRkey: rkey, immData: 0 });
    expect(recv.wcFlags & WcFlags.WITH_INV).toBe(WcFlags.WITH_INV);
    expect(recv.wcFlags & WcFlags.WITH_IMM).toBe(0);

    // Bound again (a type 2 window binds from the invalid state), then invalidated locally.
    rkey = incRkey(rkey);
    b.qp.postSend(bindWr(3, rkey));
    expect((await next(b.cq)).status).toBe(WcStatus.SUCCESS);
    expect((await read(a.qp, a.cq, a.mr, target.addr + 8192, rkey, 4096)).status).toBe(WcStatus.SUCCESS);
    b.qp.postSend({ wrId: 4, opcode: WrOpcode.LOCAL_INV, invalidateRkey: rkey, sendFlags: SIG, sgList: [] });
    expect(await next(b.cq)).toMatchObject({ status: WcStatus.SUCCESS, opcode: WcOpcode.LOCAL_INV, wrId: 4 });
    expect((await write(a.qp, a.cq, a.mr, target.addr + 8192, rkey, 16)).status).toBe(WcStatus.REM_ACCESS_ERR);
  });

  it('type 2: an rkey invalidated by the peer is refused afterwards', async () => {
    const { a, b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_2);
    const rkey = incRkey(mw.rkey);
    b.qp.postSend({ wrId: 1, opcode: WrOpcode.BIND_MW, sgList: [], bindMw: { mw, rkey, bindInfo: { mr: target, addr: target.addr, length: 4096, mwAccessFlags: RW } } });
    b.qp.postRecv({ wrId: 7, sgList: [b.mr.sge(0, 256)] });
    a.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: rkey, sendFlags: SIG, sgList: [a.mr.sge(0, 8)] });
    expect((await next(a.cq)).status).toBe(WcStatus.SUCCESS);
    expect((await next(b.cq)).invalidatedRkey).toBe(rkey);
    expect((await write(a.qp, a.cq, a.mr, target.addr, rkey, 16)).status).toBe(WcStatus.REM_ACCESS_ERR);
  });

  it('type 2: a request on another QP of the same PD is refused (the window is tied to the QP that bound it)', async () => {
    const { a, b, target } = await setup();
    const c = await endpoint(cleanup, QpType.RC, 'verbs_mw');
    const other = rcQp(b.pd, b.cq);
    connectRc(other, c.ctx, c.qp);
    connectRc(c.qp, b.ctx, other);
    const mw = allocMw(b.pd, MwType.TYPE_2);
    const rkey = incRkey(mw.rkey);
    b.qp.postSend({ wrId: 1, opcode: WrOpcode.BIND_MW, sendFlags: SIG, sgList: [], bindMw: { mw, rkey, bindInfo: { mr: target, addr: target.addr, length: 4096, mwAccessFlags: RW } } });
    expect((await next(b.cq)).status).toBe(WcStatus.SUCCESS);
    expect((await write(a.qp, a.cq, a.mr, target.addr, rkey, 16)).status).toBe(WcStatus.SUCCESS);
    expect((await write(c.qp, c.cq, c.mr, target.addr, rkey, 16)).status).toBe(WcStatus.REM_ACCESS_ERR);
  });

  it('type 2, ZERO_BASED: remote addresses count from the start of the window', async () => {
    const { a, b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_2);
    const rkey = incRkey(mw.rkey);
    b.qp.postSend({ wrId: 1, opcode: WrOpcode.BIND_MW, sgList: [], bindMw: { mw, rkey, bindInfo: { mr: target, addr: target.addr + 16384, length: 4096, mwAccessFlags: RW | Access.ZERO_BASED } } });
    expect((await write(a.qp, a.cq, a.mr, 100, rkey, 8, 0x66)).status).toBe(WcStatus.SUCCESS);
    expect([...target.buf.subarray(16384 + 100, 16384 + 108)]).toEqual(new Array(8).fill(0x66));
    expect((await write(a.qp, a.cq, a.mr, 4090, rkey, 8)).status).toBe(WcStatus.REM_ACCESS_ERR);
  });

  it('a large WRITE and READ through a window take the same-host path and land where the window says', async () => {
    const { a, b } = await setup();
    const big = regMr(b.pd, 1 << 20, Access.LOCAL_WRITE | RW | Access.MW_BIND);
    const mw = allocMw(b.pd, MwType.TYPE_1);
    b.qp.bindMw(mw, { bindInfo: { mr: big, addr: big.addr + 65536, length: 512 << 10, mwAccessFlags: RW } });
    for (let i = 0; i < 256 << 10; i++) a.mr.buf[i] = (i * 7) & 0xff;
    a.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 256 << 10)], rdma: { remoteAddr: big.addr + 65536 + 1024, rkey: mw.rkey } });
    expect((await next(a.cq)).status).toBe(WcStatus.SUCCESS);
    expect(Buffer.from(big.buf.subarray(65536 + 1024, 65536 + 1024 + (256 << 10))).equals(Buffer.from(a.mr.buf.subarray(0, 256 << 10)))).toBe(true);
    a.qp.postSend({ wrId: 2, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [a.mr.sge(512 << 10, 256 << 10)], rdma: { remoteAddr: big.addr + 65536 + 1024, rkey: mw.rkey } });
    expect((await next(a.cq)).status).toBe(WcStatus.SUCCESS);
    expect(Buffer.from(a.mr.buf.subarray(512 << 10, 768 << 10)).equals(Buffer.from(a.mr.buf.subarray(0, 256 << 10)))).toBe(true);
    // Past the window's end by one byte: refused, whichever path the READ takes.
    a.qp.postSend({ wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [a.mr.sge(0, 256 << 10)], rdma: { remoteAddr: big.addr + 65536 + (256 << 10) + 1, rkey: mw.rkey } });
    expect((await next(a.cq)).status).toBe(WcStatus.REM_ACCESS_ERR);
  });

  it('an atomic through a window with REMOTE_ATOMIC', async () => {
    const { a, b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_1);
    b.qp.bindMw(mw, { bindInfo: { mr: target, addr: target.addr + 512, length: 64, mwAccessFlags: Access.REMOTE_ATOMIC } });
    new DataView(target.buf.buffer, target.buf.byteOffset).setBigUint64(520, 40n, true);
    a.qp.postSend({ wrId: 1, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [a.mr.sge(0, 8)], atomic: { remoteAddr: target.addr + 520, rkey: mw.rkey, compareAdd: 2n } });
    expect((await next(a.cq)).status).toBe(WcStatus.SUCCESS);
    expect(new DataView(a.mr.buf.buffer, a.mr.buf.byteOffset).getBigUint64(0, true)).toBe(40n);
    expect(new DataView(target.buf.buffer, target.buf.byteOffset).getBigUint64(520, true)).toBe(42n);
  });

  it('binds the HCA refuses complete with MW_BIND_ERR and stop the send queue', async () => {
    const cases = ['MR without MW_BIND', 'range outside the MR', 'type 2 bound twice', "another window's key", 'writable window on a read-only MR'] as const;
    for (const which of cases) {
      const { b, target } = await setup();
      const plain = regMr(b.pd, 4096, Access.LOCAL_WRITE | RW);
      const readOnly = regMr(b.pd, 4096, Access.REMOTE_READ | Access.MW_BIND);
      const mw = allocMw(b.pd, MwType.TYPE_2);
      const other = allocMw(b.pd, MwType.TYPE_2);
      let rkey = incRkey(mw.rkey);
      const info = { mr: target, addr: target.addr, length: 4096, mwAccessFlags: RW };
      if (which === 'MR without MW_BIND') info.mr = plain;
      if (which === 'range outside the MR') info.length = (64 << 10) + 1;
      if (which === 'writable window on a read-only MR') info.mr = readOnly;
      if (which === "another window's key") rkey = incRkey(other.rkey);
      if (which === 'type 2 bound twice') {
        b.qp.postSend({ wrId: 1, opcode: WrOpcode.BIND_MW, sgList: [], bindMw: { mw, rkey, bindInfo: info } });
        rkey = incRkey(rkey);
      }
      b.qp.postSend({ wrId: 2, opcode: WrOpcode.BIND_MW, sendFlags: SIG, sgList: [], bindMw: { mw, rkey, bindInfo: info } });
      b.qp.postSend({ wrId: 3, opcode: WrOpcode.LOCAL_INV, sendFlags: SIG, invalidateRkey: rkey, sgList: [] });
      expect(await next(b.cq), which).toMatchObject({ wrId: 2, status: WcStatus.MW_BIND_ERR, opcode: WcOpcode.BIND_MW });
      expect(await next(b.cq), which).toMatchObject({ wrId: 3, status: WcStatus.WR_FLUSH_ERR });
    }
  });

  it('LOCAL_INV of a key that names no bound type 2 window completes with LOC_QP_OP_ERR', async () => {
    const { b, target } = await setup();
    const mw = allocMw(b.pd, MwType.TYPE_1);
    b.qp.bindMw(mw, { bindInfo: { mr: target, addr: target.addr, length: 64, mwAccessFlags: RW } });
    b.qp.postSend({ wrId: 5, opcode: WrOpcode.LOCAL_INV, sendFlags: SIG, invalidateRkey: mw.rkey, sgList: [] });
    expect(await next(b.cq)).toMatchObject({ wrId: 5, status: WcStatus.LOC_QP_OP_ERR, opcode: WcOpcode.LOCAL_INV });
  });

  it('SEND_WITH_INV naming no window of the receiver fails at both ends', async () => {
    const { a, b, target } = await setup();
    b.qp.postRecv({ wrId: 7, sgList: [b.mr.sge(0, 256)] });
    a.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: target.rkey, sendFlags: SIG, sgList: [a.mr.sge(0, 8)] });
    expect(await next(a.cq)).toMatchObject({ wrId: 2, status: WcStatus.REM_INV_REQ_ERR });
    expect(await next(b.cq)).toMatchObject({ wrId: 7, status: WcStatus.REM_INV_REQ_ERR });
  });

  it('refuses misuse at the call: wrong window type, transport, arguments, and closing what a window holds', async () => {
    const { b, target } = await setup();
    const t1 = allocMw(b.pd, MwType.TYPE_1);
    const t2 = allocMw(b.pd, MwType.TYPE_2);
    const info = { mr: target, addr: target.addr, length: 64, mwAccessFlags: RW };
    expect(() => b.qp.bindMw(t2, { bindInfo: info })).toThrow(/type 1 windows/);
    expect(() => b.qp.postSend({ wrId: 1, opcode: WrOpcode.BIND_MW, sgList: [], bindMw: { mw: t1, rkey: incRkey(t1.rkey), bindInfo: info } })).toThrow(PostError);
    expect(() => b.qp.postSend({ wrId: 1, opcode: WrOpcode.LOCAL_INV, sgList: [] })).toThrow(/invalidateRkey/);
    expect(() => b.qp.bindMw(t1, { bindInfo: { ...info, mwAccessFlags: Access.LOCAL_WRITE } })).toThrow(InvalidArgumentError);
    expect(() => b.qp.bindMw(t1, { bindInfo: { ...info, mr: undefined } })).toThrow(/bindInfo.mr/);
    expect(() => allocMw(b.pd, 3)).toThrow(InvalidArgumentError);

    const uc = await endpoint(cleanup, QpType.UC, 'verbs_mw');
    uc.qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_WRITE }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
    uc.qp.modifyQp({ qpState: QpState.RTR, pathMtu: Mtu.MTU_1024, destQpNum: 1, rqPsn: 0, ahAttr: { dgid: uc.ctx.queryGid(1, 0), portNum: 1 } }, M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN);
    uc.qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
    expect(() => uc.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: 1, sgList: [] })).toThrow(/not supported on UC/);
    const ud = await endpoint(cleanup, QpType.UD, 'verbs_mw');
    const udMw = allocMw(ud.pd, MwType.TYPE_1);
    expect(() => ud.qp.bindMw(udMw, { bindInfo: { addr: 0, length: 0, mwAccessFlags: 0 } })).toThrow(/UD/);

    b.qp.bindMw(t1, { sendFlags: SIG, bindInfo: info });
    expect((await next(b.cq)).status).toBe(WcStatus.SUCCESS);
    // An MR under a bound window stays registered (rxe refuses too); a PD with windows stays allocated.
    expect(() => target.dereg()).toThrow(ResourceBusyError);
    expect(target.closed).toBe(false);
    t1.dealloc();
    t2.dealloc();
    expect(() => t1.rkey).toThrow(ResourceClosedError);
    target.dereg();
    udMw.dealloc();
    const pdMw = allocMw(ud.pd, MwType.TYPE_2);
    expect(() => ud.pd.dealloc()).toThrow(ResourceBusyError);
    pdMw.dealloc();
  });
});
