// The ping-pong itself, as in the rdma-core examples: rx-depth receives are
// posted up front and refilled when no more than one per QP is left; the
// client sends first, on every QP; each QP sends again once both its
// previous send and the peer's message on it have completed, until both
// counts (over all QPs) reach `iters`. One QP for rc/uc/ud, -q for srq.
import { CliError } from '../cli-error.js';
import { eventSource, failedStatus, isSuccess, pollingSource, type CompletionSource } from '../completions.js';
import type { CQ, CompChannel, WorkCompletion } from '@ibal/verbs';
import type { Cleanup } from '../cleanup.js';
import { IdleTimer } from '../idle-timer.js';
import type { PingpongOptions } from './options.js';

export const RECV_WRID = 1;
export const SEND_WRID = 2;

export interface PingpongPlan {
  iters: number;
  rxDepth: number;
  isClient: boolean;
  /** Receives already posted before the exchange. */
  routs: number;
  /** QPs taking part (srq-pingpong's -q; 1 otherwise). */
  numQp: number;
  /** Completions taken from the CQ at a time. */
  batch: number;
  /** Posts one send on QP `i`. */
  postSend(i: number): void;
  /** Which QP a completion is for (0 with a single QP). */
  qpIndex(wc: WorkCompletion): number;
  /** Posts up to `n` receives; returns how many went in. */
  postRecvs(n: number): number;
  completions: CompletionSource;
  idle: IdleTimer;
}

export interface PingpongCounts {
  rcnt: number;
  scnt: number;
}

/** Runs the exchange; returns the elapsed time in microseconds, measured from the first send. */
export async function runPingpong(plan: PingpongPlan, counts: PingpongCounts): Promise<number> {
  const { iters, rxDepth, numQp, idle } = plan;
  let routs = plan.routs;
  const pending = new Array<number>(numQp).fill(RECV_WRID);
  const post = (q: number): void => {
    try {
      plan.postSend(q);
    } catch (err) {
      throw new CliError(`Couldn't post send: ${(err as Error).message}`);
    }
    pending[q] = RECV_WRID | SEND_WRID;
  };
  if (plan.isClient) for (let q = 0; q < numQp; q++) post(q);
  const start = performance.now();
  while (counts.rcnt < iters || counts.scnt < iters) {
    const wcs = await plan.completions.take(plan.batch);
    for (let i = 0; i < wcs.length; i++) {
      const wc = wcs[i]!;
      if (!isSuccess(wc)) throw failedStatus(wc);
      const q = plan.qpIndex(wc);
      if (wc.wrId === SEND_WRID) {
        counts.scnt++;
      } else if (wc.wrId === RECV_WRID) {
        if (--routs <= numQp) {
          routs += plan.postRecvs(rxDepth - routs);
          if (routs < rxDepth) throw new CliError(`Couldn't post receive (${routs})`);
        }
        counts.rcnt++;
      } else {
        throw new CliError(`Completion for unknown wr_id ${wc.wrId}`);
      }
      idle.progress();
      pending[q]! &= ~wc.wrId;
      if (counts.scnt < iters && pending[q] === 0) post(q);
    }
  }
  return (performance.now() - start) * 1000;
}

/** What runTraffic adds to a plan: the options' counts and a completion source of its own. */
export type TrafficPlan = Omit<PingpongPlan, 'iters' | 'rxDepth' | 'isClient' | 'completions' | 'idle'>;

/**
 * The timed part every ping-pong shares: completions from `cq` (polled, or
 * through `channel` with -e), bounded by --timeout of no progress, the
 * exchange, its result lines, and a turn for the last ACKs to leave.
 */
export async function runTraffic(o: PingpongOptions, cleanup: Cleanup, cq: CQ, channel: CompChannel | undefined, plan: TrafficPlan, print: (line: string) => void): Promise<void> {
  const counts: PingpongCounts = { rcnt: 0, scnt: 0 };
  // The exchange has bounds of its own; this one starts with the traffic.
  const idle = new IdleTimer(o.timeoutMs, () => `waiting for completions (received ${counts.rcnt}, sent ${counts.scnt} of ${o.iters})`);
  cleanup.add(() => idle.stop());
  const completions = channel ? eventSource(cq, channel, idle) : pollingSource(cq, idle);
  // Events still owed an ack would make the CQ refuse to be destroyed.
  cleanup.add(() => completions.finish());
  const usec = await runPingpong({ ...plan, iters: o.iters, rxDepth: o.rxDepth, isClient: o.host !== undefined, completions, idle }, counts);
  for (const line of resultLines(o.size, o.iters, usec)) print(line);
  // The soft responder sends the ACK for the message just received from a
  // setImmediate, and destroying the QP discards it: leaving in this turn
  // would make the peer's last send fail with RETRY_EXC_ERR. One timer
  // turn lets it (and any datagram still being handed to the socket) out.
  await new Promise((resolve) => setTimeout(resolve, 20));
}

/** The two result lines the C tools print. */
export function resultLines(size: number, iters: number, usec: number): string[] {
  const bytes = size * iters * 2;
  return [
    `${bytes} bytes in ${(usec / 1e6).toFixed(2)} seconds = ${((bytes * 8) / usec).toFixed(2)} Mbit/sec`,
    `${iters} iters in ${(usec / 1e6).toFixed(2)} seconds = ${(usec / iters).toFixed(2)} usec/iter`,
  ];
}
