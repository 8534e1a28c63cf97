// Waiting for work completions, the two ways the rdma-core examples do it:
// busy polling (ibv_poll_cq in a loop) or sleeping on the completion channel
// (-e: ibv_get_cq_event, re-arm, poll). Both are bounded by an IdleTimer.
import type { CQ, CompChannel, WorkCompletion } from '@ibal/verbs';
import { wcOpcodeName, wcStatusName, WcStatus } from '@ibal/verbs';
import { CliError } from './cli-error.js';
import type { IdleTimer } from './idle-timer.js';
import { nextTurn } from './yield.js';

export interface CompletionSource {
  /**
   * Up to `n` completions; polling mode returns at least one, event mode may
   * return none after a spurious event. The array belongs to the CQ and is
   * overwritten by the next call.
   */
  take(n: number): Promise<readonly WorkCompletion[]>;
  /** Acknowledges the events taken (before the CQ is destroyed). */
  finish(): void;
}

export function pollingSource(cq: CQ, idle: IdleTimer): CompletionSource {
  return {
    async take(n) {
      for (;;) {
        const wcs = cq.poll(n);
        if (wcs.length > 0) return wcs;
        idle.check();
        await nextTurn();
      }
    },
    finish() {},
  };
}

/** Requires the CQ to have been created on `channel` and armed once (reqNotify) before traffic starts. */
export function eventSource(cq: CQ, channel: CompChannel, idle: IdleTimer): CompletionSource {
  let events = 0;
  return {
    async take(n) {
      const fired = await channel.getCqEvent({ signal: idle.signal });
      events++;
      if (fired !== cq) throw new CliError('CQ event for unknown CQ');
      cq.reqNotify();
      return cq.poll(n);
    },
    finish() {
      // ibv_ack_cq_events once for all, as the examples do after the loop.
      if (events > 0) channel.ackCqEvents(cq, events);
      events = 0;
    },
  };
}

/** The C tools' message for a failed completion, with the status by name. */
export function failedStatus(wc: WorkCompletion): CliError {
  return new CliError(`Failed status ${wcStatusName(wc.status)} (${wc.status}) for wr_id ${wc.wrId} (${wcOpcodeName(wc.opcode)})`);
}

export function isSuccess(wc: WorkCompletion): boolean {
  return wc.status === WcStatus.SUCCESS;
}
