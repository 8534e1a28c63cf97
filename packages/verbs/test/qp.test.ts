import { beforeEach, describe, expect, it } from 'vitest';
import {
  Access,
  CapacityError,
  InvalidArgumentError,
  NotFoundError,
  PostError,
  QpAttrMask as M,
  QpState,
  QpStateError,
  QpType,
  SendFlags,
  SrqAttrMask,
  WrOpcode,
  createAh,
  createQp,
  createSrq,
  regMr,
  type CQ,
  type Context,
  type MR,
  type PD,
  type QP,
  type SendWr,
} from '../src/index.js';
import { kHandle } from '../src/internal.js';
import type { CqDouble, QpDouble, SrqDouble } from './provider-double.js';
import { openDouble } from './helpers.js';

const dgid = new Uint8Array(16);

const toInit = {
  attr: { qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_WRITE },
  mask: M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS,
};
const toInitUd = { attr: { qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x11111111 }, mask: M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY };
const toRtr = {
  attr: { qpState: QpState.RTR, ahAttr: { dgid }, pathMtu: 3, destQpNum: 0x42, rqPsn: 0, maxDestRdAtomic: 1, minRnrTimer: 12 },
  mask: M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
};
const toRtrUc = { attr: toRtr.attr, mask: M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN };
const toRts = {
  attr: { qpState: QpState.RTS, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 },
  mask: M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC,
};

let ctx: Context;
let pd: PD;
let cq: CQ;
let mr: MR;

beforeEach(async () => {
  ({ ctx } = await openDouble());
  pd = ctx.allocPd();
  cq = ctx.createCq(64);
  mr = regMr(pd, 4096, Access.LOCAL_WRITE);
});

function makeQp(qpType: number, cap: Partial<Parameters<typeof createQp>[1]['cap']> = {}): QP {
  return createQp(pd, { qpType, sendCq: cq, recvCq: cq, cap: { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 2, maxInlineData: 32, ...cap } });
}

function toState(qp: QP, state: number): void {
  const ud = qp.qpType === QpType.UD;
  const steps = [
    ud ? toInitUd : toInit,
    ud ? { attr: { qpState: QpState.RTR }, mask: M.STATE } : qp.qpType === QpType.UC ? toRtrUc : toRtr,
    qp.qpType === QpType.RC ? toRts : { attr: { qpState: QpState.RTS, sqPsn: 0 }, mask: M.STATE | M.SQ_PSN },
  ];
  for (let s = QpState.INIT; s <= Math.min(state, QpState.RTS); s++) qp.modifyQp(steps[s - 1]!.attr, steps[s - 1]!.mask);
  if (state === QpState.SQD) qp.modifyQp({ qpState: QpState.SQD }, M.STATE);
  if (state === QpState.ERR) qp.modifyQp({ qpState: QpState.ERR }, M.STATE);
}

const h = (qp: QP): QpDouble => qp[kHandle] as QpDouble;

function send(opcode: number, extra: Partial<SendWr> = {}): SendWr {
  return { wrId: 1, opcode, sgList: [mr.sge(0, 16)], sendFlags: SendFlags.SIGNALED, ...extra };
}

function postErr(fn: () => void): PostError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PostError) return err;
    throw err;
  }
  throw new Error('expected a PostError');
}

