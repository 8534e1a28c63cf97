// The ping-pong itself, as in ibv_rc_pingpong / ibv_ud_pingpong: rx-depth
// receives are posted up front and refilled when one is left; the client
// sends first; each side sends again once both its previous send and the
// peer's message have completed, until both counts reach `iters`.
import { CliError } from '../cli-error.js';
import type { CompletionSource } from '../completions.js';
import { failedStatus, isSuccess } from '../completions.js';
import type { IdleTimer } from '../idle-timer.js';

export const RECV_WRID = 1;
export const SEND_WRID = 2;

export interface PingpongPlan {
  iters: number;
  rxDepth: number;
  isClient: boolean;
  /** Receives already posted before the exchange. */
  routs: number;
  postSend(): void;
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
  const { iters, rxDepth, idle } = plan;
  let routs = plan.routs;
  let pending = RECV_WRID;
  const post = (): void => {
    try {
      plan.postSend();
    } catch (err) {
      throw new CliError(`Couldn't post send: ${(err as Error).message}`);
    }
  };
  if (plan.isClient) {
    post();
    pending |= SEND_WRID;
  }
  const start = performance.now();
  while (counts.rcnt < iters || counts.scnt < iters) {
    const wcs = await plan.completions.take(2);
    for (let i = 0; i < wcs.length; i++) {
      const wc = wcs[i]!;
      if (!isSuccess(wc)) throw failedStatus(wc);
      if (wc.wrId === SEND_WRID) {
        counts.scnt++;
      } else if (wc.wrId === RECV_WRID) {
        if (--routs <= 1) {
          routs += plan.postRecvs(rxDepth - routs);
          if (routs < rxDepth) throw new CliError(`Couldn't post receive (${routs})`);
        }
        counts.rcnt++;
      } else {
        throw new CliError(`Completion for unknown wr_id ${wc.wrId}`);
      }
      idle.progress();
      pending &= ~wc.wrId;
      if (counts.scnt < iters && pending === 0) {
        post();
        pending = RECV_WRID | SEND_WRID;
      }
    }
  }
  return (performance.now() - start) * 1000;
}

/** The two result lines the C tools print. */
export function resultLines(size: number, iters: number, usec: number): string[] {
  const bytes = size * iters * 2;
  return [
    `${bytes} bytes in ${(usec / 1e6).toFixed(2)} seconds = ${((bytes * 8) / usec).toFixed(2)} Mbit/sec`,
    `${iters} iters in ${(usec / 1e6).toFixed(2)} seconds = ${(usec / iters).toFixed(2)} usec/iter`,
  ];
}
