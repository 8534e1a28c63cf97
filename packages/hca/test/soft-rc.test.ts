import { afterEach, describe, expect, it } from 'vitest';
import { Access, Mtu, QpAttrMask, QpState, SendFlags, WcFlags, WcOpcode, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { close, completions, pair, type Side } from './helpers/pair.js';

const SIG = SendFlags.SIGNALED;
let live: Side[] = [];
afterEach(() => {
  close(...live);
  live = [];
});

async function rc(opts: Parameters<typeof pair>[0] = {}) {
  const p = await pair(opts);
  live.push(...p);
  return p;
}

function fill(mr: { buf: Uint8Array }, off: number, len: number, seed: number) {
  for (let i = 0; i < len; i++) mr.buf[off + i] = (i * 31 + seed) & 0xff;
}

describe('soft HCA RC', () => {
  it.each([0, 1, 255, 4096, 4097, 100_000])('SEND of %i bytes arrives intact', async (len) => {
    const [a, b] = await rc();
    fill(a.mr, 0, len, 7);
    b.qp.postRecv([{ wrId: 9, sgList: [{ addr: b.mr.addr, length: 200_000, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: len, lkey: a.mr.lkey }] }]);
    const [rwc] = await completions(b, 1);
    const [swc] = await completions(a, 1);
    expect(wcStatusName(rwc!.status)).toBe('SUCCESS');
    expect(rwc!.opcode).toBe(WcOpcode.RECV);
    expect(rwc!.byteLen).toBe(len);
    expect(rwc!.wrId).toBe(9);
    expect(rwc!.srcQp).toBe(a.qp.qpNum);
    expect(swc!.status).toBe(WcStatus.SUCCESS);
    expect(swc!.opcode).toBe(WcOpcode.SEND);
    expect(Buffer.from(b.mr.buf.subarray(0, len)).equals(Buffer.from(a.mr.buf.subarray(0, len)))).toBe(true);
  });

  it('SEND_WITH_IMM carries the immediate and gathers several SGEs', async () => {
    const [a, b] = await rc();
    fill(a.mr, 0, 10_000, 3);
    b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 5000, lkey: b.mr.lkey }, { addr: b.mr.addr + 8000, length: 9000, lkey: b.mr.lkey }] }]);
    a.qp.postSend([
      {
        wrId: 2,
        opcode: WrOpcode.SEND_WITH_IMM,
        immData: 0xdeadbeef,
        sendFlags: SIG,
        sgList: [{ addr: a.mr.addr, length: 3000, lkey: a.mr.lkey }, { addr: a.mr.addr + 3000, length: 7000, lkey: a.mr.lkey }],
      },
    ]);
    const [r] = await completions(b, 1);
    expect(r!.status).toBe(WcStatus.SUCCESS);
    expect(r!.wcFlags & WcFlags.WITH_IMM).toBeTruthy();
    expect(r!.immData).toBe(0xdeadbeef);
    expect(r!.byteLen).toBe(10_000);
    const got = Buffer.concat([b.mr.buf.subarray(0, 5000), b.mr.buf.subarray(8000, 13000)]);
    expect(got.equals(Buffer.from(a.mr.buf.subarray(0, 10_000)))).toBe(true);
  });

  it('RDMA WRITE and WRITE_WITH_IMM land in the remote MR', async () => {
    const [a, b] = await rc();
    fill(a.mr, 0, 300_000, 11);
    b.qp.postRecv([{ wrId: 5, sgList: [] }]);
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 200_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey } },
      { wrId: 2, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 77, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 200_000, length: 100_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 200_064, rkey: b.mr.rkey } },
    ]);
    const s = await completions(a, 2);
    expect(s.map((w) => [w.wrId, w.status, w.opcode])).toEqual([
      [1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE],
      [2, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE],
    ]);
    const [r] = await completions(b, 1);
    expect(r!.opcode).toBe(WcOpcode.RECV_RDMA_WITH_IMM);
    expect(r!.immData).toBe(77);
    expect(r!.byteLen).toBe(100_000);
    expect(Buffer.from(b.mr.buf.subarray(64, 300_064)).equals(Buffer.from(a.mr.buf.subarray(0, 300_000)))).toBe(true);
  });

  it.each([0, 8, 4096, 70_000])('RDMA READ of %i bytes', async (len) => {
    const [a, b] = await rc();
    fill(b.mr, 4096, len, 5);
    a.qp.postSend([{ wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 100, length: len, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 4096, rkey: b.mr.rkey } }]);
    const [w] = await completions(a, 1);
    expect(wcStatusName(w!.status)).toBe('SUCCESS');
    expect(w!.opcode).toBe(WcOpcode.RDMA_READ);
    expect(w!.byteLen).toBe(len);
    expect(Buffer.from(a.mr.buf.subarray(100, 100 + len)).equals(Buffer.from(b.mr.buf.subarray(4096, 4096 + len)))).toBe(true);
  });

  it('atomics: compare-and-swap and fetch-and-add return the original value', async () => {
    const [a, b] = await rc();
    const remote = new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset);
    const local = new DataView(a.mr.buf.buffer, a.mr.buf.byteOffset);
    remote.setBigUint64(16, 41n, true);
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + 16, rkey: b.mr.rkey, compareAdd: 1n } },
      { wrId: 2, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 8, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + 16, rkey: b.mr.rkey, compareAdd: 42n, swap: 0xffff_ffff_ffff_fff0n } },
      { wrId: 3, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 16, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + 16, rkey: b.mr.rkey, compareAdd: 1n, swap: 5n } },
    ]);
    const w = await completions(a, 3);
    expect(w.map((x) => [x.status, x.opcode])).toEqual([
      [WcStatus.SUCCESS, WcOpcode.FETCH_ADD],
      [WcStatus.SUCCESS, WcOpcode.COMP_SWAP],
      [WcStatus.SUCCESS, WcOpcode.COMP_SWAP],
    ]);
    expect(local.getBigUint64(0, true)).toBe(41n);
    expect(local.getBigUint64(8, true)).toBe(42n);
    expect(local.getBigUint64(16, true)).toBe(0xffff_ffff_ffff_fff0n);
    expect(remote.getBigUint64(16, true)).toBe(0xffff_ffff_ffff_fff0n);
  });

  it('segments at every path MTU and crosses the 24-bit PSN wrap', async () => {
    for (const mtu of [Mtu.MTU_256, Mtu.MTU_1024, Mtu.MTU_4096]) {
      const [a, b] = await rc({ mtu, psnA: 0xfffff0, psnB: 0xfffffe });
      fill(a.mr, 0, 50_000, mtu);
      for (let i = 0; i < 4; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr + i * 60_000, length: 60_000, lkey: b.mr.lkey }] }]);
      for (let i = 0; i < 4; i++) {
        a.qp.postSend([{ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 50_000, lkey: a.mr.lkey }] }]);
      }
      a.qp.postSend([{ wrId: 9, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 500_000, length: 50_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } }]);
      const s = await completions(a, 5);
      expect(s.every((w) => w.status === WcStatus.SUCCESS)).toBe(true);
      const r = await completions(b, 4);
      expect(r.map((w) => w.byteLen)).toEqual([50_000, 50_000, 50_000, 50_000]);
      expect(Buffer.from(a.mr.buf.subarray(500_000, 550_000)).equals(Buffer.from(a.mr.buf.subarray(0, 50_000)))).toBe(true);
      expect(a.qp.query().sqPsn).toBe((0xfffff0 + 4 * Math.ceil(50_000 / (128 << mtu)) + Math.ceil(50_000 / (128 << mtu))) & 0xffffff);
    }
  });

  it('unsignaled WRs complete silently; the next signaled one completes them all', async () => {
    const [a, b] = await rc();
    for (let i = 0; i < 10; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    for (let i = 0; i < 10; i++) {
      a.qp.postSend([{ wrId: i, opcode: WrOpcode.SEND, sendFlags: i === 9 ? SIG : 0, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    }
    const s = await completions(a, 1);
    expect(s[0]!.wrId).toBe(9);
    await completions(b, 10);
    expect(a.cq.poll(1, [{} as never])).toBe(0);
  });
});

describe('soft HCA RC acknowledgements', () => {
  it('an idle unsignaled tail is acknowledged by a probe, not failed, even with retry_cnt 0', async () => {
    const [a, b] = await rc({ maxSendWr: 16, retryCnt: 0 });
    for (let i = 0; i < 64; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    const send = (i: number) => a.qp.postSend([{ wrId: i, opcode: WrOpcode.SEND, sendFlags: 0, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    for (let i = 0; i < 10; i++) send(i);
    // Without ACKs the send queue would stay full; the probe gets them retired.
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 10; i < 26; i++) send(i);
    await new Promise((r) => setTimeout(r, 50));
    expect(a.qp.state).toBe(QpState.RTS);
    expect(a.cq.poll(4, [{} as never, {} as never, {} as never, {} as never])).toBe(0);
    expect((await completions(b, 26)).every((w) => w.status === WcStatus.SUCCESS)).toBe(true);
    expect(a.dev.counters.txTimeouts).toBe(0);
  });
});

describe('soft HCA RC errors', () => {
  it('a bad rkey gives REM_ACCESS_ERR, moves the requester to ERR and flushes later WRs in order', async () => {
    const [a, b] = await rc();
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey ^ 0x100 } },
      { wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey }] },
      { wrId: 3, opcode: WrOpcode.RDMA_WRITE, sendFlags: 0, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } },
    ]);
    const w = await completions(a, 3);
    expect(w.map((x) => [x.wrId, wcStatusName(x.status)])).toEqual([
      [1, 'REM_ACCESS_ERR'],
      [2, 'WR_FLUSH_ERR'],
      [3, 'WR_FLUSH_ERR'],
    ]);
    expect(a.qp.state).toBe(QpState.ERR);
    expect(b.qp.state).toBe(QpState.ERR);
    a.qp.postSend([{ wrId: 4, opcode: WrOpcode.SEND, sgList: [] }]);
    expect((await completions(a, 1))[0]!.status).toBe(WcStatus.WR_FLUSH_ERR);
  });

  it.each([
    ['out of bounds write', WrOpcode.RDMA_WRITE, (b: Side) => b.mr.addr + b.mr.length - 8, 16],
    ['out of bounds read', WrOpcode.RDMA_READ, (b: Side) => b.mr.addr - 8, 16],
    ['misaligned atomic', WrOpcode.ATOMIC_FETCH_AND_ADD, (b: Side) => b.mr.addr + 4, 8],
  ])('%s fails with a remote error', async (_name, opcode, addr, len) => {
    const [a, b] = await rc();
    const wr = { wrId: 1, opcode, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: len, lkey: a.mr.lkey }] };
    const target = { remoteAddr: addr(b), rkey: b.mr.rkey };
    a.qp.postSend([opcode >= WrOpcode.ATOMIC_CMP_AND_SWP ? { ...wr, atomic: { ...target, compareAdd: 1n } } : { ...wr, rdma: target }]);
    const [w] = await completions(a, 1);
    expect(['REM_ACCESS_ERR', 'REM_INV_REQ_ERR']).toContain(wcStatusName(w!.status));
    expect(a.qp.state).toBe(QpState.ERR);
  });

  it('missing remote permission gives REM_ACCESS_ERR', async () => {
    const [a, b] = await rc();
    const ro = b.pd.regMr(new Uint8Array(4096), Access.REMOTE_READ);
    live.push();
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey }], rdma: { remoteAddr: ro.addr, rkey: ro.rkey } }]);
    expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('REM_ACCESS_ERR');
  });

  it('a bad lkey gives LOC_PROT_ERR', async () => {
    const [a] = await rc();
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey + 1 }] },
      { wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] },
    ]);
    const w = await completions(a, 2);
    expect(w.map((x) => wcStatusName(x.status))).toEqual(['LOC_PROT_ERR', 'WR_FLUSH_ERR']);
  });

  it('a receive buffer too small gives LOC_LEN_ERR there and REM_INV_REQ_ERR at the sender', async () => {
    const [a, b] = await rc();
    b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 10, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 100, lkey: a.mr.lkey }] }]);
    expect(wcStatusName((await completions(b, 1))[0]!.status)).toBe('LOC_LEN_ERR');
    expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('REM_INV_REQ_ERR');
  });

  it('RNR retries exhausted give RNR_RETRY_EXC_ERR; an RNR retry succeeds once a receive is posted', async () => {
    const [a] = await rc({ rnrRetry: 2, minRnrTimer: 1 });
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('RNR_RETRY_EXC_ERR');

    const [c, d] = await rc({ rnrRetry: 7, minRnrTimer: 1 });
    c.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: c.mr.addr, length: 8, lkey: c.mr.lkey }] }]);
    await new Promise((r) => setTimeout(r, 30));
    d.qp.postRecv([{ wrId: 7, sgList: [{ addr: d.mr.addr, length: 8, lkey: d.mr.lkey }] }]);
    expect((await completions(c, 1))[0]!.status).toBe(WcStatus.SUCCESS);
    expect(c.dev.counters.rxRnrNaks).toBeGreaterThan(0);
  });

  it('INLINE data is read at post time: the buffer can be reused at once', async () => {
    const [a, b] = await rc();
    b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 256, lkey: b.mr.lkey }] }]);
    fill(a.mr, 0, 200, 5);
    const want = Buffer.from(a.mr.buf.subarray(0, 200));
    a.qp.postSend([{ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG | SendFlags.INLINE, sgList: [{ addr: a.mr.addr, length: 120, lkey: a.mr.lkey }, { addr: a.mr.addr + 120, length: 80, lkey: a.mr.lkey }] }]);
    a.mr.buf.fill(0, 0, 200);
    const [r] = await completions(b, 1);
    const [s] = await completions(a, 1);
    expect([wcStatusName(r!.status), wcStatusName(s!.status), r!.byteLen]).toEqual(['SUCCESS', 'SUCCESS', 200]);
    expect(Buffer.from(b.mr.buf.subarray(0, 200)).equals(want)).toBe(true);
  });

  it.each([
    ['destroyed', (qp: Side['qp']) => qp.destroy()],
    ['moved to ERR (as rdma_disconnect does)', (qp: Side['qp']) => qp.modify({ qpState: QpState.ERR }, QpAttrMask.STATE)],
  ] as const)('a QP %s right after its last receive completes still acknowledges it', async (_what, end) => {
    // Generous timeouts: without the ACK the sender fails however long it
    // waits, so only load-induced retries are ruled out.
    const [a, b] = await rc({ timeout: 14, retryCnt: 3 });
    b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    // The completion notification runs as a microtask of the packet's
    // handler, before the coalesced ACK's setImmediate: end the QP there.
    let ended = false;
    b.notify = () => {
      if (!ended) end(b.qp);
      ended = true;
    };
    b.cq.reqNotify(false);
    a.qp.postSend([{ wrId: 7, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    const [w] = await completions(a, 1);
    expect(ended).toBe(true);
    expect(wcStatusName(w!.status)).toBe('SUCCESS');
  });

  it('a peer that vanishes gives RETRY_EXC_ERR within the configured timeout', async () => {
    const [a, b] = await rc({ timeout: 12, retryCnt: 2 });
    b.dev.remove();
    live = live.filter((s) => s !== b);
    const t0 = performance.now();
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    const [w] = await completions(a, 1);
    const elapsed = performance.now() - t0;
    expect(wcStatusName(w!.status)).toBe('RETRY_EXC_ERR');
    // 3 attempts of 16.8 ms each; allow scheduling slack but not unbounded waiting.
    expect(elapsed).toBeGreaterThan(3 * 16);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('soft HCA RC under faults in one process', () => {
  it.each([3, 11, 29, 57])('atomics are executed exactly once and READs replayed correctly under loss and duplication (seed %i)', async (seed) => {
    const faults = { drop: 0.1, duplicate: 0.1, reorder: 0.05, seed };
    const [a, b] = await rc({ faultsA: faults, faultsB: { ...faults, seed: seed + 1 }, timeout: 8, retryCnt: 7, maxSendWr: 512 });
    for (let i = 0; i < 200_000; i++) b.mr.buf[i] = (i * 7) & 0xff;
    const counter = 300_000;
    const wrs = [];
    for (let i = 0; i < 200; i++) {
      wrs.push({ wrId: i, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 8 * i, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + counter, rkey: b.mr.rkey, compareAdd: 1n } });
      if (i % 20 === 0) {
        wrs.push({ wrId: 1000 + i, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 100_000, length: 50_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + i * 100, rkey: b.mr.rkey } });
      }
    }
    a.qp.postSend(wrs);
    const w = await completions(a, wrs.length, 60_000);
    expect(w.filter((x) => x.status !== WcStatus.SUCCESS).map((x) => wcStatusName(x.status))).toEqual([]);
    expect(w.map((x) => x.wrId)).toEqual(wrs.map((x) => x.wrId));
    const remote = new DataView(b.mr.buf.buffer, b.mr.buf.byteOffset);
    expect(remote.getBigUint64(counter, true)).toBe(200n);
    const local = new DataView(a.mr.buf.buffer, a.mr.buf.byteOffset);
    const origs = Array.from({ length: 200 }, (_, i) => Number(local.getBigUint64(8 * i, true)));
    expect(origs).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // The last READ (i = 180) must hold the remote bytes at 18_000.
    expect(Buffer.from(a.mr.buf.subarray(100_000, 150_000)).equals(Buffer.from(b.mr.buf.subarray(18_000, 68_000)))).toBe(true);
    expect(a.dev.counters.txRetransmits + b.dev.counters.rxDuplicate).toBeGreaterThan(0);
  });
});
