// The pre-serialised WR records: TS writes them, the addon's own decoder
// (the one postSend runs) turns them into ibv_send_wr/ibv_recv_wr, and a
// test-only export reports every field back.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SendFlags, WrOpcode } from '../src/enums.js';
import { PostError } from '../src/errors.js';
import type { RecvWr, SendWr } from '../src/provider.js';
import { tryVerbs } from '../src/native/load.js';
import { postThrough } from '../src/native/qp.js';
import { LAYOUT, RecvWrWriter, SendWrWriter, recvRecordSize, sendRecordSize } from '../src/native/wr-buffer.js';

const addon = tryVerbs();
const required = fs.existsSync('/usr/include/infiniband/verbs.h') || process.env.IBAL_NATIVE_REQUIRED === '1';

describe.skipIf(!addon && !required)('native WR buffer layout', () => {
  const a = addon!;
  const MAX_SGE = 4;
  const sendBuf = () => new ArrayBuffer(LAYOUT.wrBatch * sendRecordSize(MAX_SGE));

  it('agrees with the addon on every offset', () => {
    for (const [k, v] of Object.entries(LAYOUT)) expect([k, a.layout[k]]).toEqual([k, v]);
  });

  it('round-trips every send opcode with SGE lists, flags, immediate, RDMA and atomic fields', () => {
    const buf = sendBuf();
    const w = new SendWrWriter(buf, MAX_SGE, false);
    const sg = (n: number, base: number) =>
      Array.from({ length: n }, (_, i) => ({ addr: base + i * 4096 + 0x7f12_3456_0000, length: 100 + i, lkey: 0xfedc_ba90 + i }));
    const wrs: SendWr[] = [
      { wrId: 2 ** 53 - 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED | SendFlags.FENCE, sgList: sg(4, 0), rdma: { remoteAddr: 0x7fff_0000_1000, rkey: 0xffff_fffe } },
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 0xdead_beef, sgList: sg(1, 1), rdma: { remoteAddr: 8, rkey: 7 } },
      { wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.INLINE | SendFlags.SOLICITED, sgList: sg(2, 2) },
      { wrId: 3, opcode: WrOpcode.SEND_WITH_IMM, immData: 0x0102_0304, sgList: [] },
      { wrId: 4, opcode: WrOpcode.RDMA_READ, sgList: sg(3, 3), rdma: { remoteAddr: 0x1_0000_0000, rkey: 0x1234 } },
      { wrId: 5, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sgList: sg(1, 4), atomic: { remoteAddr: 0x2000_0008, rkey: 99, compareAdd: 0xffff_ffff_ffff_fffen, swap: 0x8000_0000_0000_0001n } },
      { wrId: 6, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sgList: sg(1, 5), atomic: { remoteAddr: 0x3000_0010, rkey: 100, compareAdd: -1n } },
    ];
    wrs.forEach((wr, i) => expect(w.write(i, wr)).toBeUndefined());
    const r = a.testDecodeSendWrs(buf, wrs.length, MAX_SGE, false, []);
    expect(r.bad).toBe(-1);
    expect(r.wrs).toHaveLength(wrs.length);
    r.wrs.forEach((got, i) => {
      const wr = wrs[i]!;
      expect(got.wrId).toBe(wr.wrId);
      expect(got.opcode).toBe(wr.opcode);
      expect(got.sendFlags).toBe(wr.sendFlags ?? 0);
      expect(got.sgList).toEqual(wr.sgList);
      expect(got.linked).toBe(true);
      const imm = wr.opcode === WrOpcode.RDMA_WRITE_WITH_IMM || wr.opcode === WrOpcode.SEND_WITH_IMM;
      expect(got.immData).toBe(imm ? wr.immData : 0);
      if (imm) {
        // ibv_send_wr.imm_data is big-endian: its in-memory bytes are the value's, high byte first.
        const be = new DataView(new ArrayBuffer(4));
        be.setUint32(0, got.immDataBe as number, true);
        expect(be.getUint32(0, false)).toBe(wr.immData);
      }
      if (wr.rdma) expect(got.rdma).toEqual(wr.rdma);
      if (wr.atomic) {
        expect(got.atomic).toEqual({
          remoteAddr: wr.atomic.remoteAddr,
          rkey: wr.atomic.rkey,
          compareAdd: BigInt.asUintN(64, wr.atomic.compareAdd),
          swap: BigInt.asUintN(64, wr.atomic.swap ?? 0n),
        });
      }
      if (!wr.rdma && !wr.atomic) expect(got.rdma).toBeUndefined();
    });
  });

  it('round-trips UD destinations and refuses a WR whose AH is not live, at its index', () => {
    const buf = sendBuf();
    const w = new SendWrWriter(buf, MAX_SGE, true);
    const ah = (id: number, closed = false) => ({ id, closed, attr: { dgid: new Uint8Array(16) }, destroy() {} });
    const base = { opcode: WrOpcode.SEND, sgList: [{ addr: 4096, length: 64, lkey: 5 }] };
    expect(w.write(0, { ...base, wrId: 10, ud: { ah: ah(3), remoteQpn: 0xffffff, remoteQkey: 0x8001_0000 } })).toBeUndefined();
    expect(w.write(1, { ...base, wrId: 11, ud: { ah: ah(9), remoteQpn: 1, remoteQkey: 2 } })).toBeUndefined();
    const ok = a.testDecodeSendWrs(buf, 2, MAX_SGE, true, [3, 9]);
    expect(ok.bad).toBe(-1);
    expect(ok.wrs.map((x) => x.ud)).toEqual([
      { ah: 3, remoteQpn: 0xffffff, remoteQkey: 0x8001_0000 },
      { ah: 9, remoteQpn: 1, remoteQkey: 2 },
    ]);
    // The addon's AH table no longer holds 9: the decoder names WR 1.
    const gone = a.testDecodeSendWrs(buf, 2, MAX_SGE, true, [3]);
    expect([gone.bad, gone.wrs.length, gone.why]).toEqual([1, 1, 'UD work request without a live address handle']);
    // A destroyed AH is caught while writing.
    expect(w.write(0, { ...base, wrId: 12, ud: { ah: ah(3, true), remoteQpn: 1, remoteQkey: 2 } })).toMatch(/live address handle/);
    expect(w.write(0, { ...base, wrId: 13 })).toMatch(/live address handle/);
  });

  it('round-trips memory-window WRs: LOCAL_INV, SEND_WITH_INV, BIND_MW, and refuses a bind whose window or MR is gone', () => {
    const buf = sendBuf();
    const w = new SendWrWriter(buf, MAX_SGE, false);
    const handle = (id: number, closed = false) => ({ id, closed }) as never;
    const wrs: SendWr[] = [
      { wrId: 1, opcode: WrOpcode.LOCAL_INV, sendFlags: SendFlags.SIGNALED, invalidateRkey: 0x8000_12ab, sgList: [] },
      { wrId: 2, opcode: WrOpcode.SEND_WITH_INV, invalidateRkey: 0xffff_ff01, sgList: [{ addr: 4096, length: 64, lkey: 5 }] },
      {
        wrId: 3,
        opcode: WrOpcode.BIND_MW,
        sendFlags: SendFlags.SIGNALED,
        sgList: [],
        bindMw: { mw: handle(21), rkey: 0x1234_5602, bindInfo: { mr: handle(22), addr: 0x7f12_3456_7000, length: 2 ** 33, mwAccessFlags: 0x26 } },
      },
    ];
    wrs.forEach((wr, i) => expect(w.write(i, wr)).toBeUndefined());
    const r = a.testDecodeSendWrs(buf, 3, MAX_SGE, false, [21, 22]);
    expect(r.bad).toBe(-1);
    expect(r.wrs.map((x) => [x.opcode, x.invalidateRkey, x.immData, x.rdma])).toEqual([
      [WrOpcode.LOCAL_INV, 0x8000_12ab, 0xab12_0080, undefined],
      [WrOpcode.SEND_WITH_INV, 0xffff_ff01, 0x01ff_ffff, undefined],
      [WrOpcode.BIND_MW, undefined, 0, undefined],
    ]);
    expect(r.wrs[2]!.bindMw).toEqual({ mw: 21, rkey: 0x1234_5602, mr: 22, addr: 0x7f12_3456_7000, length: 2 ** 33, mwAccessFlags: 0x26 });
    // The binding no longer holds window 21, then MR 22: the decoder names the bind.
    expect(a.testDecodeSendWrs(buf, 3, MAX_SGE, false, [22])).toMatchObject({ bad: 2, why: 'BIND_MW names a deallocated window' });
    expect(a.testDecodeSendWrs(buf, 3, MAX_SGE, false, [21])).toMatchObject({ bad: 2, why: 'BIND_MW names a deregistered MR' });
    // Closed ones are caught while writing; unbinding (length 0) needs no MR.
    const unbind = { wrId: 4, opcode: WrOpcode.BIND_MW, sgList: [], bindMw: { mw: handle(21), rkey: 1, bindInfo: { mr: undefined, addr: 0, length: 0, mwAccessFlags: 0 } } };
    expect(w.write(0, unbind)).toBeUndefined();
    expect((a.testDecodeSendWrs(buf, 1, MAX_SGE, false, [21]).wrs[0]!.bindMw as { mr: number }).mr).toBe(0);
    expect(w.write(0, { ...unbind, bindMw: { ...unbind.bindMw, mw: handle(21, true) } })).toMatch(/deallocated window/);
    expect(w.write(0, { ...unbind, bindMw: { ...unbind.bindMw, bindInfo: { ...unbind.bindMw.bindInfo, mr: handle(22, true) } } })).toMatch(/deregistered MR/);
  });

  it('round-trips receive WRs', () => {
    const buf = new ArrayBuffer(LAYOUT.wrBatch * recvRecordSize(MAX_SGE));
    const w = new RecvWrWriter(buf, MAX_SGE);
    const wrs: RecvWr[] = Array.from({ length: LAYOUT.wrBatch }, (_, i) => ({
      wrId: i * 1_000_003,
      sgList: Array.from({ length: i % (MAX_SGE + 1) }, (_, s) => ({ addr: 0x5555_0000 + i * 64 + s, length: s * 3, lkey: i ^ s })),
    }));
    wrs.forEach((wr, i) => expect(w.write(i, wr)).toBeUndefined());
    const r = a.testDecodeRecvWrs(buf, wrs.length, MAX_SGE);
    expect(r.bad).toBe(-1);
    expect(r.wrs).toEqual(wrs.map((wr) => ({ wrId: wr.wrId, sgList: wr.sgList })));
  });

  // postThrough with the addon's decoder standing in for ibv_post_send: the
  // error index counts across batches, as bad_wr does.
  function post(wrs: SendWr[], liveAhs: number[] = []): { posted: number[]; error?: PostError } {
    const buf = sendBuf();
    const w = new SendWrWriter(buf, MAX_SGE, false);
    const posted: number[] = [];
    let why = '';
    try {
      postThrough(
        wrs,
        LAYOUT.wrBatch,
        (i, wr) => w.write(i, wr),
        (n) => {
          const r = a.testDecodeSendWrs(buf, n, MAX_SGE, false, liveAhs);
          for (const x of r.wrs) posted.push(x.wrId as number);
          why = r.why;
          return r.bad;
        },
        () => ({ errno: 22, code: 'EINVAL', why }),
      );
      return { posted };
    } catch (err) {
      return { posted, error: err as PostError };
    }
  }

  it('reports the first refused WR by index, after posting the ones before it, across batches', () => {
    const good = (i: number): SendWr => ({ wrId: i, opcode: WrOpcode.SEND, sgList: [{ addr: 64, length: 1, lkey: 1 }] });
    const all = post(Array.from({ length: 70 }, (_, i) => good(i)));
    expect(all.error).toBeUndefined();
    expect(all.posted).toEqual(Array.from({ length: 70 }, (_, i) => i));

    const tooMany = Array.from({ length: 50 }, (_, i) => good(i));
    tooMany[40] = { ...good(40), sgList: Array.from({ length: MAX_SGE + 1 }, () => ({ addr: 0, length: 1, lkey: 1 })) };
    const r1 = post(tooMany);
    expect(r1.error).toBeInstanceOf(PostError);
    expect(r1.error!.badWrIndex).toBe(40);
    expect(r1.error!.message).toMatch(/5 SGEs exceed max_send_sge 4/);
    expect(r1.posted).toEqual(Array.from({ length: 40 }, (_, i) => i));

    const badOp = Array.from({ length: 10 }, (_, i) => good(i));
    badOp[7] = { ...good(7), opcode: 42 };
    const r2 = post(badOp);
    expect([r2.error!.badWrIndex, r2.error!.code]).toEqual([7, 'ERR_IBAL_POST']);
    expect(r2.error!.message).toMatch(/unknown opcode/);
    expect(r2.posted).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});
