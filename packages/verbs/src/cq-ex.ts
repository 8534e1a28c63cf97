// ibv_create_cq_ex: the extended CQ, polled field by field (ibv_start_poll,
// ibv_next_poll, ibv_end_poll and the ibv_wc_read_* accessors) instead of
// into ibv_wc structs, and able to stamp each completion with the time the
// HCA generated it. A CqEx is a CQ too: poll(), next(), channels and
// reqNotify work on it unchanged.

import { InvalidArgumentError, newWorkCompletion } from '@ibal/hca';
import type { HcaCq, WorkCompletion } from '@ibal/hca';
import type { CompChannel } from './comp-channel.js';
import type { Context } from './context.js';
import { CQ, type CreateCqOptions } from './cq.js';
import { kHandle } from './internal.js';

/** ibv_create_cq_wc_flags: which fields the CQ's completions carry. */
export const WcExFlags = {
  WITH_BYTE_LEN: 1 << 0,
  WITH_IMM: 1 << 1,
  WITH_QP_NUM: 1 << 2,
  WITH_SRC_QP: 1 << 3,
  WITH_SLID: 1 << 4,
  WITH_SL: 1 << 5,
  WITH_DLID_PATH_BITS: 1 << 6,
  WITH_COMPLETION_TIMESTAMP: 1 << 7,
  WITH_COMPLETION_TIMESTAMP_WALLCLOCK: 1 << 11,
} as const;

/** IBV_WC_STANDARD_FLAGS: what an ibv_wc holds. */
export const WC_STANDARD_FLAGS =
  WcExFlags.WITH_BYTE_LEN | WcExFlags.WITH_IMM | WcExFlags.WITH_QP_NUM | WcExFlags.WITH_SRC_QP | WcExFlags.WITH_SLID | WcExFlags.WITH_SL | WcExFlags.WITH_DLID_PATH_BITS;

const KNOWN = WC_STANDARD_FLAGS | WcExFlags.WITH_COMPLETION_TIMESTAMP | WcExFlags.WITH_COMPLETION_TIMESTAMP_WALLCLOCK;
const STAMPED = WcExFlags.WITH_COMPLETION_TIMESTAMP | WcExFlags.WITH_COMPLETION_TIMESTAMP_WALLCLOCK;

/** ibv_cq_init_attr_ex. */
export interface CqInitAttrEx extends CreateCqOptions {
  cqe: number;
  /** WcExFlags bits; default WC_STANDARD_FLAGS. */
  wcFlags?: number;
}

export class CqEx extends CQ {
  /** The WcExFlags the CQ was created with: the read* accessors it answers. */
  readonly wcFlags: number;
  // The current completion. One is taken from the provider per start/next,
  // so a batch ended early leaves the rest queued, as ibv_end_poll does.
  readonly #cur: WorkCompletion[] = [newWorkCompletion()];
  #polling = false;

  /** @internal Use createCqEx(). */
  constructor(context: Context, channel: CompChannel | undefined, hca: HcaCq, wcFlags: number) {
    super(context, channel, hca);
    this.wcFlags = wcFlags;
  }