describe('createQp', () => {
  it('hands the provider its own CQ handles and reports what it granted', () => {
    const pdh = pd[kHandle] as unknown as { capRoundUp: number };
    pdh.capRoundUp = 2;
    const qp = makeQp(QpType.RC, { maxSendSge: 1, maxInlineData: 0 });
    expect(h(qp).init.sendCq).toBe(cq[kHandle] as CqDouble);
    expect(h(qp).init.cap).toEqual({ maxSendWr: 8, maxRecvWr: 8, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 });
    expect(qp.cap).toEqual({ maxSendWr: 8, maxRecvWr: 8, maxSendSge: 3, maxRecvSge: 1, maxInlineData: 2 });
    expect(qp.qpType).toBe(QpType.RC);
    expect(qp.qpNum).toBe(h(qp).qpNum);
    expect(qp.state).toBe(QpState.RESET);
    expect(qp.sqSigAll).toBe(false);
  });

  it('defaults SGE counts to 1 and inline data to 0', () => {
    const qp = createQp(pd, { qpType: QpType.UD, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1 }, sqSigAll: true });
    expect(h(qp).init.cap).toEqual({ maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 });
    expect(h(qp).init.sqSigAll).toBe(true);
  });

  it('takes no receive capacity when the QP uses an SRQ', () => {
    const srq = createSrq(pd, { maxWr: 16 });
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap: { maxSendWr: 1, maxRecvWr: 99999 } });
    expect(h(qp).init.srq).toBe(srq[kHandle]);
    expect(qp.cap.maxRecvWr).toBe(0);
    expect(qp.srq).toBe(srq);
  });

  it('checks types and device limits', () => {
    const base = { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1 } };
    expect(() => createQp(pd, { ...base, qpType: 5 })).toThrow(/qpType must be/);
    expect(() => createQp(pd, { ...base, sendCq: {} as CQ })).toThrow(/sendCq must be a CQ/);
    expect(() => createQp(pd, { ...base, srq: {} as never })).toThrow(/srq must be an SRQ/);
    expect(() => createQp(pd, { ...base, sqSigAll: 1 as never })).toThrow(/sqSigAll/);
    expect(() => createQp(pd, { ...base, cap: undefined as never })).toThrow(/cap must be an object/);
    expect(() => createQp(pd, { ...base, cap: { maxSendWr: 1 } as never })).toThrow(/cap.maxRecvWr must be a non-negative integer, got undefined/);
    expect(() => createQp(pd, { ...base, cap: { maxSendWr: -1, maxRecvWr: 1 } })).toThrow(InvalidArgumentError);
    expect(() => createQp(pd, { ...base, cap: { maxSendWr: 129, maxRecvWr: 1 } })).toThrow(
      new CapacityError("createQp: cap.maxSendWr 129 exceeds the device's maxQpWr 128"),
    );
    expect(() => createQp(pd, { ...base, cap: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 5 } })).toThrow(CapacityError);
    expect(() => createQp(pd, { ...base, cap: { maxSendWr: 1, maxRecvWr: 1, maxInlineData: 65 } })).toThrow(CapacityError);
    expect(() => createQp(pd, null as never)).toThrow(InvalidArgumentError);
  });
});

describe('modifyQp', () => {
  it('walks RESET→INIT→RTR→RTS, handing the provider exactly what it was given', () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTS);
    expect(qp.state).toBe(QpState.RTS);
    expect(h(qp).modifications.map((m) => m.mask)).toEqual([toInit.mask, toRtr.mask, toRts.mask]);
    expect(h(qp).modifications[1]!.attr).toBe(toRtr.attr);
  });

  it('refuses transitions the state machine forbids, before the provider sees them', () => {
    const qp = makeQp(QpType.RC);
    expect(() => qp.modifyQp(toRtr.attr, toRtr.mask)).toThrow(new QpStateError('RESET→RTR is not a valid QP state transition for RC'));
    expect(h(qp).modifications).toHaveLength(0);
  });

  it('names missing attributes', () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTR);
    const err = (() => {
      try {
        qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
      } catch (e) {
        return e as QpStateError;
      }
    })()!;
    expect(err.message).toBe('RTR→RTS for RC requires IBV_QP_TIMEOUT, IBV_QP_RETRY_CNT, IBV_QP_RNR_RETRY, IBV_QP_MAX_QP_RD_ATOMIC');
    expect(err.missing).toEqual(['IBV_QP_TIMEOUT', 'IBV_QP_RETRY_CNT', 'IBV_QP_RNR_RETRY', 'IBV_QP_MAX_QP_RD_ATOMIC']);
  });

  it("validates against the provider's state, which can change on its own", () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTS);
    h(qp).state = QpState.ERR; // e.g. retries exhausted
    expect(() => qp.modifyQp(toRts.attr, toRts.mask)).toThrow(/ERR→RTS/);
    qp.modifyQp({ qpState: QpState.RESET }, M.STATE);
    expect(qp.state).toBe(QpState.RESET);
  });

  it('checks ports and read/atomic depths against the device', () => {
    const qp = makeQp(QpType.RC);
    expect(() => qp.modifyQp({ ...toInit.attr, portNum: 2 }, toInit.mask)).toThrow(NotFoundError);
    toState(qp, QpState.INIT);
    expect(() => qp.modifyQp({ ...toRtr.attr, ahAttr: { dgid, portNum: 3 } }, toRtr.mask)).toThrow(NotFoundError);
    expect(() => qp.modifyQp({ ...toRtr.attr, maxDestRdAtomic: 9 }, toRtr.mask)).toThrow(/maxQpRdAtom 8/);
    qp.modifyQp(toRtr.attr, toRtr.mask);
    expect(() => qp.modifyQp({ ...toRts.attr, maxRdAtomic: 9 }, toRts.mask)).toThrow(/maxQpInitRdAtom 8/);
  });

  it('returns what the provider reports from queryQp', () => {
    const qp = makeQp(QpType.UC);
    toState(qp, QpState.RTS);
    expect(qp.queryQp().qpState).toBe(QpState.RTS);
  });
});

