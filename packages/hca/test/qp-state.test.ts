import { describe, expect, it } from 'vitest';
import { QpAttrMask as M, QpState as S, QpType as T, qpStateName } from '../src/enums.js';
import { InvalidArgumentError, QpStateError } from '../src/errors.js';
import type { QpAttr } from '../src/provider.js';
import { qpAttrMaskNames, validateAhAttr, validateModifyQp } from '../src/qp-state.js';

// The expectations are written out independently of the implementation's
// table, by attribute name, so a typo in either shows up as a failure.
type Spec = { req: string[]; opt: string[] };
const spec = new Map<string, Spec>();
function allow(types: number[], cur: number, next: number, req: string[], opt: string[]): void {
  for (const t of types) spec.set(`${t}:${cur}:${next}`, { req, opt });
}
const ALL = [T.RC, T.UC, T.UD];
const RC = [T.RC];
const UC = [T.UC];
const UD = [T.UD];

for (const cur of [S.RESET, S.INIT, S.RTR, S.RTS, S.SQD, S.SQE, S.ERR]) allow(ALL, cur, S.RESET, [], []);
for (const cur of [S.INIT, S.RTR, S.RTS, S.SQD, S.SQE, S.ERR]) allow(ALL, cur, S.ERR, [], []);
allow([T.RC, T.UC], S.RESET, S.INIT, ['PKEY_INDEX', 'PORT', 'ACCESS_FLAGS'], []);
allow(UD, S.RESET, S.INIT, ['PKEY_INDEX', 'PORT', 'QKEY'], []);
allow([T.RC, T.UC], S.INIT, S.INIT, [], ['PKEY_INDEX', 'PORT', 'ACCESS_FLAGS']);
allow(UD, S.INIT, S.INIT, [], ['PKEY_INDEX', 'PORT', 'QKEY']);
allow(RC, S.INIT, S.RTR, ['AV', 'PATH_MTU', 'DEST_QPN', 'RQ_PSN', 'MAX_DEST_RD_ATOMIC', 'MIN_RNR_TIMER'], ['ALT_PATH', 'ACCESS_FLAGS', 'PKEY_INDEX']);
allow(UC, S.INIT, S.RTR, ['AV', 'PATH_MTU', 'DEST_QPN', 'RQ_PSN'], ['ALT_PATH', 'ACCESS_FLAGS', 'PKEY_INDEX']);
allow(UD, S.INIT, S.RTR, [], ['PKEY_INDEX', 'QKEY']);
const rcToRts = ['CUR_STATE', 'ALT_PATH', 'ACCESS_FLAGS', 'MIN_RNR_TIMER', 'PATH_MIG_STATE'];
const ucToRts = ['CUR_STATE', 'ALT_PATH', 'ACCESS_FLAGS', 'PATH_MIG_STATE'];
const udToRts = ['CUR_STATE', 'QKEY'];
allow(RC, S.RTR, S.RTS, ['TIMEOUT', 'RETRY_CNT', 'RNR_RETRY', 'SQ_PSN', 'MAX_QP_RD_ATOMIC'], rcToRts);
allow(UC, S.RTR, S.RTS, ['SQ_PSN'], ucToRts);
allow(UD, S.RTR, S.RTS, ['SQ_PSN'], udToRts);
for (const cur of [S.RTS, S.SQD]) {
  allow(RC, cur, S.RTS, [], rcToRts);
  allow(UC, cur, S.RTS, [], ucToRts);
  allow(UD, cur, S.RTS, [], udToRts);
}
allow(ALL, S.RTS, S.SQD, [], ['EN_SQD_ASYNC_NOTIFY']);
allow(RC, S.SQD, S.SQD, [], [
  'PORT', 'AV', 'TIMEOUT', 'RETRY_CNT', 'RNR_RETRY', 'MAX_QP_RD_ATOMIC', 'MAX_DEST_RD_ATOMIC',
  'ALT_PATH', 'ACCESS_FLAGS', 'PKEY_INDEX', 'MIN_RNR_TIMER', 'PATH_MIG_STATE',
]);
allow(UC, S.SQD, S.SQD, [], ['AV', 'ALT_PATH', 'ACCESS_FLAGS', 'PKEY_INDEX', 'PATH_MIG_STATE']);
allow(UD, S.SQD, S.SQD, [], ['PKEY_INDEX', 'QKEY']);
allow(UC, S.SQE, S.RTS, [], ['CUR_STATE', 'ACCESS_FLAGS']);
allow(UD, S.SQE, S.RTS, [], udToRts);