  /**
   * ibv_start_poll: true with the first completion current, false when the
   * CQ is empty (ENOENT: do not call endPoll then).
   */
  startPoll(): boolean {
    this.assertOpen();
    if (this.#polling) throw new InvalidArgumentError('startPoll: a poll is under way (call endPoll first)');
    if (this[kHandle].poll(1, this.#cur) === 0) return false;
    this.#polling = true;
    return true;
  }

  /** ibv_next_poll: true with the next completion current, false when there is none (ENOENT). */
  nextPoll(): boolean {
    this.#inPoll('nextPoll');
    return this[kHandle].poll(1, this.#cur) === 1;
  }

  /** ibv_end_poll. */
  endPoll(): void {
    this.#inPoll('endPoll');
    this.#polling = false;
  }

  /** ibv_cq_ex's wr_id of the current completion. */
  get wrId(): number {
    return this.#current('wrId').wrId;
  }

  /** ibv_cq_ex's status of the current completion. */
  get status(): number {
    return this.#current('status').status;
  }

  readOpcode(): number {
    return this.#current('readOpcode').opcode;
  }

  readVendorErr(): number {
    return this.#current('readVendorErr').vendorErr;
  }

  readWcFlags(): number {
    return this.#current('readWcFlags').wcFlags;
  }

  readByteLen(): number {
    return this.#field('readByteLen', WcExFlags.WITH_BYTE_LEN).byteLen;
  }

  readImmData(): number {
    return this.#field('readImmData', WcExFlags.WITH_IMM).immData;
  }

  /** Valid when readWcFlags() has WcFlags.WITH_INV (it shares ibv_wc's union with the immediate). */
  readInvalidatedRkey(): number {
    return this.#field('readInvalidatedRkey', WcExFlags.WITH_IMM).invalidatedRkey;
  }

  readQpNum(): number {
    return this.#field('readQpNum', WcExFlags.WITH_QP_NUM).qpNum;
  }

  readSrcQp(): number {
    return this.#field('readSrcQp', WcExFlags.WITH_SRC_QP).srcQp;
  }

  readSlid(): number {
    return this.#field('readSlid', WcExFlags.WITH_SLID).slid;
  }

  readSl(): number {
    return this.#field('readSl', WcExFlags.WITH_SL).sl;
  }

  readDlidPathBits(): number {
    return this.#field('readDlidPathBits', WcExFlags.WITH_DLID_PATH_BITS).dlidPathBits;
  }

  /** ibv_wc_read_completion_ts: the HCA clock when the completion was generated, in ns (the soft HCA's clock runs at 1 GHz). */
  readCompletionTs(): number {
    return this.#field('readCompletionTs', WcExFlags.WITH_COMPLETION_TIMESTAMP).completionTs;
  }

  /** ibv_wc_read_completion_wallclock_ns: the same instant in ns since the Unix epoch. */
  readCompletionWallclockNs(): bigint {
    const ts = this.#field('readCompletionWallclockNs', WcExFlags.WITH_COMPLETION_TIMESTAMP_WALLCLOCK).completionTs;
    // The soft clock counts from performance.timeOrigin.
    return BigInt(Math.round(performance.timeOrigin * 1e6)) + BigInt(ts);
  }

  #inPoll(verb: string): void {
    this.assertOpen();
    if (!this.#polling) throw new InvalidArgumentError(`${verb}: no poll is under way (startPoll returned false or was not called)`);
  }

  #current(verb: string): WorkCompletion {
    this.#inPoll(verb);
    return this.#cur[0]!;
  }

  #field(verb: string, flag: number): WorkCompletion {
    // Undefined in C; an error here.
    if (!(this.wcFlags & flag)) throw new InvalidArgumentError(`${verb}: the CQ was created without that field in wcFlags`);
    return this.#current(verb);
  }
}

/** ibv_create_cq_ex. Completion timestamps need the provider's support (the soft HCA has it; NotSupportedError otherwise). */
export function createCqEx(context: Context, attr: CqInitAttrEx): CqEx {
  if (typeof attr !== 'object' || attr === null) throw new InvalidArgumentError('createCqEx: attr must be an object { cqe, wcFlags, channel }');
  const wcFlags = attr.wcFlags ?? WC_STANDARD_FLAGS;
  if (!Number.isInteger(wcFlags) || wcFlags < 0 || wcFlags & ~KNOWN) throw new InvalidArgumentError(`createCqEx: unknown wcFlags ${String(wcFlags)}`);
  return CQ.create(context, attr.cqe, attr, (c, ch, h) => new CqEx(c, ch, h, wcFlags), (wcFlags & STAMPED) !== 0);
}