describe('postSend', () => {
  it.each([
    [QpState.RESET, 'RESET'],
    [QpState.INIT, 'INIT'],
    [QpState.RTR, 'RTR'],
  ])('refuses sends in %s with EINVAL semantics', (state, name) => {
    const qp = makeQp(QpType.RC);
    toState(qp, state);
    const err = postErr(() => qp.postSend(send(WrOpcode.SEND)));
    expect(err.code).toBe('ERR_IBAL_POST_QP_STATE');
    expect(err.badWrIndex).toBe(0);
    expect(err.message).toBe(`work request 0: cannot post sends to a QP in ${name} (needs RTS, SQD, SQE or ERR)`);
    expect(h(qp).sent).toHaveLength(0);
  });

  it.each([QpState.RTS, QpState.SQD, QpState.ERR])('accepts sends in state %i (ERR flushes them in the provider)', (state) => {
    const qp = makeQp(QpType.RC);
    toState(qp, state);
    qp.postSend(send(WrOpcode.SEND));
    expect(h(qp).sent).toHaveLength(1);
  });

  it('posts the good prefix of a list and names the first bad WR', () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTS);
    const wrs = [send(WrOpcode.SEND, { wrId: 10 }), send(WrOpcode.SEND, { wrId: 11 }), send(99), send(WrOpcode.SEND, { wrId: 13 })];
    const err = postErr(() => qp.postSend(wrs));
    expect(err.badWrIndex).toBe(2);
    expect(err.code).toBe('ERR_IBAL_POST');
    expect(err.message).toBe('work request 2: unknown opcode 99');
    expect(h(qp).sent.map((w) => w.wrId)).toEqual([10, 11]);
  });

  it('passes through a PostError the provider raises', () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTS);
    h(qp).failSendAt = 1;
    const err = postErr(() => qp.postSend([send(WrOpcode.SEND), send(WrOpcode.SEND)]));
    expect(err.code).toBe('ERR_TEST_QUEUE_FULL');
    expect(err.badWrIndex).toBe(1);
  });

  it('does nothing for an empty list, whatever the state', () => {
    const qp = makeQp(QpType.RC);
    expect(() => qp.postSend([])).not.toThrow();
    expect(h(qp).sendBatches).toHaveLength(0);
  });

  it('reuses one array for single WRs and does not keep the caller\'s WR', () => {
    const qp = makeQp(QpType.RC);
    toState(qp, QpState.RTS);
    const wr = send(WrOpcode.SEND);
    qp.postSend(wr);
    qp.postSend(wr);
    const [a, b] = h(qp).sendBatches;
    expect(a).toBe(b);
    expect(a![0]).not.toBe(wr);
    expect(h(qp).sent).toHaveLength(2);
  });

  describe('opcodes per transport', () => {
    // BIND_MW needs a window, which this provider double cannot make: mw.test.ts runs it on the soft HCA.
    const all = Object.entries(WrOpcode).filter(([n]) => n !== 'BIND_MW');
    const allowed: Record<number, string[]> = {
      [QpType.RC]: all.map(([n]) => n),
      [QpType.UC]: ['RDMA_WRITE', 'RDMA_WRITE_WITH_IMM', 'SEND', 'SEND_WITH_IMM', 'LOCAL_INV'],
      [QpType.UD]: ['SEND', 'SEND_WITH_IMM'],
    };
    for (const qpType of [QpType.RC, QpType.UC, QpType.UD]) {
      const tname = qpType === QpType.RC ? 'RC' : qpType === QpType.UC ? 'UC' : 'UD';
      for (const [name, op] of all) {
        const ok = allowed[qpType]!.includes(name);
        it(`${tname} ${ok ? 'accepts' : 'refuses'} ${name}`, () => {
          const qp = makeQp(qpType);
          toState(qp, QpState.RTS);
          const atomic = op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD;
          const wr = send(op, {
            sgList: [mr.sge(0, atomic ? 8 : 16)],
            immData: 5,
            invalidateRkey: 9,
            rdma: { remoteAddr: 0x1000, rkey: 7 },
            atomic: { remoteAddr: 0x1000, rkey: 7, compareAdd: 1n, swap: 2n },
            ud: qpType === QpType.UD ? { ah: createAh(pd, { dgid }), remoteQpn: 5, remoteQkey: 0x11111111 } : undefined,
          });
          if (ok) {
            qp.postSend(wr);
            expect(h(qp).sent).toHaveLength(1);
          } else {
            expect(postErr(() => qp.postSend(wr)).message).toBe(`work request 0: ${name} is not supported on ${tname} QPs`);
          }
        });
      }
    }
  });

  describe('WR checks', () => {
    let qp: QP;
    beforeEach(() => {
      qp = makeQp(QpType.RC);
      toState(qp, QpState.RTS);
    });
    const cases: Array<[string, () => SendWr, RegExp]> = [
      ['a non-object', () => null as never, /not a work request object/],
      ['a non-number wrId', () => send(WrOpcode.SEND, { wrId: 'x' as never }), /wrId must be a number/],
      ['unknown send flags', () => send(WrOpcode.SEND, { sendFlags: 0x40 }), /unknown sendFlags 64/],
      ['too many SGEs', () => send(WrOpcode.SEND, { sgList: [mr.sge(0, 1), mr.sge(1, 1), mr.sge(2, 1)] }), /3 SGEs exceed maxSendSge 2/],
      ['a missing sgList', () => ({ wrId: 1, opcode: WrOpcode.SEND }) as never, /sgList must be an array/],
      ['a bad SGE', () => send(WrOpcode.SEND, { sgList: [{ addr: -1, length: 1, lkey: 1 }] }), /sgList\[0\]\.addr/],
      ['a bad SGE length', () => send(WrOpcode.SEND, { sgList: [{ addr: 0, length: 2 ** 32, lkey: 1 }] }), /sgList\[0\]\.length/],
      ['a bad lkey', () => send(WrOpcode.SEND, { sgList: [{ addr: 0, length: 1, lkey: 1.5 }] }), /sgList\[0\]\.lkey/],
      ['inline data over the limit', () => send(WrOpcode.SEND, { sendFlags: SendFlags.INLINE, sgList: [mr.sge(0, 20), mr.sge(0, 13)] }), /inline data of 33 bytes exceeds maxInlineData 32/],
      ['inline RDMA_READ', () => send(WrOpcode.RDMA_READ, { sendFlags: SendFlags.INLINE, rdma: { remoteAddr: 0, rkey: 1 } }), /INLINE is not valid for RDMA_READ/],
      ['WITH_IMM without immData', () => send(WrOpcode.SEND_WITH_IMM), /SEND_WITH_IMM needs immData/],
      ['an immData over 32 bits', () => send(WrOpcode.RDMA_WRITE_WITH_IMM, { immData: 2 ** 32, rdma: { remoteAddr: 0, rkey: 1 } }), /needs immData/],
      ['RDMA without rdma', () => send(WrOpcode.RDMA_WRITE), /RDMA_WRITE needs rdma/],
      ['a bad rkey', () => send(WrOpcode.RDMA_READ, { rdma: { remoteAddr: 0, rkey: -1 } }), /rdma.rkey/],
      ['a bad remote address', () => send(WrOpcode.RDMA_READ, { rdma: { remoteAddr: 0.5, rkey: 1 } }), /rdma.remoteAddr/],
      ['an atomic without atomic', () => send(WrOpcode.ATOMIC_FETCH_AND_ADD, { sgList: [mr.sge(0, 8)] }), /needs atomic/],
      ['a number compareAdd', () => send(WrOpcode.ATOMIC_FETCH_AND_ADD, { sgList: [mr.sge(0, 8)], atomic: { remoteAddr: 0, rkey: 1, compareAdd: 1 as never } }), /compareAdd must be a bigint/],
      ['a CAS without swap', () => send(WrOpcode.ATOMIC_CMP_AND_SWP, { sgList: [mr.sge(0, 8)], atomic: { remoteAddr: 0, rkey: 1, compareAdd: 1n } }), /needs atomic.swap/],
      ['an atomic with a 16-byte SGE', () => send(WrOpcode.ATOMIC_FETCH_AND_ADD, { sgList: [mr.sge(0, 16)], atomic: { remoteAddr: 0, rkey: 1, compareAdd: 1n } }), /exactly one SGE of 8 bytes/],
      ['an atomic with two SGEs', () => send(WrOpcode.ATOMIC_FETCH_AND_ADD, { sgList: [mr.sge(0, 4), mr.sge(4, 4)], atomic: { remoteAddr: 0, rkey: 1, compareAdd: 1n } }), /exactly one SGE of 8 bytes/],
    ];
    for (const [what, wr, msg] of cases) {
      it(`refuses ${what}`, () => {
        const err = postErr(() => qp.postSend(wr()));
        expect(err.message).toMatch(msg);
        expect(err.badWrIndex).toBe(0);
        expect(h(qp).sent).toHaveLength(0);
      });
    }
    it('accepts inline data up to the limit and atomics with one 8-byte SGE', () => {
      qp.postSend([
        send(WrOpcode.SEND, { sendFlags: SendFlags.INLINE, sgList: [mr.sge(0, 32)] }),
        send(WrOpcode.ATOMIC_CMP_AND_SWP, { sgList: [mr.sge(0, 8)], atomic: { remoteAddr: 8, rkey: 1, compareAdd: 0n, swap: 1n } }),
        send(WrOpcode.SEND, { sgList: [] }),
      ]);
      expect(h(qp).sent).toHaveLength(3);
    });
  });

  describe('UD', () => {
    let qp: QP;
    beforeEach(() => {
      qp = makeQp(QpType.UD);
      toState(qp, QpState.RTS);
    });

    it("hands the provider its AH handle, not the verbs wrapper, and leaves the caller's WR alone", () => {
      const ah = createAh(pd, { dgid });
      const wr = send(WrOpcode.SEND, { ud: { ah, remoteQpn: 0x77, remoteQkey: 0x11111111 } });
      qp.postSend(wr);
      qp.postSend([wr, wr]);
      const sent = h(qp).sent;
      expect(sent).toHaveLength(3);
      expect(sent[0]!.ud!.ah).toBe(ah[kHandle]);
      expect(sent[0]!.ud!.remoteQpn).toBe(0x77);
      expect(wr.ud!.ah).toBe(ah);
      qp.postSend(wr);
      const batches = h(qp).sendBatches;
      expect(batches[2]).toBe(batches[0]);
      expect(batches[0]).toHaveLength(1);
      expect(batches[1]).toHaveLength(2);
    });

    it.each([
      ['no ud', undefined, /needs ud/],
      ['a non-AH', { ah: {}, remoteQpn: 1, remoteQkey: 1 }, /must be an AH/],
      ['a bad remote QPN', 'qpn', /remoteQpn must be a 24-bit/],
      ['a bad remote qkey', 'qkey', /remoteQkey/],
    ])('refuses %s', (_what, ud, msg) => {
      const ah = createAh(pd, { dgid });
      const dest =
        ud === 'qpn'
          ? { ah, remoteQpn: 0x1000000, remoteQkey: 1 }
          : ud === 'qkey'
            ? { ah, remoteQpn: 1, remoteQkey: -1 }
            : (ud as never);
      expect(postErr(() => qp.postSend(send(WrOpcode.SEND, { ud: dest }))).message).toMatch(msg);
    });

    it('refuses a destroyed AH and one from another PD', () => {
      const ah = createAh(pd, { dgid });
      ah.destroy();
      expect(postErr(() => qp.postSend(send(WrOpcode.SEND, { ud: { ah, remoteQpn: 1, remoteQkey: 1 } }))).message).toMatch(/destroyed/);
      const otherPd = ctx.allocPd();
      const foreign = createAh(otherPd, { dgid });
      expect(postErr(() => qp.postSend(send(WrOpcode.SEND, { ud: { ah: foreign, remoteQpn: 1, remoteQkey: 1 } }))).message).toMatch(
        /different PD/,
      );
    });
  });
});

