// Receives for the SEND tests: as many posted as the receive depth allows,
// one more posted per completion until the run's count is covered, all
// scattering into the same buffer (the data is not looked at, as perftest).
import type { RecvWr } from '@ibal/verbs';
import { failedStatus, isSuccess } from '../completions.js';
import type { IdleTimer } from '../idle-timer.js';
import { nextTurn, ProgressSpinner, yieldUntil } from '../yield.js';
import type { PerfSide } from './resources.js';

export class Receiver {
  #posted = 0;
  received = 0;
  readonly #wr: RecvWr;

  constructor(
    readonly side: PerfSide,
    size: number,
    readonly total: number,
    depth: number,
  ) {
    this.#wr = { wrId: 0, sgList: [side.mr.sge(side.regionOffset, size)] };
    const first = Math.min(depth, total);
    for (let i = 0; i < first; i++) this.#post();
  }

  #post(): void {
    this.#wr.wrId = this.#posted++;
    this.side.qp.postRecv(this.#wr);
  }

  /**
   * Takes one receive completion (waiting, bounded by `idle`) and posts a
   * replacement if the run needs it. Undefined when it came within the
   * spin, else a promise that yields between spins (see lat.ts).
   */
  one(idle: IdleTimer, spinner: ProgressSpinner): Promise<void> | undefined {
    spinner.begin();
    return this.#pollOne(idle, spinner) ? undefined : yieldUntil(() => this.#pollOne(idle, spinner));
  }

  #pollOne(idle: IdleTimer, spinner: ProgressSpinner): boolean {
    const cq = this.side.recvCq;
    for (;;) {
      const wcs = cq.poll(1);
      if (wcs.length === 1) {
        const wc = wcs[0]!;
        if (!isSuccess(wc)) throw failedStatus(wc);
        this.received++;
        if (this.#posted < this.total) this.#post();
        idle.progress();
        return true;
      }
      idle.check();
      if (!spinner.spin()) return false;
    }
  }

  /** Takes completions until every receive of the run has completed. */
  async all(idle: IdleTimer): Promise<void> {
    const cq = this.side.recvCq;
    const spinner = new ProgressSpinner(this.side.ctx);
    spinner.begin();
    while (this.received < this.total) {
      const wcs = cq.poll(32);
      if (wcs.length === 0) {
        idle.check();
        if (!spinner.spin()) await nextTurn();
        continue;
      }
      for (let i = 0; i < wcs.length; i++) {
        const wc = wcs[i]!;
        if (!isSuccess(wc)) throw failedStatus(wc);
        this.received++;
      }
      // Posted after the loop: postRecv does not poll, but keep the CQ's array untouched while it is read.
      let more = Math.min(wcs.length, this.total - this.#posted);
      while (more-- > 0) this.#post();
      idle.progress();
    }
  }
}
