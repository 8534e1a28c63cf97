// MPI_Message: a message a matched probe (Mprobe, Improbe) has taken out of
// matching. Probe-then-receive is a race whenever two parts of a program
// receive on one communicator (two async loops here, two threads in C):
// the other may receive the probed message first. A matched probe hands
// the message to its caller alone, who receives it once, into a buffer
// sized from its status.
import { InvalidArgumentError } from '@ibal/hca';
import { PROC_NULL } from './constants.js';
import { bytesOf } from './args.js';
import { side, type Buf } from './dtype/buffer.js';
import type { Engine } from './p2p/engine.js';
import type { Unexpected } from './p2p/match.js';
import { Request, waitFor } from './request.js';
import { Status } from './status.js';

export class Message {
  /** The message's envelope: source, tag, byteCount (count once received into a typed array). */
  readonly status: Status;
  readonly #engine: Engine;
  #pending: Unexpected | undefined;
  #received = false;

  /** @internal `u` undefined: the message from PROC_NULL (MPI_MESSAGE_NO_PROC), which receives nothing. */
  constructor(engine: Engine, u: Unexpected | undefined) {
    this.#engine = engine;
    this.#pending = u;
    this.status = u ? new Status(u.source, u.tag, u.length) : new Status(PROC_NULL, -1, 0);
  }

  /** True once Recv, Irecv, recv or irecv took the message. */
  get received(): boolean {
    return this.#received;
  }

  #take(what: string): Unexpected | undefined {
    if (this.#received) throw new InvalidArgumentError(`${what}: this message was received already (a matched message is received once)`);
    this.#received = true;
    const u = this.#pending;
    this.#pending = undefined;
    return u;
  }

  /** MPI_Imrecv into a typed array or a buffer with a datatype; wait() gives the Status. */
  Irecv(buf: Buf): Request<Status> {
    const s = side(buf, 'Message.Irecv buffer', 'recv');
    const u = this.#take('Message.Irecv');
    const req = new Request<Status>(this.#engine);
    req.status.elementBytes = s.array.BYTES_PER_ELEMENT;
    req.finish = s.unpack;
    if (!u) {
      req.status.source = PROC_NULL;
      req.complete(req.status);
      return req;
    }
    this.#engine.receiveMatched({ source: u.source, tag: u.tag, buf: bytesOf(s.array), req: req as Request<unknown> }, u);
    return req;
  }

  /** MPI_Mrecv: resolves with the Status once the message is in `buf`. */
  Recv(buf: Buf): Promise<Status> {
    return waitFor(() => this.Irecv(buf));
  }

  /** The object receive of the message (mpi4py's Message.irecv). */
  irecv<T = unknown>(): Request<T> {
    const u = this.#take('Message.irecv');
    const req = new Request<T>(this.#engine);
    if (!u) {
      req.status.source = PROC_NULL;
      req.complete(undefined);
      return req;
    }
    this.#engine.receiveMatched({ source: u.source, tag: u.tag, buf: undefined, req: req as Request<unknown> }, u);
    return req;
  }

  /** Resolves with the value (mpi4py's Message.recv). */
  recv<T = unknown>(): Promise<T> {
    return waitFor(() => this.irecv<T>());
  }
}