const bit = (name: string): number => {
  const b = (M as Record<string, number>)[name];
  if (b === undefined) throw new Error(`no mask bit ${name}`);
  return b;
};
const maskOf = (names: string[]): number => names.reduce((m, n) => m | bit(n), 0);
const states = [S.RESET, S.INIT, S.RTR, S.RTS, S.SQD, S.SQE, S.ERR];
const typeName = (t: number): string => (t === T.RC ? 'RC' : t === T.UC ? 'UC' : 'UD');

/** Attributes valid for every field, so only the mask decides. */
function fullAttr(next: number, cur: number): QpAttr {
  return {
    qpState: next,
    curQpState: cur,
    pathMtu: 5,
    qkey: 0x11111111,
    rqPsn: 0x123456,
    sqPsn: 0xabcdef,
    destQpNum: 0x12,
    qpAccessFlags: 0xf,
    ahAttr: { dgid: new Uint8Array(16), sgidIndex: 0, hopLimit: 64, portNum: 1 },
    pkeyIndex: 0,
    enSqdAsyncNotify: 1,
    maxRdAtomic: 16,
    maxDestRdAtomic: 16,
    minRnrTimer: 12,
    portNum: 1,
    timeout: 14,
    retryCnt: 7,
    rnrRetry: 7,
  };
}

// ALT_PATH passes the state table but is refused on RoCE by the value
// check, so state-machine tests leave it out of "full" masks.
const withoutAlt = (names: string[]): string[] => names.filter((n) => n !== 'ALT_PATH');

