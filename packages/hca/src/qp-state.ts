// The IBTA QP state machine as the Linux RDMA core enforces it on every
// ibv_modify_qp (ib_modify_qp_is_ok): which transitions exist per QP type,
// which attributes each one requires and which it merely accepts. Enforcing
// it here, before any provider sees the call, gives the soft HCA and the
// native provider the same EINVAL behaviour, with a message that says which
// attribute was wrong instead of a bare errno.

import { QpAttrMask as M, QpState, QpType, qpStateName, qpTypeName } from './enums.js';
import { InvalidArgumentError, QpStateError } from './errors.js';
import type { AhAttr, QpAttr } from './provider.js';

interface Transition {
  /** Attribute bits in the kernel table's order, so messages list them as people know them. */
  readonly required: readonly number[];
  readonly optional: readonly number[];
}

type PerType = Readonly<Record<number, Transition>>;

const NONE: Transition = { required: [], optional: [] };

function same(t: Transition): PerType {
  return { [QpType.RC]: t, [QpType.UC]: t, [QpType.UD]: t };
}

const CONNECTED_INIT = [M.PKEY_INDEX, M.PORT, M.ACCESS_FLAGS];
const UD_INIT = [M.PKEY_INDEX, M.PORT, M.QKEY];
const UC_RTR = [M.AV, M.PATH_MTU, M.DEST_QPN, M.RQ_PSN];
const RC_RTR = [...UC_RTR, M.MAX_DEST_RD_ATOMIC, M.MIN_RNR_TIMER];
const CONNECTED_RTR_OPT = [M.ALT_PATH, M.ACCESS_FLAGS, M.PKEY_INDEX];
const RC_RTS = [M.TIMEOUT, M.RETRY_CNT, M.RNR_RETRY, M.SQ_PSN, M.MAX_QP_RD_ATOMIC];
const UD_TO_RTS_OPT = [M.CUR_STATE, M.QKEY];
const UC_TO_RTS_OPT = [M.CUR_STATE, M.ALT_PATH, M.ACCESS_FLAGS, M.PATH_MIG_STATE];
const RC_TO_RTS_OPT = [M.CUR_STATE, M.ALT_PATH, M.ACCESS_FLAGS, M.MIN_RNR_TIMER, M.PATH_MIG_STATE];

const TO_RTS_FROM_RTS_OR_SQD: PerType = {
  [QpType.RC]: { required: [], optional: RC_TO_RTS_OPT },
  [QpType.UC]: { required: [], optional: UC_TO_RTS_OPT },
  [QpType.UD]: { required: [], optional: UD_TO_RTS_OPT },
};

// TABLE[cur][next][qpType]; an absent entry is a transition that does not
// exist. RESET→ERR is absent on purpose: the kernel refuses it (a QP that
// was never initialised has nothing to flush), so libibverbs code never
// relies on it.
const TABLE: ReadonlyArray<Readonly<Partial<Record<number, PerType>>>> = [
  // RESET
  {
    [QpState.RESET]: same(NONE),
    [QpState.INIT]: {
      [QpType.RC]: { required: CONNECTED_INIT, optional: [] },
      [QpType.UC]: { required: CONNECTED_INIT, optional: [] },
      [QpType.UD]: { required: UD_INIT, optional: [] },
    },
  },
  // INIT
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
    [QpState.INIT]: {
      [QpType.RC]: { required: [], optional: CONNECTED_INIT },
      [QpType.UC]: { required: [], optional: CONNECTED_INIT },
      [QpType.UD]: { required: [], optional: UD_INIT },
    },
    [QpState.RTR]: {
      [QpType.RC]: { required: RC_RTR, optional: CONNECTED_RTR_OPT },
      [QpType.UC]: { required: UC_RTR, optional: CONNECTED_RTR_OPT },
      [QpType.UD]: { required: [], optional: [M.PKEY_INDEX, M.QKEY] },
    },
  },
  // RTR
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
    [QpState.RTS]: {
      [QpType.RC]: { required: RC_RTS, optional: RC_TO_RTS_OPT },
      [QpType.UC]: { required: [M.SQ_PSN], optional: UC_TO_RTS_OPT },
      [QpType.UD]: { required: [M.SQ_PSN], optional: UD_TO_RTS_OPT },
    },
  },
  // RTS
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
    [QpState.RTS]: TO_RTS_FROM_RTS_OR_SQD,
    [QpState.SQD]: same({ required: [], optional: [M.EN_SQD_ASYNC_NOTIFY] }),
  },
  // SQD
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
    [QpState.RTS]: TO_RTS_FROM_RTS_OR_SQD,
    [QpState.SQD]: {
      [QpType.RC]: {
        required: [],
        optional: [
          M.PORT,
          M.AV,
          M.TIMEOUT,
          M.RETRY_CNT,
          M.RNR_RETRY,
          M.MAX_QP_RD_ATOMIC,
          M.MAX_DEST_RD_ATOMIC,
          M.ALT_PATH,
          M.ACCESS_FLAGS,
          M.PKEY_INDEX,
          M.MIN_RNR_TIMER,
          M.PATH_MIG_STATE,
        ],
      },
      [QpType.UC]: { required: [], optional: [M.AV, M.ALT_PATH, M.ACCESS_FLAGS, M.PKEY_INDEX, M.PATH_MIG_STATE] },
      [QpType.UD]: { required: [], optional: [M.PKEY_INDEX, M.QKEY] },
    },
  },
  // SQE: only unreliable QPs get here (a send error on RC moves the QP to
  // ERR), so the way back to RTS exists for UC and UD only.
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
    [QpState.RTS]: {
      [QpType.UC]: { required: [], optional: [M.CUR_STATE, M.ACCESS_FLAGS] },
      [QpType.UD]: { required: [], optional: UD_TO_RTS_OPT },
    },
  },
  // ERR
  {
    [QpState.RESET]: same(NONE),
    [QpState.ERR]: same(NONE),
  },
];

