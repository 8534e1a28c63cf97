// The verbs API end to end over the real soft RoCEv2 provider: the same
// calls a libibverbs program makes, two devices on loopback.
import { afterEach, describe, expect, it } from 'vitest';
import {
  Access,
  EventType,
  QpAttrMask as M,
  QpState,
  QpType,
  SendFlags,
  WcOpcode,
  WorkCompletionError,
  WrOpcode,
  createAh,
  createQp,
  regMr,
} from '../src/index.js';
import { connectRc, endpoint as endpointOf, rcPair as rcPairOf } from './soft-pair.js';

const SIG = SendFlags.SIGNALED;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});
const endpoint = (qpType: number = QpType.RC) => endpointOf(cleanup, qpType);
const rcPair = () => rcPairOf(cleanup);

describe('verbs over the soft HCA', () => {
  it('RC: SEND with immediate, RDMA WRITE, READ and both atomics', async () => {
    const [a, b] = await rcPair();
    a.mr.buf.set(new TextEncoder().encode('hello, verbs'), 0);
    b.qp.postRecv({ wrId: 7, sgList: [b.mr.sge(0, 100)] });
    a.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 42, sendFlags: SIG, sgList: [a.mr.sge(0, 12)] });
    const r = await b.cq.next({ throwOnError: true });
    expect([r.wrId, r.opcode, r.byteLen, r.immData]).toEqual([7, WcOpcode.RECV, 12, 42]);
    expect(new TextDecoder().decode(b.mr.buf.subarray(0, 12))).toBe('hello, verbs');
    expect((await a.cq.next({ throwOnError: true })).opcode).toBe(WcOpcode.SEND);

    a.qp.postSend([
      { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 5000)], rdma: { remoteAddr: b.mr.addr + 8192, rkey: b.mr.rkey } },
      { wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [a.mr.sge(20_000, 5000)], rdma: { remoteAddr: b.mr.addr + 8192, rkey: b.mr.rkey } },
      { wrId: 4, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [a.mr.sge(40_000, 8)], atomic: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 3n } },
      { wrId: 5, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [a.mr.sge(40_008, 8)], atomic: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 3n, swap: 10n } },
    ]);
    const got: number[] = [];
    for await (const wc of a.cq) {
      expect(wc.status).toBe(0);
      got.push(wc.wrId);
      if (got.length === 4) break;
    }
    expect(got).toEqual([2, 3, 4, 5]);
    expect(Buffer.from(a.mr.buf.subarray(20_000, 25_000)).equals(Buffer.from(a.mr.buf.subarray(0, 5000)))).toBe(true);
    const view = new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset);
    expect(view.getBigUint64(64, true)).toBe(10n);
  });

  it('resize keeps the queued completions in order and makes room for more (ibv_resize_cq)', async () => {
    const [a, b] = await rcPair();
    const cq = a.ctx.createCq(4);
    const qp = createQp(a.pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 4, maxRecvWr: 64 } });
    const bqp = createQp(b.pd, { qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, cap: { maxSendWr: 64, maxRecvWr: 1 } });
    connectRc(qp, b.ctx, bqp);
    connectRc(bqp, a.ctx, qp);
    // Receives complete on a's CQ before a's responder ACKs; b's send completions say they are queued there.
    const sends = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) qp.postRecv({ wrId: i, sgList: [a.mr.sge(0, 64)] });
      for (let i = 0; i < n; i++) bqp.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [b.mr.sge(0, 8)] });
      for (let i = 0; i < n; i++) await b.cq.next({ throwOnError: true });
    };
    await sends(0, 3);
    expect(() => cq.resize(2)).toThrow(/3 completions are queued/);
    expect(() => cq.resize(0)).toThrow(/positive integer/);
    expect(() => cq.resize(a.ctx.queryDevice().maxCqe + 1)).toThrow(/maxCqe/);
    cq.resize(64);
    expect(cq.cqe).toBe(64);
    // Forty more fit where four did not; the three queued before the resize come first.
    await sends(3, 40);
    const ids: number[] = [];
    for (let got = cq.poll(64); got.length > 0; got = cq.poll(64)) ids.push(...got.map((w) => w.wrId));
    expect(ids).toEqual(Array.from({ length: 43 }, (_, i) => i));
    qp.destroy();
    bqp.destroy();
    cq.destroy();
  });

  it('UD through an address handle', async () => {
    const a = await endpoint(QpType.UD);
    const b = await endpoint(QpType.UD);
    for (const e of [a, b]) {
      e.qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x1234 }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
      e.qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
      e.qp.modifyQp({ qpState: QpState.RTS, sqPsn: 1 }, M.STATE | M.SQ_PSN);
    }
    const ah = createAh(a.pd, { dgid: b.ctx.queryGid(1, 0), portNum: 1, udpPort: b.ctx.queryPort(1).udpPort });
    b.qp.postRecv({ wrId: 1, sgList: [b.mr.sge(0, 2048)] });
    a.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG | SendFlags.INLINE, sgList: [a.mr.sge(0, 32)], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x1234 } });
    const wc = await b.cq.next({ throwOnError: true });
    expect(wc.byteLen).toBe(72);
    expect(wc.srcQp).toBe(a.qp.qpNum);
    ah.destroy();
  });

  it("registers an MR of the device's whole maxMrSize (4 GiB): it used to abort the process", async () => {
    const { ctx, pd } = await endpoint();
    const max = ctx.queryDevice().maxMrSize;
    // Its shared region would pass the 4 GiB Node lets external memory have;
    // the heap serves it instead (its pages are only reserved, not touched).
    const mr = regMr(pd, max, Access.LOCAL_WRITE | Access.REMOTE_READ);
    expect(mr.buf.length).toBe(max);
    mr.buf[max - 1] = 7;
    expect(mr.buf[max - 1]).toBe(7);
    mr.dereg();
  });

  it('a bad rkey surfaces as WorkCompletionError REM_ACCESS_ERR; the responder gets QP_ACCESS_ERR', async () => {
    const [a, b] = await rcPair();
    a.qp.postSend({ wrId: 9, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 8)], rdma: { remoteAddr: b.mr.addr, rkey: 0x1234 } });
    const err = await a.cq.next({ throwOnError: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkCompletionError);
    expect((err as WorkCompletionError).code).toBe('ERR_IBAL_WC_REM_ACCESS_ERR');
    expect(a.qp.queryQp().qpState).toBe(QpState.ERR);
    await new Promise((r) => setTimeout(r, 10));
    expect(b.events.map((e) => e.eventType)).toContain(EventType.QP_ACCESS_ERR);
    expect(b.events.map((e) => e.eventType)).toContain(EventType.PORT_ACTIVE);
  });

  it('a CQ that overflows raises CQ_ERR and the QP that overflowed it QP_FATAL', async () => {
    const a = await endpoint();
    const b = await endpoint();
    const small = a.ctx.createCq(2);
    const qp = createQp(a.pd, { qpType: QpType.RC, sendCq: small, recvCq: small, cap: { maxSendWr: 16, maxRecvWr: 1 } });
    connectRc(qp, b.ctx, b.qp);
    connectRc(b.qp, a.ctx, qp);
    for (let i = 0; i < 4; i++) qp.postSend({ wrId: i, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [a.mr.sge(0, 8)], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } });
    const deadline = Date.now() + 5000;
    while (a.events.filter((e) => e.eventType !== EventType.PORT_ACTIVE).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(a.events.map((e) => e.eventType)).toEqual(expect.arrayContaining([EventType.CQ_ERR, EventType.QP_FATAL]));
    expect(qp.queryQp().qpState).toBe(QpState.ERR);
  });
});
