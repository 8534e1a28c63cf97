// The ibv_wr_* builder over the soft HCA: batches of every operation posted
// by wrComplete, inline data from unregistered memory, UD addressing,
// windows, and the misuse C leaves undefined refused here.
import { afterEach, describe, expect, it } from 'vitest';
import {
  Access,
  InvalidArgumentError,
  MwType,
  PostError,
  QpAttrMask as M,
  QpState,
  QpType,
  SendFlags,
  SendOpsFlags as O,
  WcFlags,
  WcOpcode,
  WcStatus,
  allocMw,
  createAh,
  createQpEx,
  incRkey,
  qpToQpEx,
  regMr,
  type CQ,
  type WorkCompletion,
} from '../src/index.js';
import { ALL, connectRc, endpoint } from './soft-pair.js';

const SIG = SendFlags.SIGNALED;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

const cap = { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 128 };

async function pair(sendOpsFlags: number) {
  const a = await endpoint(cleanup, QpType.RC, 'verbs_qpex');
  const b = await endpoint(cleanup, QpType.RC, 'verbs_qpex');
  const qp = createQpEx(a.pd, { qpType: QpType.RC, sendCq: a.cq, recvCq: a.cq, cap, sendOpsFlags });
  connectRc(qp, b.ctx, b.qp);
  connectRc(b.qp, a.ctx, qp);
  return { a, b, qp, qpx: qpToQpEx(qp) };
}

async function take(cq: CQ, n: number): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = [];
  while (out.length < n) out.push(await cq.next({ signal: AbortSignal.timeout(10_000) }));
  return out;
}

