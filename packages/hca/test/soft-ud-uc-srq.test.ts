import { afterEach, describe, expect, it } from 'vitest';
import { EventType, QpAttrMask as M, QpState, QpType, SendFlags, SrqAttrMask, WcFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import type { AsyncEvent } from '../src/provider.js';
import { close, completions, connect, pair, side, type Side } from './helpers/pair.js';

const SIG = SendFlags.SIGNALED;
let live: Side[] = [];
afterEach(() => {
  close(...live);
  live = [];
});

describe('soft HCA UD', () => {
  it('delivers datagrams with a 40-byte GRH and the source QPN; checks the Q_Key', async () => {
    const [a, b] = await pair({ qpType: QpType.UD });
    live.push(a, b);
    const ah = a.pd.createAh({ dgid: b.ctx.queryGid(1, 0), udpPort: b.ctx.queryPort(1).udpPort });
    for (let i = 0; i < 3; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr + i * 8192, length: 8192, lkey: b.mr.lkey }] }]);
    a.mr.buf.set([1, 2, 3, 4, 5], 0);
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 99, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 5, lkey: a.mr.lkey }], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x11111111 } },
      // Wrong Q_Key: dropped and counted at the receiver.
      { wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 5, lkey: a.mr.lkey }], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x22 } },
      // High bit set: use the sending QP's own Q_Key, which matches.
      { wrId: 3, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 4096, lkey: a.mr.lkey }], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x80000000 } },
    ]);
    const s = await completions(a, 3);
    expect(s.every((w) => w.status === WcStatus.SUCCESS)).toBe(true);
    const r = await completions(b, 2);
    expect(r[0]!.byteLen).toBe(45);
    expect(r[0]!.wcFlags & (WcFlags.GRH | WcFlags.WITH_IMM)).toBe(WcFlags.GRH | WcFlags.WITH_IMM);
    expect(r[0]!.immData).toBe(99);
    expect(r[0]!.srcQp).toBe(a.qp.qpNum);
    expect([...b.mr.buf.subarray(40, 45)]).toEqual([1, 2, 3, 4, 5]);
    // IPv4 header in the second half of the GRH, source and destination 127.0.0.1.
    expect(b.mr.buf[20]).toBe(0x45);
    expect([...b.mr.buf.subarray(32, 36)]).toEqual([127, 0, 0, 1]);
    expect(r[1]!.byteLen).toBe(40 + 4096);
    expect(b.dev.counters.rxBadQkey).toBe(1);
  });

  it('a datagram larger than the MTU fails locally with LOC_LEN_ERR', async () => {
    const [a, b] = await pair({ qpType: QpType.UD });
    live.push(a, b);
    const ah = a.pd.createAh({ dgid: b.ctx.queryGid(1, 0), udpPort: b.ctx.queryPort(1).udpPort });
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 5000, lkey: a.mr.lkey }], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x11111111 } }]);
    expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('LOC_LEN_ERR');
  });
});

describe('soft HCA UC', () => {
  it('SEND and RDMA WRITE complete at the sender without ACKs', async () => {
    const [a, b] = await pair({ qpType: QpType.UC });
    live.push(a, b);
    for (let i = 0; i < 9000; i++) a.mr.buf[i] = i & 0xff;
    b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 9000, lkey: b.mr.lkey }] }]);
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 9000, lkey: a.mr.lkey }] },
      { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 9000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 10_000, rkey: b.mr.rkey } },
    ]);
    expect((await completions(a, 2)).map((w) => w.status)).toEqual([0, 0]);
    expect((await completions(b, 1))[0]!.byteLen).toBe(9000);
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.from(b.mr.buf.subarray(10_000, 19_000)).equals(Buffer.from(a.mr.buf.subarray(0, 9000)))).toBe(true);
  });
});