describe('postRecv', () => {
  it('is refused in RESET and accepted from INIT on', () => {
    const qp = makeQp(QpType.RC);
    const err = postErr(() => qp.postRecv({ wrId: 1, sgList: [mr.sge()] }));
    expect(err.code).toBe('ERR_IBAL_POST_QP_STATE');
    toState(qp, QpState.INIT);
    qp.postRecv({ wrId: 1, sgList: [mr.sge()] });
    qp.modifyQp({ qpState: QpState.ERR }, M.STATE);
    qp.postRecv({ wrId: 2, sgList: [mr.sge()] });
    expect(h(qp).received.map((w) => w.wrId)).toEqual([1, 2]);
  });

  it('names the first bad WR and posts the ones before it', () => {
    const qp = makeQp(QpType.RC, { maxRecvSge: 1 });
    toState(qp, QpState.INIT);
    const err = postErr(() =>
      qp.postRecv([
        { wrId: 1, sgList: [mr.sge()] },
        { wrId: 2, sgList: [mr.sge(0, 1), mr.sge(1, 1)] },
      ]),
    );
    expect(err.badWrIndex).toBe(1);
    expect(err.message).toBe('work request 1: 2 SGEs exceed maxRecvSge 1');
    expect(h(qp).received.map((w) => w.wrId)).toEqual([1]);
  });

  it('is refused on a QP that takes receives from an SRQ', () => {
    const srq = createSrq(pd, { maxWr: 4 });
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap: { maxSendWr: 1, maxRecvWr: 0 } });
    toState(qp, QpState.INIT);
    expect(postErr(() => qp.postRecv({ wrId: 1, sgList: [] })).message).toMatch(/srq.postSrqRecv/);
  });
});