const maskNames: Array<[number, string]> = Object.entries(M).map(([name, bit]) => [bit, `IBV_QP_${name}`]);
const nameOfBit = new Map(maskNames);

function bitName(bit: number): string {
  return nameOfBit.get(bit) ?? `UNKNOWN(0x${(bit >>> 0).toString(16)})`;
}

/** The libibverbs names (IBV_QP_*) of the bits set in an attribute mask, lowest bit first. */
export function qpAttrMaskNames(mask: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < 32; i++) {
    const bit = (1 << i) >>> 0;
    if ((mask >>> 0) & bit) names.push(bitName(bit));
  }
  return names;
}

function isValidState(s: unknown): s is number {
  return typeof s === 'number' && Number.isInteger(s) && s >= QpState.RESET && s <= QpState.ERR;
}

function transitionName(cur: number, next: number): string {
  return `${qpStateName(cur)}→${qpStateName(next)}`;
}

/**
 * Checks an ibv_modify_qp call against the state machine before it reaches a
 * provider. Throws QpStateError when `cur`→`attr.qpState` (or cur→cur when
 * the mask lacks IBV_QP_STATE, as in the kernel) is not a transition for
 * this QP type, when a required attribute is missing from `mask` or when the
 * mask carries one the transition does not accept; `missing` and `invalid`
 * list them by IBV_QP_* name. Throws InvalidArgumentError when an attribute
 * named by the mask is absent from `attr` or out of range.
 */
export function validateModifyQp(qpType: number, cur: number, attr: QpAttr, mask: number): void {
  if (qpType !== QpType.RC && qpType !== QpType.UC && qpType !== QpType.UD) {
    throw new InvalidArgumentError(`unsupported QP type ${qpTypeName(qpType)}`);
  }
  if (!isValidState(cur)) throw new InvalidArgumentError(`invalid current QP state ${cur}`);
  if (typeof attr !== 'object' || attr === null) throw new InvalidArgumentError('modifyQp: attr must be an object');
  // Accept int32 as well as uint32 spellings: `1 << 31` is negative in JS.
  if (!Number.isInteger(mask) || mask < -0x80000000 || mask > 0xffffffff) {
    throw new InvalidArgumentError(`modifyQp: attribute mask must be a 32-bit integer, got ${String(mask)}`);
  }

  let next = cur;
  if (mask & M.STATE) {
    if (!isValidState(attr.qpState)) {
      throw new InvalidArgumentError(`IBV_QP_STATE is set but attr.qpState is ${String(attr.qpState)}, not a QP state`);
    }
    next = attr.qpState;
  }
  const type = qpTypeName(qpType);
  const name = transitionName(cur, next);

  const row = TABLE[cur]![next];
  const t = row?.[qpType];
  if (!t) throw new QpStateError(`${name} is not a valid QP state transition for ${type}`);

  const missing: string[] = [];
  let allowed = M.STATE;
  for (const bit of t.required) {
    allowed |= bit;
    if (!(mask & bit)) missing.push(bitName(bit));
  }
  for (const bit of t.optional) allowed |= bit;
  const invalid = qpAttrMaskNames(mask & ~allowed);
  if (missing.length > 0 || invalid.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`requires ${missing.join(', ')}`);
    if (invalid.length > 0) {
      const accepted = t.required.concat(t.optional).map(bitName);
      parts.push(
        `does not accept ${invalid.join(', ')} (accepted: ${accepted.length > 0 ? ['IBV_QP_STATE', ...accepted].join(', ') : 'IBV_QP_STATE only'})`,
      );
    }
    throw new QpStateError(`${name} for ${type} ${parts.join('; ')}`, missing, invalid);
  }

  // The kernel refuses IBV_QP_CUR_STATE unless the QP is in a state the
  // hardware can leave on its own; only such transitions list it as
  // optional, so the check above covers that rule. What the table cannot
  // express is a cur_qp_state contradicting the state we track, which would
  // make every check above meaningless.
  if (mask & M.CUR_STATE) {
    const claimed = need(attr.curQpState, M.CUR_STATE, 'curQpState');
    if (claimed !== cur) {
      const shown = isValidState(claimed) ? qpStateName(claimed) : String(claimed);
      throw new QpStateError(`${name} for ${type}: attr.curQpState is ${shown} but the QP is in ${qpStateName(cur)}`);
    }
  }

  validateAttrValues(attr, mask);
}

