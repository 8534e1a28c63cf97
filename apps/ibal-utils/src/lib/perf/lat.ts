// Latency tests, as perftest runs them:
// - WRITE (run_iter_lat_write): each side writes into the other's buffer
//   and waits for the peer's write by watching the last byte of its own
//   poll region change to the iteration count;
// - SEND (run_iter_lat_send): send/receive ping-pong;
// - READ and atomics (run_iter_lat): one request at a time, client only.
// Every iteration is timed at its post; the gaps between posts are the
// samples. The client moves first.
import { SendFlags, type CQ } from '@ibal/verbs';
import { failedStatus, isSuccess } from '../completions.js';
import type { IdleTimer } from '../idle-timer.js';
import { ProgressSpinner, yieldUntil } from '../yield.js';
import type { PerfTest } from './options.js';
import type { PerfDest } from './protocol.js';
import type { Receiver } from './receiver.js';
import type { PerfSide } from './resources.js';
import { latRow, type LatRow } from './stats.js';
import { sendWrFor } from './work-requests.js';

// Each wait below is synchronous for as long as the spin lasts, as
// perftest's loops are, and returns a promise only when it must yield: an
// await costs ~50 ns even when nothing is waited for, and a latency run
// takes one or two waits a message.

/** Polls for one send completion while the spinner allows; true when it came. */
function pollSend(cq: CQ, idle: IdleTimer, spinner: ProgressSpinner): boolean {
  for (;;) {
    const wcs = cq.poll(1);
    if (wcs.length === 1) {
      if (!isSuccess(wcs[0]!)) throw failedStatus(wcs[0]!);
      idle.progress();
      return true;
    }
    idle.check();
    if (!spinner.spin()) return false;
  }
}

/** One send completion: undefined when it came at once, else a promise of it. */
function oneCompletion(cq: CQ, idle: IdleTimer, spinner: ProgressSpinner): Promise<void> | undefined {
  spinner.begin();
  return pollSend(cq, idle, spinner) ? undefined : yieldUntil(() => pollSend(cq, idle, spinner));
}

/** Drives progress until the byte changes, while the spinner allows; true when it did. */
function byteSeen(buf: Uint8Array, at: number, value: number, idle: IdleTimer, spinner: ProgressSpinner): boolean {
  while (buf[at] !== value) {
    idle.check();
    if (!spinner.spin()) return false;
  }
  idle.progress();
  return true;
}

/**
 * The peer's writes land in this side's memory with no completion here:
 * undefined when the byte changed within the spin, else a promise of it.
 */
function byteBecomes(buf: Uint8Array, at: number, value: number, idle: IdleTimer, spinner: ProgressSpinner): Promise<void> | undefined {
  spinner.begin();
  return byteSeen(buf, at, value, idle, spinner) ? undefined : yieldUntil(() => byteSeen(buf, at, value, idle, spinner));
}

/** Zeroes the region the peer writes into, so the first awaited count (1) cannot be a leftover. */
export function resetPollRegion(side: PerfSide, size: number): void {
  side.mr.buf.fill(0, side.regionOffset, side.regionOffset + size);
}

export async function writeLat(side: PerfSide, remote: PerfDest, size: number, iters: number, isClient: boolean, idle: IdleTimer): Promise<LatRow> {
  const buf = side.mr.buf;
  const wr = sendWrFor('write', side, remote, size, side.regionOffset);
  wr.sendFlags = SendFlags.SIGNALED | (size <= side.inline ? SendFlags.INLINE : 0);
  const postAt = size - 1;
  const pollAt = side.regionOffset + size - 1;
  const posted = new Float64Array(iters);
  let scnt = 0;
  let ccnt = 0;
  let rcnt = 0;
  const spinner = new ProgressSpinner(side.ctx);
  while (scnt < iters || ccnt < iters || rcnt < iters) {
    if (rcnt < iters && !(scnt < 1 && isClient)) {
      rcnt++;
      const w = byteBecomes(buf, pollAt, rcnt & 0xff, idle, spinner);
      if (w) await w;
    }
    if (scnt < iters) {
      posted[scnt] = performance.now();
      buf[postAt] = ++scnt & 0xff;
      wr.wrId = scnt;
      side.qp.postSend(wr);
    }
    if (ccnt < iters) {
      const w = oneCompletion(side.sendCq, idle, spinner);
      if (w) await w;
      ccnt++;
    }
  }
  return latRow(size, posted, 2);
}

export async function sendLat(
  side: PerfSide,
  remote: PerfDest,
  receiver: Receiver,
  size: number,
  iters: number,
  cqMod: number,
  isClient: boolean,
  idle: IdleTimer,
): Promise<LatRow> {
  const wr = sendWrFor('send', side, remote, size, 0);
  const inline = size <= side.inline ? SendFlags.INLINE : 0;
  const posted = new Float64Array(iters);
  let scnt = 0;
  const spinner = new ProgressSpinner(side.ctx);
  while (scnt < iters || receiver.received < iters) {
    if (receiver.received < iters && !(scnt < 1 && isClient)) {
      const w = receiver.one(idle, spinner);
      if (w) await w;
    }
    if (scnt < iters) {
      posted[scnt] = performance.now();
      scnt++;
      // Unsignaled sends retire on their ACK; one in cq-mod (and the last) is waited for.
      const signal = scnt % cqMod === 0 || scnt === iters;
      wr.wrId = scnt;
      wr.sendFlags = inline | (signal ? SendFlags.SIGNALED : 0);
      side.qp.postSend(wr);
      if (signal) {
        const w = oneCompletion(side.sendCq, idle, spinner);
        if (w) await w;
      }
    }
  }
  return latRow(size, posted, 2);
}

export async function requestLat(test: PerfTest, side: PerfSide, remote: PerfDest, size: number, iters: number, idle: IdleTimer): Promise<LatRow> {
  const wr = sendWrFor(test, side, remote, size, 0);
  wr.sendFlags = SendFlags.SIGNALED;
  const posted = new Float64Array(iters);
  const spinner = new ProgressSpinner(side.ctx);
  for (let i = 0; i < iters; i++) {
    posted[i] = performance.now();
    wr.wrId = i;
    side.qp.postSend(wr);
    const w = oneCompletion(side.sendCq, idle, spinner);
    if (w) await w;
  }
  return latRow(size, posted, 1);
}
