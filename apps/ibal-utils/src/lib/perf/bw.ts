// The client side of a bandwidth test (perftest's run_iter_bw): keep up to
// tx-depth WRs in flight, ask for a completion every cq-mod-th WR (and the
// last), and time every post and every signaled completion.
import { SendFlags } from '@ibal/verbs';
import { failedStatus, isSuccess } from '../completions.js';
import type { IdleTimer } from '../idle-timer.js';
import { nextTurn, ProgressSpinner } from '../yield.js';
import type { PerfTest } from './options.js';
import type { PerfDest } from './protocol.js';
import type { PerfSide } from './resources.js';
import { bwRow, type BwRow } from './stats.js';
import { sendWrFor } from './work-requests.js';

export interface BwPlan {
  test: PerfTest;
  size: number;
  iters: number;
  txDepth: number;
  cqMod: number;
}

export async function runBw(side: PerfSide, remote: PerfDest, p: BwPlan, idle: IdleTimer): Promise<BwRow> {
  const { qp, sendCq } = side;
  const { iters, txDepth, cqMod } = p;
  const posted = new Float64Array(iters);
  const completed = new Float64Array(iters);
  const signaled: number[] = [];
  const wr = sendWrFor(p.test, side, remote, p.size, 0);
  let scnt = 0;
  let ccnt = 0;
  const spinner = new ProgressSpinner(side.ctx);
  spinner.begin();
  while (ccnt < iters) {
    // RC completes in order, so a signaled WR's completion retires every
    // unsignaled one before it: `ccnt` is the count known to be done.
    while (scnt < iters && scnt - ccnt < txDepth) {
      const signal = (scnt + 1) % cqMod === 0 || scnt === iters - 1;
      wr.wrId = scnt;
      wr.sendFlags = signal ? SendFlags.SIGNALED : 0;
      posted[scnt] = performance.now();
      qp.postSend(wr);
      if (signal) signaled.push(scnt);
      scnt++;
    }
    const wcs = sendCq.poll(16);
    if (wcs.length === 0) {
      idle.check();
      if (!spinner.spin()) await nextTurn();
      continue;
    }
    const now = performance.now();
    for (let i = 0; i < wcs.length; i++) {
      const wc = wcs[i]!;
      if (!isSuccess(wc)) throw failedStatus(wc);
      completed[wc.wrId] = now;
      ccnt = wc.wrId + 1;
    }
    idle.progress();
  }
  return bwRow(p.size, posted, completed, signaled);
}