function need<T>(value: T | undefined, bit: number, field: string): T {
  if (value === undefined || value === null) {
    throw new InvalidArgumentError(`${bitName(bit)} is set in the mask but attr.${field} is ${String(value)}`);
  }
  return value;
}

function checkInt(value: unknown, field: string, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
}

function checkRange(attr: QpAttr, mask: number, bit: number, field: keyof QpAttr, min: number, max: number): void {
  if (mask & bit) checkInt(need(attr[field], bit, field), `attr.${field}`, min, max);
}

const ACCESS_BITS = 0xf;

function validateAttrValues(attr: QpAttr, mask: number): void {
  checkRange(attr, mask, M.PATH_MTU, 'pathMtu', 1, 5);
  checkRange(attr, mask, M.TIMEOUT, 'timeout', 0, 31);
  checkRange(attr, mask, M.RETRY_CNT, 'retryCnt', 0, 7);
  checkRange(attr, mask, M.RNR_RETRY, 'rnrRetry', 0, 7);
  checkRange(attr, mask, M.MIN_RNR_TIMER, 'minRnrTimer', 0, 31);
  checkRange(attr, mask, M.RQ_PSN, 'rqPsn', 0, 0xffffff);
  checkRange(attr, mask, M.SQ_PSN, 'sqPsn', 0, 0xffffff);
  checkRange(attr, mask, M.DEST_QPN, 'destQpNum', 0, 0xffffff);
  checkRange(attr, mask, M.QKEY, 'qkey', 0, 0xffffffff);
  checkRange(attr, mask, M.MAX_QP_RD_ATOMIC, 'maxRdAtomic', 0, 16);
  checkRange(attr, mask, M.MAX_DEST_RD_ATOMIC, 'maxDestRdAtomic', 0, 16);
  checkRange(attr, mask, M.PKEY_INDEX, 'pkeyIndex', 0, 0xffff);
  checkRange(attr, mask, M.PORT, 'portNum', 1, 255);
  checkRange(attr, mask, M.EN_SQD_ASYNC_NOTIFY, 'enSqdAsyncNotify', 0, 1);
  if (mask & M.ACCESS_FLAGS) {
    const flags = need(attr.qpAccessFlags, M.ACCESS_FLAGS, 'qpAccessFlags');
    checkInt(flags, 'attr.qpAccessFlags', 0, 0xffffffff);
    if (flags & ~ACCESS_BITS) {
      throw new InvalidArgumentError(`attr.qpAccessFlags has unknown bits 0x${(flags & ~ACCESS_BITS).toString(16)}`);
    }
  }
  if (mask & M.AV) validateAhAttr(need(attr.ahAttr, M.AV, 'ahAttr'), 'attr.ahAttr');
  // The kernel bans alternate paths on RoCE ports (APM is InfiniBand-only),
  // and ibal's QpAttr has no field to carry one.
  if (mask & M.ALT_PATH) throw new InvalidArgumentError('IBV_QP_ALT_PATH: alternate paths (APM) are not supported on RoCE');
}

/**
 * Checks an address vector (ibv_ah_attr with its GRH, as RoCEv2 needs one):
 * ranges only; whether the GID index or port exists is the provider's call.
 */
export function validateAhAttr(ah: AhAttr, what = 'ahAttr'): void {
  if (typeof ah !== 'object' || ah === null) throw new InvalidArgumentError(`${what} must be an object`);
  if (!(ah.dgid instanceof Uint8Array) || ah.dgid.length !== 16) {
    throw new InvalidArgumentError(`${what}.dgid must be a 16-byte Uint8Array`);
  }
  const opt = (field: keyof AhAttr, min: number, max: number): void => {
    if (ah[field] !== undefined) checkInt(ah[field], `${what}.${field}`, min, max);
  };
  opt('sgidIndex', 0, 0xffff);
  opt('hopLimit', 0, 255);
  opt('trafficClass', 0, 255);
  opt('flowLabel', 0, 0xfffff);
  opt('sl', 0, 15);
  opt('portNum', 1, 255);
  opt('udpPort', 1, 0xffff);
}
