// MPI's persistent requests (MPI_Send_init, MPI_Recv_init, MPI_Start): an
// operation's arguments bound once, started any number of times. A loop that
// exchanges the same buffers every step (a halo exchange, a pipeline) checks
// its arguments once, not every iteration.
import { InvalidArgumentError } from '@ibal/hca';
import { Request, settleWith, type Progress } from './request.js';
import type { Status } from './status.js';

export class Prequest extends Request<Status> {
  readonly #begin: (req: Prequest) => void;

  /** @internal `begin` starts one run of the operation, completing `req`. */
  constructor(engine: Progress, begin: (req: Prequest) => void) {
    super(engine);
    this.#begin = begin;
    // Inactive until started: MPI_Wait on an inactive persistent request
    // returns at once with an empty status.
    this.done = true;
    this.value = this.status;
  }

  /** True from start() until the operation completes (start() again only after that). */
  get active(): boolean {
    return !this.done;
  }

  /** MPI_Start: begins the operation again with the bound arguments. */
  start(): void {
    if (!this.done) throw new InvalidArgumentError('start: the persistent request is still active (wait for it first)');
    const st = this.status;
    st.source = -1;
    st.tag = -1;
    st.byteCount = 0;
    st.cancelled = false;
    this.error = undefined;
    this.value = undefined;
    this.done = false;
    try {
      this.#begin(this);
    } catch (err) {
      // Not started after all (a freed communicator, an aborted job): inactive again.
      this.done = true;
      this.value = this.status;
      throw err;
    }
  }

  /** MPI_Startall: starts every request in order (none if any is active). */
  static startAll(requests: readonly Prequest[]): void {
    for (const r of requests) {
      if (!(r instanceof Prequest)) throw new InvalidArgumentError('startAll: takes persistent requests (SendInit, SsendInit, RecvInit)');
      if (r.active) throw new InvalidArgumentError('startAll: a persistent request is still active (wait for it first)');
    }
    for (const r of requests) r.start();
  }
}

/**
 * A persistent collective (MPI-4's MPI_Allreduce_init and the rest): each
 * start() runs `run`, whose collective takes its place in the
 * communicator's order of collectives then, as a nonblocking one does when
 * called; every member starts its requests in the same order. An argument
 * error shows as the first start's failure.
 */
export function collectiveInit(engine: Progress, run: () => Promise<void>): Prequest {
  return new Prequest(engine, (req) => settleWith(engine, req, run().then(() => req.status)));
}