function catchErr(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('validateModifyQp state table', () => {
  for (const t of ALL) {
    for (const cur of states) {
      for (const next of states) {
        const s = spec.get(`${t}:${cur}:${next}`);
        const label = `${typeName(t)} ${qpStateName(cur)}→${qpStateName(next)}`;
        if (!s) {
          it(`${label} is refused`, () => {
            const err = catchErr(() => validateModifyQp(t, cur, fullAttr(next, cur), M.STATE));
            expect(err).toBeInstanceOf(QpStateError);
            expect((err as QpStateError).code).toBe('ERR_IBAL_QP_STATE');
            expect((err as QpStateError).message).toBe(
              `${qpStateName(cur)}→${qpStateName(next)} is not a valid QP state transition for ${typeName(t)}`,
            );
          });
          continue;
        }
        it(`${label} accepts exactly its required attributes`, () => {
          expect(() => validateModifyQp(t, cur, fullAttr(next, cur), M.STATE | maskOf(s.req))).not.toThrow();
        });
        it(`${label} accepts required plus every optional attribute`, () => {
          const mask = M.STATE | maskOf(s.req) | maskOf(withoutAlt(s.opt));
          expect(() => validateModifyQp(t, cur, fullAttr(next, cur), mask)).not.toThrow();
        });
        for (const r of s.req) {
          it(`${label} without ${r} names it as missing`, () => {
            const mask = (M.STATE | maskOf(s.req)) & ~bit(r);
            const err = catchErr(() => validateModifyQp(t, cur, fullAttr(next, cur), mask)) as QpStateError;
            expect(err).toBeInstanceOf(QpStateError);
            expect(err.missing).toEqual([`IBV_QP_${r}`]);
            expect(err.invalid).toEqual([]);
            expect(err.message).toContain(`requires IBV_QP_${r}`);
          });
        }
        const allowed = new Set(['STATE', ...s.req, ...s.opt]);
        for (const name of Object.keys(M)) {
          if (allowed.has(name)) continue;
          it(`${label} refuses ${name}`, () => {
            const mask = M.STATE | maskOf(s.req) | bit(name);
            const err = catchErr(() => validateModifyQp(t, cur, fullAttr(next, cur), mask)) as QpStateError;
            expect(err).toBeInstanceOf(QpStateError);
            expect(err.invalid).toEqual([`IBV_QP_${name}`]);
            expect(err.missing).toEqual([]);
            expect(err.message).toContain(`does not accept IBV_QP_${name}`);
          });
        }
      }
    }
  }
});

describe('validateModifyQp messages and lists', () => {
  it('names every missing RTR→RTS attribute of an RC QP in libibverbs order', () => {
    const err = catchErr(() => validateModifyQp(T.RC, S.RTR, { qpState: S.RTS }, M.STATE)) as QpStateError;
    expect(err).toBeInstanceOf(QpStateError);
    expect(err.message).toBe(
      'RTR→RTS for RC requires IBV_QP_TIMEOUT, IBV_QP_RETRY_CNT, IBV_QP_RNR_RETRY, IBV_QP_SQ_PSN, IBV_QP_MAX_QP_RD_ATOMIC',
    );
    expect(err.missing).toEqual([
      'IBV_QP_TIMEOUT',
      'IBV_QP_RETRY_CNT',
      'IBV_QP_RNR_RETRY',
      'IBV_QP_SQ_PSN',
      'IBV_QP_MAX_QP_RD_ATOMIC',
    ]);
  });

  it('reports missing and forbidden attributes together', () => {
    const err = catchErr(() =>
      validateModifyQp(T.UD, S.RESET, { qpState: S.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS),
    ) as QpStateError;
    expect(err.missing).toEqual(['IBV_QP_QKEY']);
    expect(err.invalid).toEqual(['IBV_QP_ACCESS_FLAGS']);
    expect(err.message).toBe(
      'RESET→INIT for UD requires IBV_QP_QKEY; does not accept IBV_QP_ACCESS_FLAGS (accepted: IBV_QP_STATE, IBV_QP_PKEY_INDEX, IBV_QP_PORT, IBV_QP_QKEY)',
    );
  });

  it('says when a transition takes nothing but the state', () => {
    const err = catchErr(() => validateModifyQp(T.RC, S.RTS, { qpState: S.ERR, timeout: 1 }, M.STATE | M.TIMEOUT)) as QpStateError;
    expect(err.message).toBe('RTS→ERR for RC does not accept IBV_QP_TIMEOUT (accepted: IBV_QP_STATE only)');
  });

  it('treats a mask without IBV_QP_STATE as a transition to the current state', () => {
    expect(() => validateModifyQp(T.RC, S.RTS, { minRnrTimer: 3 }, M.MIN_RNR_TIMER)).not.toThrow();
    const err = catchErr(() => validateModifyQp(T.RC, S.RTR, { timeout: 3 }, M.TIMEOUT)) as QpStateError;
    expect(err).toBeInstanceOf(QpStateError);
    expect(err.message).toBe('RTR→RTR is not a valid QP state transition for RC');
  });

  it('reports bits libibverbs does not define as invalid', () => {
    const err = catchErr(() => validateModifyQp(T.RC, S.RESET, { qpState: S.RESET }, M.STATE | (1 << 25))) as QpStateError;
    expect(err.invalid).toEqual(['UNKNOWN(0x2000000)']);
    const all = catchErr(() => validateModifyQp(T.RC, S.RESET, { qpState: S.RESET }, -1)) as QpStateError;
    expect(all.invalid).toHaveLength(31);
    expect(all.invalid.at(-1)).toBe('UNKNOWN(0x80000000)');
  });

  it('refuses IBV_QP_CUR_STATE that contradicts the tracked state', () => {
    const attr = { qpState: S.RTS, curQpState: S.SQD };
    const err = catchErr(() => validateModifyQp(T.UD, S.SQE, attr, M.STATE | M.CUR_STATE)) as QpStateError;
    expect(err).toBeInstanceOf(QpStateError);
    expect(err.message).toBe('SQE→RTS for UD: attr.curQpState is SQD but the QP is in SQE');
    expect(() => validateModifyQp(T.UD, S.SQE, { qpState: S.RTS, curQpState: S.SQE }, M.STATE | M.CUR_STATE)).not.toThrow();
  });

  it('refuses IBV_QP_CUR_STATE from states hardware cannot leave on its own', () => {
    const err = catchErr(() =>
      validateModifyQp(T.RC, S.INIT, { qpState: S.INIT, curQpState: S.INIT }, M.STATE | M.CUR_STATE),
    ) as QpStateError;
    expect(err.invalid).toEqual(['IBV_QP_CUR_STATE']);
  });
});

describe('validateModifyQp argument checks', () => {
  const rtr = { qpState: S.RTS, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 };
  const rtrMask = M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC;

  it('refuses unknown QP types and states', () => {
    expect(() => validateModifyQp(9, S.RESET, { qpState: S.INIT }, M.STATE)).toThrow(InvalidArgumentError);
    expect(() => validateModifyQp(T.RC, 7, { qpState: S.INIT }, M.STATE)).toThrow(InvalidArgumentError);
    expect(() => validateModifyQp(T.RC, S.RESET, { qpState: 7 }, M.STATE)).toThrow(/attr.qpState is 7/);
    expect(() => validateModifyQp(T.RC, S.RESET, {}, M.STATE)).toThrow(/attr.qpState is undefined/);
    expect(() => validateModifyQp(T.RC, S.RESET, { qpState: S.RESET }, 2 ** 32)).toThrow(InvalidArgumentError);
    expect(() => validateModifyQp(T.RC, S.RESET, { qpState: S.RESET }, 1.5)).toThrow(InvalidArgumentError);
  });

  it('requires a value for every attribute the mask names', () => {
    const { timeout: _t, ...noTimeout } = rtr;
    const err = catchErr(() => validateModifyQp(T.RC, S.RTR, noTimeout, rtrMask));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toBe('IBV_QP_TIMEOUT is set in the mask but attr.timeout is undefined');
  });

  const ranges: Array<[keyof QpAttr, number, number, number, number, number]> = [
    // field, mask bit, from, to, lowest valid, highest valid
    ['pathMtu', M.PATH_MTU, S.INIT, S.RTR, 1, 5],
    ['timeout', M.TIMEOUT, S.RTR, S.RTS, 0, 31],
    ['retryCnt', M.RETRY_CNT, S.RTR, S.RTS, 0, 7],
    ['rnrRetry', M.RNR_RETRY, S.RTR, S.RTS, 0, 7],
    ['minRnrTimer', M.MIN_RNR_TIMER, S.INIT, S.RTR, 0, 31],
    ['rqPsn', M.RQ_PSN, S.INIT, S.RTR, 0, 0xffffff],
    ['sqPsn', M.SQ_PSN, S.RTR, S.RTS, 0, 0xffffff],
    ['destQpNum', M.DEST_QPN, S.INIT, S.RTR, 0, 0xffffff],
    ['maxRdAtomic', M.MAX_QP_RD_ATOMIC, S.RTR, S.RTS, 0, 16],
    ['maxDestRdAtomic', M.MAX_DEST_RD_ATOMIC, S.INIT, S.RTR, 0, 16],
    ['pkeyIndex', M.PKEY_INDEX, S.RESET, S.INIT, 0, 0xffff],
    ['portNum', M.PORT, S.RESET, S.INIT, 1, 255],
  ];
  for (const [field, b, from, to, lo, hi] of ranges) {
    it(`checks the range of ${field} (${lo}..${hi})`, () => {
      const base = fullAttr(to, from);
      const req = spec.get(`${T.RC}:${from}:${to}`)!.req;
      const mask = M.STATE | maskOf(req) | b;
      for (const ok of [lo, hi]) expect(() => validateModifyQp(T.RC, from, { ...base, [field]: ok }, mask)).not.toThrow();
      for (const bad of [lo - 1, hi + 1, lo + 0.5, Number.NaN, '1' as unknown as number]) {
        const err = catchErr(() => validateModifyQp(T.RC, from, { ...base, [field]: bad }, mask));
        expect(err, `${field}=${String(bad)}`).toBeInstanceOf(InvalidArgumentError);
        expect((err as Error).message).toContain(`attr.${field} must be an integer in ${lo}..${hi}`);
      }
    });
  }

  it('checks qkey as an unsigned 32-bit value', () => {
    const m = M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY;
    const base = { qpState: S.INIT, pkeyIndex: 0, portNum: 1 };
    expect(() => validateModifyQp(T.UD, S.RESET, { ...base, qkey: 0xffffffff }, m)).not.toThrow();
    expect(() => validateModifyQp(T.UD, S.RESET, { ...base, qkey: 0 }, m)).not.toThrow();
    expect(() => validateModifyQp(T.UD, S.RESET, { ...base, qkey: 0x100000000 }, m)).toThrow(InvalidArgumentError);
    expect(() => validateModifyQp(T.UD, S.RESET, { ...base, qkey: -1 }, m)).toThrow(InvalidArgumentError);
  });

  it('checks access flags for unknown bits', () => {
    const m = M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS;
    const base = { qpState: S.INIT, pkeyIndex: 0, portNum: 1 };
    expect(() => validateModifyQp(T.RC, S.RESET, { ...base, qpAccessFlags: 0xf }, m)).not.toThrow();
    expect(() => validateModifyQp(T.RC, S.RESET, { ...base, qpAccessFlags: 0x10 }, m)).toThrow(/unknown bits 0x10/);
  });

  it('checks the address vector of INIT→RTR', () => {
    const base = fullAttr(S.RTR, S.INIT);
    const m = M.STATE | maskOf(spec.get(`${T.RC}:${S.INIT}:${S.RTR}`)!.req);
    expect(() => validateModifyQp(T.RC, S.INIT, { ...base, ahAttr: { dgid: new Uint8Array(4) } }, m)).toThrow(/dgid must be a 16-byte/);
    expect(() => validateModifyQp(T.RC, S.INIT, { ...base, ahAttr: undefined }, m)).toThrow(/IBV_QP_AV is set/);
    expect(() => validateModifyQp(T.RC, S.INIT, { ...base, ahAttr: { dgid: new Uint8Array(16), sl: 16 } }, m)).toThrow(/sl must be/);
  });

  it('refuses alternate paths as RoCE does', () => {
    const base = fullAttr(S.RTR, S.INIT);
    const m = M.STATE | maskOf(spec.get(`${T.RC}:${S.INIT}:${S.RTR}`)!.req) | M.ALT_PATH;
    expect(() => validateModifyQp(T.RC, S.INIT, base, m)).toThrow(/alternate paths/);
  });

  it('ignores attribute fields the mask does not name', () => {
    expect(() => validateModifyQp(T.RC, S.RTR, { ...rtr, pathMtu: 99, qkey: -5 }, rtrMask)).not.toThrow();
  });

  it('checks the enSqdAsyncNotify flag', () => {
    const m = M.STATE | M.EN_SQD_ASYNC_NOTIFY;
    expect(() => validateModifyQp(T.RC, S.RTS, { qpState: S.SQD, enSqdAsyncNotify: 1 }, m)).not.toThrow();
    expect(() => validateModifyQp(T.RC, S.RTS, { qpState: S.SQD, enSqdAsyncNotify: 2 }, m)).toThrow(InvalidArgumentError);
  });
});

describe('validateAhAttr', () => {
  const dgid = new Uint8Array(16);
  it('accepts the minimal and the full attribute set', () => {
    expect(() => validateAhAttr({ dgid })).not.toThrow();
    expect(() =>
      validateAhAttr({ dgid, sgidIndex: 3, hopLimit: 255, trafficClass: 255, flowLabel: 0xfffff, sl: 15, portNum: 1, udpPort: 4791 }),
    ).not.toThrow();
  });
  it.each([
    ['hopLimit', 256],
    ['trafficClass', -1],
    ['flowLabel', 0x100000],
    ['sl', 16],
    ['portNum', 0],
    ['udpPort', 0],
    ['udpPort', 65536],
    ['sgidIndex', 1.5],
  ])('refuses %s = %s', (field, value) => {
    expect(() => validateAhAttr({ dgid, [field]: value }, 'ah')).toThrow(new RegExp(`ah\\.${field} must be`));
  });
  it('refuses a missing or short dgid', () => {
    expect(() => validateAhAttr({} as never)).toThrow(InvalidArgumentError);
    expect(() => validateAhAttr({ dgid: new Uint8Array(15) })).toThrow(InvalidArgumentError);
    expect(() => validateAhAttr(null as never)).toThrow(InvalidArgumentError);
  });
});

describe('qpAttrMaskNames', () => {
  it('names bits lowest first with the IBV_QP_ prefix', () => {
    expect(qpAttrMaskNames(0)).toEqual([]);
    expect(qpAttrMaskNames(M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS)).toEqual([
      'IBV_QP_STATE',
      'IBV_QP_ACCESS_FLAGS',
      'IBV_QP_PKEY_INDEX',
      'IBV_QP_PORT',
    ]);
  });
  it('covers every defined bit', () => {
    const all = Object.values(M).reduce((a, b) => a | b, 0);
    expect(qpAttrMaskNames(all)).toEqual(Object.keys(M).map((n) => `IBV_QP_${n}`));
  });
  it('names undefined bits, including bit 31', () => {
    expect(qpAttrMaskNames((1 << 21) | (1 << 31))).toEqual(['UNKNOWN(0x200000)', 'UNKNOWN(0x80000000)']);
  });
});
