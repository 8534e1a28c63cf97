// Thousands of verbs calls drawn at random against the soft HCA, with
// arguments that are often wrong (null, negative, fractional, huge, of
// another type, closed resources, objects with bad fields): every call
// either works or throws an IbalError with a stable code, never a TypeError
// or RangeError from inside, an out-of-memory or an abort. Found: poll(2 ** 31)
// ran the process out of memory; regMr of the device's whole maxMrSize
// aborted it (a double free in the addon); a PD that was not a PD gave
// TypeErrors. Memory windows too: random binds, invalidations and window
// keys on the connected pair.
import { describe, expect, it } from 'vitest';
import { seeded } from '@ibal/tooling/seeded';
import { Access, IbalError, Mtu, MwType, SendFlags, WrOpcode, QpAttrMask as M, QpState, QpType, addSoftDevice, allocMw, createAh, createCqEx, createQp, createQpEx, createSrq, incRkey, openDevice, qpToQpEx, regMr, type CQ, type Context, type CqEx, type MR, type MW, type PD, type QP, type QpEx } from '../src/index.js';

const base = Number(process.env.VERBS_TEST_SEED ?? Math.floor(Math.random() * 1e6));

async function run(seed: number, iterations: number): Promise<string[]> {
  const r = seeded(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T,>(a: readonly T[]): T => a[int(a.length)]!;
  const dev = addSoftDevice({ name: `rc_${process.pid}_${seed}`, address: '127.0.0.1', port: 0 });
  const ctx = await openDevice(dev.name);
  const gid = ctx.queryGid(1, 0);
  // A peer device with an RC QP connected to one of ours, so that random
  // work requests really travel and its responder meets what they carry.
  const peerDev = addSoftDevice({ name: `rcp_${process.pid}_${seed}`, address: '127.0.0.1', port: 0 });
  const peerCtx = await openDevice(peerDev.name);
  const [qpA, qpB, mrA, peerMr, peerPd] = connectedPair(ctx, peerCtx);
  const windowMr = regMr(peerPd, 8192, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC | Access.MW_BIND);
  const peerMws: MW[] = [];
  const weird = (): unknown => pick([undefined, null, -1, 0, 1, 2, 3, 7, 64, 4096, 2 ** 31, 2 ** 32, 2 ** 53, -0, NaN, Infinity, 1.5, '1', 'x', {}, [], true, 1n, () => 1, new Uint8Array(4), { addr: 0, length: 4, lkey: 0 }]);
  const num = (): unknown => (r() < 0.6 ? pick([0, 1, 2, 3, 4, 8, 16, 64, 100, 4096, 65536]) : weird());
  const pds: unknown[] = [ctx.allocPd()];
  const mrs: MR[] = [];
  const cqs: unknown[] = [ctx.createCq(16)];
  const qps: unknown[] = [];
  const ahs: unknown[] = [];
  const srqs: unknown[] = [];
  const mws: unknown[] = [];
  const qpxs: QpEx[] = [];
  const cqxs: CqEx[] = [];
  const some = (list: unknown[]): any => (list.length && r() < 0.9 ? pick(list) : weird()); // eslint-disable-line @typescript-eslint/no-explicit-any
  const sge = (): unknown => {
    if (mrs.length && r() < 0.7) {
      try {
        return pick(mrs).sge(num() as number, num() as number);
      } catch {
        /* a bad range: use a raw one */
      }
    }
    return r() < 0.5 ? { addr: num(), length: num(), lkey: num() } : weird();
  };
  const wr = (): unknown =>
    r() < 0.85
      ? {
          wrId: num(),
          opcode: r() < 0.7 ? int(11) : weird(),
          sendFlags: r() < 0.7 ? pick([0, 1, 2, 4, 8, 3]) : weird(),
          sgList: r() < 0.8 ? Array.from({ length: int(4) }, sge) : weird(),
          rdma: r() < 0.5 ? { remoteAddr: num(), rkey: num() } : undefined,
          atomic: r() < 0.2 ? { remoteAddr: num(), rkey: num(), compareAdd: num(), swap: num() } : undefined,
          imm: r() < 0.2 ? num() : undefined,
        }
      : weird();
  const bindInfo = (): unknown =>
    r() < 0.8 ? { mr: mrs.length && r() < 0.7 ? pick(mrs) : weird(), addr: num(), length: num(), mwAccessFlags: r() < 0.7 ? pick([0, 2, 4, 6, 8, 32, 38]) : weird() } : weird();
  const windowKey = (): number => (peerMws.length && r() < 0.8 ? pick(peerMws).rkey : r() < 0.5 ? windowMr.rkey : int(2 ** 32));
  const ah = (): unknown => (r() < 0.8 ? { dgid: r() < 0.7 ? gid : weird(), portNum: r() < 0.8 ? 1 : num(), udpPort: num(), sl: num(), hopLimit: num() } : weird());
  const attr = (): unknown =>
    r() < 0.85
      ? { qpState: r() < 0.8 ? int(7) : weird(), pkeyIndex: num(), portNum: r() < 0.7 ? 1 : num(), qpAccessFlags: num(), pathMtu: r() < 0.7 ? 1 + int(5) : weird(), destQpNum: num(), rqPsn: num(), sqPsn: num(), maxDestRdAtomic: num(), maxRdAtomic: num(), minRnrTimer: num(), timeout: num(), retryCnt: num(), rnrRetry: num(), qkey: num(), ahAttr: ah() }
      : weird();
  const calls: (() => unknown)[] = [
    () => mrs.push(regMr(some(pds) as PD, num() as number, num() as number)),
    () => mrs.push(regMr(some(pds) as PD, (r() < 0.5 ? new Uint8Array(int(65536)) : weird()) as Uint8Array, num() as number)),
    () => (mrs.length ? pick(mrs).dereg() : undefined),
    () => pds.push(ctx.allocPd()),
    () => some(pds).dealloc?.(),
    () => cqs.push(ctx.createCq(num() as number)),
    () => some(cqs).poll?.(num()),
    () => some(cqs).destroy?.(),
    () => some(cqs).reqNotify?.(r() < 0.5),
    () =>
      qps.push(
        createQp(some(pds) as PD, (r() < 0.8 ? { qpType: r() < 0.8 ? pick([2, 3, 4, 8]) : weird(), sendCq: some(cqs) as CQ, recvCq: some(cqs) as CQ, cap: r() < 0.8 ? { maxSendWr: num(), maxRecvWr: num(), maxSendSge: num(), maxRecvSge: num(), maxInlineData: num() } : weird(), srq: r() < 0.1 ? some(srqs) : undefined } : weird()) as never),
      ),
    () => some(qps).modifyQp?.(attr(), r() < 0.7 ? int(1 << 21) : weird()),
    () => some(qps).queryQp?.(),
    () => (some(qps) as QP).postSend?.((r() < 0.8 ? wr() : Array.from({ length: int(3) }, wr)) as never),
    () => some(qps).postRecv?.(r() < 0.8 ? { wrId: num(), sgList: r() < 0.8 ? Array.from({ length: int(3) }, sge) : weird() } : weird()),
    () => some(qps).destroy?.(),
    () => ahs.push(createAh(some(pds) as PD, ah() as never)),
    () => some(ahs).destroy?.(),
    () => srqs.push(createSrq(some(pds) as PD, (r() < 0.8 ? { maxWr: num(), maxSge: num(), srqLimit: num() } : weird()) as never)),
    () => some(srqs).postRecv?.({ wrId: num(), sgList: Array.from({ length: int(3) }, sge) }),
    () => some(srqs).destroy?.(),
    () => ctx.queryPort(num() as number),
    () => ctx.queryGid(num() as number, num() as number),
    () => ctx.queryDevice(),
    () => qpB.postRecv({ wrId: i0++, sgList: [peerMr.sge(int(4096), int(4096))] }),
    // Well-formed requests on the connected QP whose remote side is often
    // wrong (rkey, address past the MR, length), so the peer's responder
    // answers with NAKs and the QP errors and flushes.
    () =>
      qpA.postSend({
        wrId: i0++,
        opcode: pick([WrOpcode.SEND, WrOpcode.SEND_WITH_IMM, WrOpcode.RDMA_WRITE, WrOpcode.RDMA_WRITE_WITH_IMM, WrOpcode.RDMA_READ, WrOpcode.ATOMIC_CMP_AND_SWP, WrOpcode.ATOMIC_FETCH_AND_ADD]),
        sendFlags: SendFlags.SIGNALED,
        sgList: [mrA.sge(8 * int(512), pick([0, 1, 8, 8, 100, 4096]))],
        rdma: { remoteAddr: peerMr.addr + pick([0, 8, 4096, 8184, 8192, 1 << 20]), rkey: r() < 0.8 ? peerMr.rkey : int(2 ** 32) },
        atomic: { remoteAddr: peerMr.addr + pick([0, 8, 4, 8192]), rkey: r() < 0.8 ? peerMr.rkey : int(2 ** 32), compareAdd: 1n, swap: 2n },
        imm: 7,
      } as never),
    () => (some(cqs) as CQ).poll?.(16),
    () => mws.push(allocMw(some(pds) as PD, (r() < 0.8 ? pick([MwType.TYPE_1, MwType.TYPE_2]) : weird()) as number)),
    () => some(mws).dealloc?.(),
    () => some(qps).bindMw?.(some(mws), r() < 0.8 ? { wrId: num(), sendFlags: r() < 0.7 ? pick([0, 1, 2]) : weird(), bindInfo: bindInfo() } : weird()),
    () =>
      (some(qps) as QP).postSend?.({
        wrId: num(),
        opcode: pick([WrOpcode.LOCAL_INV, WrOpcode.BIND_MW, WrOpcode.SEND_WITH_INV]),
        sgList: [],
        invalidateRkey: num(),
        bindMw: r() < 0.8 ? { mw: some(mws), rkey: num(), bindInfo: bindInfo() } : weird(),
      } as never),
    // Windows over the peer's MR, bound by its QP (type 1 and 2, sometimes
    // out of range or without rights), used, overrun and revoked from here.
    () => {
      const mw = allocMw(qpB.pd, pick([MwType.TYPE_1, MwType.TYPE_2]));
      peerMws.push(mw);
      const info = { mr: windowMr, addr: windowMr.addr + 8 * int(1100), length: pick([0, 8, 64, 4096]), mwAccessFlags: pick([2, 4, 6, 14, 38]) };
      if (mw.type === MwType.TYPE_1) qpB.bindMw(mw, { wrId: i0++, sendFlags: SendFlags.SIGNALED, bindInfo: info });
      else qpB.postSend({ wrId: i0++, opcode: WrOpcode.BIND_MW, sendFlags: SendFlags.SIGNALED, sgList: [], bindMw: { mw, rkey: incRkey(mw.rkey), bindInfo: info } });
    },
    () =>
      qpA.postSend({
        wrId: i0++,
        opcode: pick([WrOpcode.RDMA_WRITE, WrOpcode.RDMA_READ, WrOpcode.ATOMIC_FETCH_AND_ADD, WrOpcode.SEND_WITH_INV]),
        sendFlags: SendFlags.SIGNALED,
        sgList: [mrA.sge(8 * int(512), 8)],
        rdma: { remoteAddr: windowMr.addr + pick([0, 8, 4096, 8184, 8192]), rkey: windowKey() },
        atomic: { remoteAddr: windowMr.addr + pick([0, 8, 4096]), rkey: windowKey(), compareAdd: 1n },
        invalidateRkey: windowKey(),
      } as never),
    () => qpB.postSend({ wrId: i0++, opcode: WrOpcode.LOCAL_INV, sendFlags: SendFlags.SIGNALED, sgList: [], invalidateRkey: windowKey() }),
    () => (peerMws.length ? peerMws.splice(int(peerMws.length), 1)[0]!.dealloc() : undefined),
    // The extended QP and CQ: builders fed random operations, setters and arguments.
    () => {
      const cq = createCqEx(ctx, (r() < 0.8 ? { cqe: num(), wcFlags: r() < 0.6 ? pick([undefined, 0, 127, 255, 2175]) : weird() } : weird()) as never);
      cqxs.push(cq);
      qpxs.push(qpToQpEx(createQpEx(some(pds) as PD, (r() < 0.9 ? { qpType: pick([2, 3, 4]), sendCq: cq, recvCq: cq, cap: { maxSendWr: 8, maxRecvWr: 8, maxInlineData: pick([0, 16]) }, sendOpsFlags: r() < 0.8 ? int(1024) : weird() } : weird()) as never)));
    },
    () => {
      const x = qpxs.length ? pick(qpxs) : undefined;
      if (!x) return;
      const op = int(16);
      const f = [
        () => x.wrStart(),
        () => x.wrComplete(),
        () => x.wrAbort(),
        () => x.wrSend(),
        () => x.wrSendImm(num() as number),
        () => x.wrSendInv(num() as number),
        () => x.wrRdmaWrite(num() as number, num() as number),
        () => x.wrRdmaRead(num() as number, num() as number),
        () => x.wrAtomicFetchAdd(num() as number, num() as number, (r() < 0.5 ? 1n : weird()) as bigint),
        () => x.wrAtomicCmpSwp(num() as number, num() as number, 1n, (r() < 0.5 ? 2n : weird()) as bigint),
        () => x.wrBindMw(some(mws) as MW, num() as number, bindInfo() as never),
        () => x.wrLocalInv(num() as number),
        () => x.wrSetSge(num() as number, num() as number, num() as number),
        () => x.wrSetSgeList((r() < 0.7 ? Array.from({ length: int(3) }, sge) : weird()) as never),
        () => x.wrSetInlineData((r() < 0.7 ? new Uint8Array(int(32)) : weird()) as Uint8Array),
        () => x.wrSetUdAddr(some(ahs) as never, num() as number, num() as number),
      ][op]!;
      x.wrId = num() as number;
      x.wrFlags = (r() < 0.7 ? pick([0, 2]) : weird()) as number;
      f();
    },
    () => {
      const c = cqxs.length ? pick(cqxs) : undefined;
      if (!c) return;
      [() => c.startPoll(), () => c.nextPoll(), () => c.endPoll(), () => c.readByteLen(), () => c.readCompletionTs(), () => c.readCompletionWallclockNs(), () => c.wrId, () => c.destroy()][int(8)]!();
    },
  ];
  let i0 = 0;
  const untyped = new Set<string>();
  for (let i = 0; i < iterations; i++) {
    const k = int(calls.length);
    try {
      calls[k]!();
    } catch (e) {
      // Calling a method on null is the caller's own TypeError, raised before
      // any library code runs; only errors from inside the library count.
      const fromLibrary = (e as Error).stack?.split('\n')[1]?.includes('/src/') ?? false;
      if (fromLibrary && !(e instanceof IbalError && typeof e.code === 'string')) untyped.add(`call ${k}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
    }
    for (const list of [pds, mrs, cqs, qps, ahs, srqs, mws, qpxs, cqxs] as unknown[][]) if (list.length > 24) list.splice(0, list.length - 24);
    if (peerMws.length > 24) for (const mw of peerMws.splice(0, peerMws.length - 24)) mw.dealloc();
    // Let packets move now and then.
    if (i % 100 === 0) await new Promise((res) => setImmediate(res));
  }
  await new Promise((res) => setTimeout(res, 50));
  // The pair did carry work: completions (good, failed or flushed) came back.
  let completions = 0;
  for (let got = qpA.sendCq.poll(64).length; got > 0; got = qpA.sendCq.poll(64).length) completions += got;
  if (completions === 0) untyped.add('no work request on the connected pair ever completed');
  if (qpxs.length === 0 || cqxs.length === 0) untyped.add('no QpEx or CqEx was ever made');
  for (const q of qps) (q as QP).destroy?.();
  for (const x of qpxs) x.qp.destroy();
  dev.remove();
  peerDev.remove();
  return [...untyped];
}

function connectedPair(ctx: Context, peer: Context): [QP, QP, MR, MR, PD] {
  const ALL = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
  const end = (c: Context) => {
    const pd = c.allocPd();
    const cq = c.createCq(512);
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 256, maxRecvWr: 256, maxSendSge: 3, maxRecvSge: 3, maxInlineData: 64 } });
    return { qp, pd, mr: regMr(pd, 8192, ALL) };
  };
  const a = end(ctx);
  const b = end(peer);
  for (const [x, xc, y, yc] of [[a, ctx, b, peer], [b, peer, a, ctx]] as const) {
    x.qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: ALL }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
    x.qp.modifyQp(
      { qpState: QpState.RTR, pathMtu: Mtu.MTU_1024, destQpNum: y.qp.qpNum, rqPsn: 0, maxDestRdAtomic: 4, minRnrTimer: 1, ahAttr: { dgid: yc.queryGid(1, 0), portNum: 1, udpPort: yc.queryPort(1).udpPort } },
      M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
    );
    x.qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0, timeout: 8, retryCnt: 2, rnrRetry: 1, maxRdAtomic: 4 }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
    void xc;
  }
  return [a.qp, b.qp, a.mr, b.mr, b.pd];
}

describe(`verbs calls with random, often wrong, arguments (seeds from ${base})`, () => {
  for (const i of [0, 1, 2]) {
    it(`seed ${base + i}: every failure is an IbalError with a code`, async () => {
      expect(await run(base + i, 4000)).toEqual([]);
    }, 60_000);
  }
});