describe('SRQ', () => {
  it('checks creation against the device', () => {
    expect(() => createSrq(pd, { maxWr: 0 })).toThrow(InvalidArgumentError);
    expect(() => createSrq(pd, { maxWr: 257 })).toThrow(CapacityError);
    expect(() => createSrq(pd, { maxWr: 4, maxSge: 3 })).toThrow(CapacityError);
    expect(() => createSrq(pd, null as never)).toThrow(InvalidArgumentError);
    const srq = createSrq(pd, { maxWr: 4 });
    expect((srq[kHandle] as SrqDouble).attr).toEqual({ maxWr: 4, maxSge: 1, srqLimit: 0 });
  });

  it('arms the limit within maxWr', () => {
    const srq = createSrq(pd, { maxWr: 4, maxSge: 2 });
    srq.modifySrq({ srqLimit: 2 }, SrqAttrMask.LIMIT);
    expect(srq.querySrq().srqLimit).toBe(2);
    expect(() => srq.modifySrq({ srqLimit: 5 }, SrqAttrMask.LIMIT)).toThrow(/srqLimit must be an integer in 0..4/);
    expect(() => srq.modifySrq({ srqLimit: 5, maxWr: 8 }, SrqAttrMask.LIMIT | SrqAttrMask.MAX_WR)).not.toThrow();
    expect(srq.querySrq().maxWr).toBe(8);
    expect(() => srq.modifySrq({ maxWr: 1000 }, SrqAttrMask.MAX_WR)).toThrow(CapacityError);
    expect(() => srq.modifySrq({}, 0)).toThrow(InvalidArgumentError);
    expect(() => srq.modifySrq({}, 4)).toThrow(InvalidArgumentError);
  });

  it('checks receives like a QP does', () => {
    const srq = createSrq(pd, { maxWr: 4, maxSge: 1 });
    srq.postSrqRecv({ wrId: 1, sgList: [mr.sge()] });
    const err = postErr(() => srq.postSrqRecv([{ wrId: 2, sgList: [] }, { wrId: 3, sgList: [mr.sge(), mr.sge()] }]));
    expect(err.badWrIndex).toBe(1);
    expect(err.message).toBe('work request 1: 2 SGEs exceed the SRQ maxSge 1');
    expect((srq[kHandle] as SrqDouble).received.map((w) => w.wrId)).toEqual([1, 2]);
  });
});