describe('createQpEx / qpToQpEx', () => {
  it('builds a batch of every RC operation and posts it with wrComplete', async () => {
    const { a, b, qp, qpx } = await pair(O.WITH_RDMA_WRITE | O.WITH_SEND_WITH_IMM | O.WITH_RDMA_READ | O.WITH_ATOMIC_FETCH_AND_ADD | O.WITH_ATOMIC_CMP_AND_SWP);
    expect(qpToQpEx(qp)).toBe(qpx);
    a.mr.buf.fill(0x11, 0, 256);
    new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset).setBigUint64(4096, 5n, true);
    b.qp.postRecv({ wrId: 90, sgList: [b.mr.sge(8192, 256)] });
    // Inline bytes come from anywhere: this array is not registered.
    const hello = new TextEncoder().encode('inline, from unregistered memory');

    qpx.wrStart();
    qpx.wrId = 1;
    qpx.wrFlags = SIG;
    qpx.wrRdmaWrite(b.mr.rkey, b.mr.addr + 100);
    qpx.wrSetSge(a.mr.lkey, a.mr.addr, 256);
    qpx.wrId = 2;
    qpx.wrSendImm(0x1234);
    qpx.wrSetInlineData(hello);
    qpx.wrId = 3;
    qpx.wrRdmaRead(b.mr.rkey, b.mr.addr + 100);
    qpx.wrSetSgeList([a.mr.sge(1024, 100), a.mr.sge(2048, 156)]);
    qpx.wrId = 4;
    qpx.wrAtomicFetchAdd(b.mr.rkey, b.mr.addr + 4096, 10n);
    qpx.wrSetSge(a.mr.lkey, a.mr.addr + 512, 8);
    qpx.wrId = 5;
    qpx.wrAtomicCmpSwp(b.mr.rkey, b.mr.addr + 4096, 15n, 100n);
    qpx.wrSetSge(a.mr.lkey, a.mr.addr + 520, 8);
    // Nothing is posted before wrComplete.
    expect(a.cq.poll(8)).toHaveLength(0);
    qpx.wrComplete();

    const wcs = await take(a.cq, 5);
    expect(wcs.map((w) => [w.wrId, w.status, w.opcode])).toEqual([
      [1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE],
      [2, WcStatus.SUCCESS, WcOpcode.SEND],
      [3, WcStatus.SUCCESS, WcOpcode.RDMA_READ],
      [4, WcStatus.SUCCESS, WcOpcode.FETCH_ADD],
      [5, WcStatus.SUCCESS, WcOpcode.COMP_SWAP],
    ]);
    expect(b.mr.buf.subarray(100, 356).every((x) => x === 0x11)).toBe(true);
    const recv = (await take(b.cq, 1))[0]!;
    expect([recv.wrId, recv.byteLen, recv.immData, recv.wcFlags & WcFlags.WITH_IMM]).toEqual([90, hello.length, 0x1234, WcFlags.WITH_IMM]);
    expect(new TextDecoder().decode(b.mr.buf.subarray(8192, 8192 + hello.length))).toBe('inline, from unregistered memory');
    expect(a.mr.buf.subarray(1024, 1124).every((x) => x === 0x11) && a.mr.buf.subarray(2048, 2204).every((x) => x === 0x11)).toBe(true);
    const av = new DataView(a.mr.buf.buffer, a.mr.buf.byteOffset);
    expect([av.getBigUint64(512, true), av.getBigUint64(520, true)]).toEqual([5n, 15n]);
    expect(new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset).getBigUint64(4096, true)).toBe(100n);
  });

  it('wrAbort drops the batch; the builder refuses what C leaves undefined', async () => {
    const { a, b, qp, qpx } = await pair(O.WITH_RDMA_WRITE | O.WITH_SEND);
    expect(() => qpx.wrRdmaWrite(b.mr.rkey, b.mr.addr)).toThrow(/no batch is open/);
    expect(() => qpx.wrComplete()).toThrow(InvalidArgumentError);
    qpx.wrStart();
    expect(() => qpx.wrStart()).toThrow(/a batch is open/);
    expect(() => qpx.wrSetSge(a.mr.lkey, a.mr.addr, 8)).toThrow(/no work request yet/);
    expect(() => qpx.wrRdmaRead(b.mr.rkey, b.mr.addr)).toThrow(/SendOpsFlags/);
    qpx.wrFlags = SIG;
    qpx.wrRdmaWrite(b.mr.rkey, b.mr.addr);
    qpx.wrSetSge(a.mr.lkey, a.mr.addr, 8);
    qpx.wrAbort();
    await new Promise((r) => setTimeout(r, 20));
    expect(a.cq.poll(4)).toHaveLength(0);
    expect(() => qpx.wrSetInlineData(new Uint8Array(200))).toThrow(/no batch is open/);

    // A bad WR in the batch: those before it are posted, PostError names it, the batch is closed.
    qpx.wrStart();
    qpx.wrId = 7;
    qpx.wrRdmaWrite(b.mr.rkey, b.mr.addr);
    qpx.wrSetSge(a.mr.lkey, a.mr.addr, 8);
    qpx.wrId = 8;
    qpx.wrRdmaWrite(b.mr.rkey, -1);
    let err: unknown;
    try {
      qpx.wrComplete();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PostError);
    expect((err as PostError).badWrIndex).toBe(1);
    expect((await take(a.cq, 1))[0]!.wrId).toBe(7);
    expect(() => qpx.wrAbort()).toThrow(/no batch is open/);
    qpx.wrStart();
    expect(() => qpx.wrSetInlineData(new Uint8Array(0))).toThrow(/no work request yet/);
    qpx.wrSend();
    expect(() => qpx.wrSetInlineData(new Uint8Array(cap.maxInlineData + 1))).toThrow(/maxInlineData/);
    expect(() => qpx.wrSetInlineDataList(['x'] as never)).toThrow(InvalidArgumentError);
    qpx.wrAbort();

    expect(() => qpToQpEx(b.qp)).toThrow(/createQpEx/);
    expect(() => createQpEx(a.pd, { qpType: QpType.UD, sendCq: a.cq, recvCq: a.cq, cap, sendOpsFlags: O.WITH_RDMA_WRITE })).toThrow(/EOPNOTSUPP/);
    expect(() => createQpEx(a.pd, { qpType: QpType.RC, sendCq: a.cq, recvCq: a.cq, cap, sendOpsFlags: 1 << 12 })).toThrow(/SendOpsFlags bits/);
    qp.destroy();
    expect(() => qpx.wrStart()).toThrow(/closed/);
  });

  it('UD: wrSetUdAddr names the destination of each send', async () => {
    const a = await endpoint(cleanup, QpType.UD, 'verbs_qpex');
    const b = await endpoint(cleanup, QpType.UD, 'verbs_qpex');
    const qp = createQpEx(a.pd, { qpType: QpType.UD, sendCq: a.cq, recvCq: a.cq, cap, sendOpsFlags: O.WITH_SEND | O.WITH_SEND_WITH_IMM });
    for (const q of [qp, b.qp]) {
      q.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x55 }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
      q.modifyQp({ qpState: QpState.RTR }, M.STATE);
      q.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
    }
    const ah = createAh(a.pd, { dgid: b.ctx.queryGid(1, 0), portNum: 1, udpPort: b.ctx.queryPort(1).udpPort });
    b.qp.postRecv([{ wrId: 1, sgList: [b.mr.sge(0, 1024)] }, { wrId: 2, sgList: [b.mr.sge(1024, 1024)] }]);
    const qpx = qpToQpEx(qp);
    qpx.wrStart();
    qpx.wrFlags = SIG;
    qpx.wrSend();
    qpx.wrSetInlineData(new Uint8Array([1, 2, 3]));
    qpx.wrSetUdAddr(ah, b.qp.qpNum, 0x55);
    qpx.wrSendImm(9);
    qpx.wrSetInlineDataList([new Uint8Array([4]), new Uint8Array([5, 6])]);
    qpx.wrSetUdAddr(ah, b.qp.qpNum, 0x55);
    qpx.wrComplete();
    expect((await take(a.cq, 2)).map((w) => w.status)).toEqual([0, 0]);
    const got = await take(b.cq, 2);
    // A UD receive starts with the 40-byte GRH.
    expect(got.map((w) => [w.wrId, w.byteLen, w.srcQp])).toEqual([
      [1, 43, qp.qpNum],
      [2, 43, qp.qpNum],
    ]);
    expect([...b.mr.buf.subarray(40, 43), ...b.mr.buf.subarray(1064, 1067)]).toEqual([1, 2, 3, 4, 5, 6]);
    ah.destroy();
    // The builder's inline staging memory is an MR of the PD while the QP lives, and goes with it.
    expect(() => a.pd.dealloc()).toThrow(/still used by 2 QPs, 2 MRs/);
    qp.destroy();
    expect(() => a.pd.dealloc()).toThrow(/still used by 1 QP, 1 MR$/);
  });

  it('binds and revokes a type 2 window from a batch', async () => {
    const { a, b, qp, qpx } = await pair(O.WITH_BIND_MW | O.WITH_LOCAL_INV | O.WITH_SEND_WITH_INV);
    const target = regMr(a.pd, 8192, ALL | Access.MW_BIND);
    const mw = allocMw(a.pd, MwType.TYPE_2);
    const rkey = incRkey(mw.rkey);
    qpx.wrStart();
    qpx.wrFlags = SIG;
    qpx.wrBindMw(mw, rkey, { mr: target, addr: target.addr, length: 4096, mwAccessFlags: Access.REMOTE_WRITE });
    qpx.wrLocalInv(rkey);
    qpx.wrComplete();
    expect((await take(a.cq, 2)).map((w) => [w.opcode, w.status])).toEqual([
      [WcOpcode.BIND_MW, 0],
      [WcOpcode.LOCAL_INV, 0],
    ]);
    // A's QP sends with invalidate to b, which has no such window: both ends fail.
    b.qp.postRecv({ wrId: 3, sgList: [b.mr.sge(0, 64)] });
    qpx.wrStart();
    qpx.wrSendInv(0x1234);
    qpx.wrComplete();
    expect((await take(a.cq, 1))[0]!.status).toBe(WcStatus.REM_INV_REQ_ERR);
    qp.destroy();
    mw.dealloc();
    target.dereg();
  });
});