describe('soft HCA UC under loss', () => {
  it('delivers whole messages or none; a cut message leaves its receive WQE for the next', async () => {
    const [a, b] = await pair({ qpType: QpType.UC, mtu: 1, faultsB: { drop: 0.15, seed: 5 } });
    live.push(a, b);
    const size = 600; // three 256-byte packets
    for (let m = 0; m < 60; m++) for (let j = 0; j < size; j++) a.mr.buf[m * size + j] = (m * 31 + j) & 0xff;
    for (let i = 0; i < 60; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr + i * 1024, length: 1024, lkey: b.mr.lkey }] }]);
    for (let m = 0; m < 60; m++) {
      a.qp.postSend([{ wrId: m, opcode: WrOpcode.SEND_WITH_IMM, immData: m, sendFlags: SIG, sgList: [{ addr: a.mr.addr + m * size, length: size, lkey: a.mr.lkey }] }]);
    }
    await completions(a, 60);
    await new Promise((r) => setTimeout(r, 50));
    const got = [];
    const buf = Array.from({ length: 64 }, () => ({}) as never);
    let n: number;
    while ((n = b.cq.poll(64, buf)) > 0) got.push(...buf.slice(0, n).map((w: { wrId: number; immData: number; byteLen: number; status: number }) => ({ ...w })));
    expect(got.length).toBeGreaterThan(10);
    expect(got.length).toBeLessThan(60);
    // Receive WQEs are consumed in order and only by delivered messages.
    expect(got.map((w) => w.wrId)).toEqual(got.map((_, i) => i));
    for (const w of got) {
      expect(w.status).toBe(WcStatus.SUCCESS);
      expect(w.byteLen).toBe(size);
      const m = w.immData;
      expect(Buffer.from(b.mr.buf.subarray(w.wrId * 1024, w.wrId * 1024 + size)).equals(Buffer.from(a.mr.buf.subarray(m * size, (m + 1) * size)))).toBe(true);
    }
    expect(b.dev.counters.rxOutOfSequence).toBeGreaterThan(0);
  });
});

describe('SRQ', () => {
  it('feeds several QPs from one queue and fires the limit event once', async () => {
    const events: AsyncEvent[] = [];
    const a = await side({});
    const b = await side({});
    const c = await side({});
    live.push(a, b, c);
    b.ctx.setAsyncEventHandler((e) => events.push(e));
    const srq = b.pd.createSrq({ maxWr: 64, maxSge: 1, srqLimit: 0 });
    // Replace b's QP with one on the SRQ.
    b.qp.destroy();
    b.qp = b.pd.createQp({ qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, srq, cap: { maxSendWr: 16, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 0, maxInlineData: 0 } });
    connect(a, b, {});
    for (let i = 0; i < 8; i++) srq.postRecv([{ wrId: 100 + i, sgList: [{ addr: b.mr.addr + i * 64, length: 64, lkey: b.mr.lkey }] }]);
    srq.modify({ srqLimit: 5 }, SrqAttrMask.LIMIT);
    for (let i = 0; i < 4; i++) a.qp.postSend([{ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    const r = await completions(b, 4);
    expect(r.map((w) => w.wrId)).toEqual([100, 101, 102, 103]);
    await new Promise((res) => setTimeout(res, 10));
    expect(events.filter((e) => e.eventType === EventType.SRQ_LIMIT_REACHED)).toHaveLength(1);
    expect(srq.query().srqLimit).toBe(0);
    void c;
  });
});

describe('QP state', () => {
  it('entering ERR flushes posted receives in order; RESET empties the queues', async () => {
    const [a, b] = await pair();
    live.push(a, b);
    for (let i = 0; i < 3; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr, length: 8, lkey: b.mr.lkey }] }]);
    b.qp.modify({ qpState: QpState.ERR }, M.STATE);
    const r = await completions(b, 3);
    expect(r.map((w) => [w.wrId, wcStatusName(w.status)])).toEqual([
      [0, 'WR_FLUSH_ERR'],
      [1, 'WR_FLUSH_ERR'],
      [2, 'WR_FLUSH_ERR'],
    ]);
    b.qp.modify({ qpState: QpState.RESET }, M.STATE);
    expect(b.qp.state).toBe(QpState.RESET);
  });
});
