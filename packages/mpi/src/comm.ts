// Communicators (MPI_Comm) with mpi4py's two flavours of every call:
// lower-case methods move any structured-cloneable value (v8 serialization,
// the structured clone algorithm), capitalised methods move typed arrays
// in place (no serialization; a single copy or none on the rendezvous
// path). Everything that may wait returns a Promise.
import { deserialize, serialize } from 'node:v8';
import { ResourceClosedError } from '@ibal/hca';
import { barrier } from './coll/barrier.js';
import { bcast } from './coll/bcast.js';
import { LocalGroup } from './coll/local-group.js';
import {
  typedAllgather,
  typedAllgatherv,
  typedAllreduce,
  typedAlltoall,
  typedAlltoallv,
  typedAlltoallw,
  typedBcast,
  typedGather,
  typedGatherv,
  typedReduce,
  typedReduceScatter,
  typedReduceScatterBlock,
  typedScan,
  typedScatter,
  typedScatterv,
  type Members,
} from './coll/typed.js';
import type { Coll } from './coll/util.js';
import { ANY_SOURCE, ANY_TAG, COMM_TYPE_SHARED, IN_PLACE, PROC_NULL, ROOT, TAG_UB, UNDEFINED } from './constants.js';
import { bytesOf, checkRank, checkTag, isTypedArray } from './args.js';
import { releaseAfter, side, type Buf } from './dtype/buffer.js';
import type { Datatype } from './dtype/datatype.js';
import { InvalidArgumentError } from './errors.js';
import { MAX, SUM, type Op, type TypedArray } from './ops.js';
import { MsgFlag } from './protocol/header.js';
import { sendBuffered } from './bsend.js';
import { CONGRUENT, Group, IDENT } from './group.js';
import { Message } from './message.js';
import { Prequest, collectiveInit } from './prequest.js';
import { Request, completedRequest, promiseRequest, waitFor } from './request.js';
import { Status } from './status.js';
import type { World } from './world.js';
// Type-only: the topology classes extend Comm, so comm.ts loads them when a
// topology is created, not at import (a cycle of class definitions).
import type { CartComm } from './topo/cart.js';
import type { DistGraphComm } from './topo/dist-graph.js';
import type { Intercomm } from './intercomm.js';

/** Point-to-point for one collective call with several tags (see Comm.collectiveChannel). */
export interface CollectiveChannel {
  isend(buf: TypedArray, dest: number, tag: number): Request<Status>;
  irecv(buf: TypedArray, source: number, tag: number): Request<Status>;
}

export { IN_PLACE };
export type SendBuf = Buf | typeof IN_PLACE;

export class Comm {
  /** This process's rank in the communicator. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** World ranks of the members, by communicator rank. */
  readonly group: readonly number[];
  /** Context id of point-to-point traffic; collectives use the next one. */
  readonly context: number;
  readonly #world: World;
  /** World ranks that point-to-point ranks name: the group itself, or an intercommunicator's remote group. */
  readonly #peers: readonly number[];
  readonly #local: LocalGroup | undefined;
  #collSeq = 0;
  /** What the typed collectives' entries (coll/typed.ts) need of this communicator. */
  readonly #members: Members;
  #freed = false;

  /** @internal `peers`: the remote group of an intercommunicator (see Intercomm). */
  constructor(world: World, context: number, group: readonly number[], peers: readonly number[] = group) {
    this.#world = world;
    this.context = context;
    this.group = group;
    this.#peers = peers;
    this.size = group.length;
    this.rank = group.indexOf(world.rank);
    this.#local = LocalGroup.for(world.engine.endpoints, world.engine.transports, group, this.rank);
    this.#members = { rank: this.rank, size: this.size, coll: () => this.#coll() };
  }

  /** @internal The world this communicator belongs to (one-sided windows reach its engine through it). */
  static worldOf(comm: Comm): World {
    comm.#check();
    return comm.#world;
  }

  getRank(): number {
    return this.rank;
  }

  getSize(): number {
    return this.size;
  }

  #check(): void {
    if (this.#freed) throw new ResourceClosedError('communicator');
    this.#world.check();
  }

  // ---- point to point, typed arrays ---------------------------------------

  #isendBytes(ctx: number, dest: number, tag: number, data: Uint8Array, flags: number): Request<Status> {
    const engine = this.#world.engine;
    const req = new Request<Status>(engine);
    engine.isend(req as Request<unknown>, ctx, this.#peers[dest]!, this.rank, tag, data, flags);
    return req;
  }

  #irecvBytes(ctx: number, source: number, tag: number, buf: Uint8Array | undefined, elementBytes: number, finish?: (bytes: number) => void): Request<unknown> {
    const engine = this.#world.engine;
    const req = new Request<unknown>(engine);
    req.status.elementBytes = elementBytes;
    // Before irecv: a message already here completes the request inside it.
    req.finish = finish;
    engine.irecv(req, ctx, source, tag, buf);
    return req;
  }

  #p2pArgs(peer: number, tag: number, recv: boolean): void {
    this.#check();
    checkRank(peer, this.#peers.length, recv ? 'source' : 'dest', recv ? [ANY_SOURCE, PROC_NULL] : [PROC_NULL]);
    checkTag(tag, 'tag', recv, TAG_UB);
  }

  /** MPI_Isend of a typed array, or of a buffer with a datatype (see Buf). */
  Isend(buf: Buf, dest: number, tag = 0): Request<Status> {
    return this.#isend(buf, dest, tag, 0, 'Isend buffer');
  }

  #isend(buf: Buf, dest: number, tag: number, flags: number, what: string): Request<Status> {
    // A plain typed array takes no detour: this is the ping-pong's path.
    const s = isTypedArray(buf) ? undefined : side(buf, what, 'send');
    this.#p2pArgs(dest, tag, false);
    if (dest === PROC_NULL) return completedRequest(this.#world.engine, new Status(PROC_NULL, tag, 0));
    const req = this.#isendBytes(this.context, dest, tag, bytesOf(s ? s.array : (buf as TypedArray)), flags);
    if (s) releaseAfter(req, s);
    return req;
  }

  /** MPI_Irecv into a typed array, or a buffer with a datatype; wait() gives the Status. */
  Irecv(buf: Buf, source: number = ANY_SOURCE, tag: number = ANY_TAG): Request<Status> {
    // A plain typed array takes no detour: this is the ping-pong's path.
    const s = isTypedArray(buf) ? undefined : side(buf, 'Irecv buffer', 'recv');
    const array = s ? s.array : (buf as TypedArray);
    this.#p2pArgs(source, tag, true);
    if (source === PROC_NULL) return completedRequest(this.#world.engine, new Status(PROC_NULL, ANY_TAG, 0));
    return this.#irecvBytes(this.context, source, tag, bytesOf(array), array.BYTES_PER_ELEMENT, s?.unpack) as Request<Status>;
  }

  /**
   * MPI_Issend: a synchronous-mode send, complete only once the matching
   * receive has started (so also once `buf` may be reused).
   */
  Issend(buf: Buf, dest: number, tag = 0): Request<Status> {
    return this.#isend(buf, dest, tag, MsgFlag.SYNC, 'Issend buffer');
  }

  /** MPI_Ssend: resolves once the receiver has matched the message. */
  Ssend(buf: Buf, dest: number, tag = 0): Promise<Status> {
    return waitFor(() => this.Issend(buf, dest, tag));
  }

  /**
   * MPI_Ibsend: a buffered-mode send, complete at once: the data goes from
   * a copy held in the buffer bufferAttach set aside (BufferError when it
   * has no room), whatever the receiver does.
   */
  Ibsend(buf: Buf, dest: number, tag = 0): Request<Status> {
    const s = side(buf, 'Ibsend buffer', 'send', false);
    const bytes = bytesOf(s.array);
    this.#p2pArgs(dest, tag, false);
    const status = new Status(dest === PROC_NULL ? PROC_NULL : this.rank, tag, dest === PROC_NULL ? 0 : bytes.byteLength);
    if (dest !== PROC_NULL) sendBuffered(bytes, (copy) => this.#isendBytes(this.context, dest, tag, copy, 0));
    return completedRequest(this.#world.engine, status);
  }

  /** MPI_Bsend (see Ibsend). */
  Bsend(buf: Buf, dest: number, tag = 0): Promise<Status> {
    return waitFor(() => this.Ibsend(buf, dest, tag));
  }

  /**
   * MPI_Irsend: a ready-mode send, which the program promises meets a
   * receive already posted. MPI lets it be a standard send, and it is one:
   * the promise buys nothing on these transports.
   */
  Irsend(buf: Buf, dest: number, tag = 0): Request<Status> {
    return this.Isend(buf, dest, tag);
  }

  /** MPI_Rsend (see Irsend). */
  Rsend(buf: Buf, dest: number, tag = 0): Promise<Status> {
    return this.Send(buf, dest, tag);
  }

  // ---- persistent requests: arguments checked once, start() runs them ----

  /** MPI_Send_init: a persistent send of `buf` (its contents as they are at each start()). */
  SendInit(buf: Buf, dest: number, tag = 0): Prequest {
    return this.#sendInit(buf, dest, tag, 0, 'SendInit');
  }

  /** MPI_Ssend_init: a persistent synchronous-mode send. */
  SsendInit(buf: Buf, dest: number, tag = 0): Prequest {
    return this.#sendInit(buf, dest, tag, MsgFlag.SYNC, 'SsendInit');
  }

  #sendInit(buf: Buf, dest: number, tag: number, flags: number, what: string): Prequest {
    const s = side(buf, `${what} buffer`, 'send', false);
    this.#p2pArgs(dest, tag, false);
    const engine = this.#world.engine;
    const bytes = bytesOf(s.array);
    const ctx = this.context;
    return new Prequest(engine, (req) => {
      this.#check();
      // The buffer's contents as they are at this start, as MPI_Start sends them.
      s.pack?.();
      if (dest === PROC_NULL) {
        req.status.source = PROC_NULL;
        req.status.tag = tag;
        req.complete(req.status);
        return;
      }
      engine.isend(req as Request<unknown>, ctx, this.#peers[dest]!, this.rank, tag, bytes, flags);
    });
  }

  /** MPI_Recv_init: a persistent receive into `buf`. */
  RecvInit(buf: Buf, source: number = ANY_SOURCE, tag: number = ANY_TAG): Prequest {
    const s = side(buf, 'RecvInit buffer', 'recv', false);
    this.#p2pArgs(source, tag, true);
    const engine = this.#world.engine;
    const bytes = bytesOf(s.array);
    const ctx = this.context;
    const req = new Prequest(engine, (r) => {
      this.#check();
      if (source === PROC_NULL) {
        r.status.source = PROC_NULL;
        r.status.tag = ANY_TAG;
        r.complete(r.status);
        return;
      }
      engine.irecv(r as Request<unknown>, ctx, source, tag, bytes);
    });
    req.status.elementBytes = s.array.BYTES_PER_ELEMENT;
    req.finish = s.unpack;
    return req;
  }

  // Send and Recv hand back the request's own promise rather than wrap it
  // in another async frame (two promise hops less per call); a bad argument
  // still rejects rather than throws. They spell out waitFor: its closure
  // would be an allocation per call on the ping-pong's path.

  /** MPI_Send: resolves when `buf` may be reused. */
  Send(buf: Buf, dest: number, tag = 0): Promise<Status> {
    try {
      return this.Isend(buf, dest, tag).wait();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** MPI_Recv: resolves with the Status once the message is in `buf`. */
  Recv(buf: Buf, source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Status> {
    try {
      return this.Irecv(buf, source, tag).wait();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** MPI_Sendrecv. */
  async Sendrecv(sendbuf: Buf, dest: number, sendtag: number, recvbuf: Buf, source: number = ANY_SOURCE, recvtag: number = ANY_TAG): Promise<Status> {
    const r = this.Irecv(recvbuf, source, recvtag);
    const s = this.Isend(sendbuf, dest, sendtag);
    const st = await r.wait();
    await s.wait();
    return st;
  }

  /** MPI_Sendrecv_replace: sends `buf`, then receives into it (the bytes sent are copied first). */
  async SendrecvReplace(buf: Buf, dest: number, sendtag: number, source: number = ANY_SOURCE, recvtag: number = ANY_TAG): Promise<Status> {
    const s = side(buf, 'SendrecvReplace buffer', 'send', false);
    // A packed copy is the sender's own already; the caller's memory is copied.
    return this.Sendrecv(s.pack ? s.array : s.array.slice(), dest, sendtag, buf, source, recvtag);
  }

  // ---- point to point, objects ------------------------------------------

  /** Sends any structured-cloneable value (mpi4py's comm.isend). */
  isend(obj: unknown, dest: number, tag = 0): Request<Status> {
    this.#p2pArgs(dest, tag, false);
    if (dest === PROC_NULL) return completedRequest(this.#world.engine, new Status(PROC_NULL, tag, 0));
    return this.#isendBytes(this.context, dest, tag, pack(obj), MsgFlag.OBJECT);
  }

  /** Receives a value; wait() gives it (status on the request). */
  irecv<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG): Request<T> {
    this.#p2pArgs(source, tag, true);
    if (source === PROC_NULL) return completedRequest(this.#world.engine, undefined as T);
    return this.#irecvBytes(this.context, source, tag, undefined, 1) as Request<T>;
  }

  async send(obj: unknown, dest: number, tag = 0): Promise<Status> {
    return this.isend(obj, dest, tag).wait();
  }

  /** A synchronous-mode send of a value (mpi4py's comm.issend): complete once the receiver matched it. */
  issend(obj: unknown, dest: number, tag = 0): Request<Status> {
    this.#p2pArgs(dest, tag, false);
    if (dest === PROC_NULL) return completedRequest(this.#world.engine, new Status(PROC_NULL, tag, 0));
    return this.#isendBytes(this.context, dest, tag, pack(obj), MsgFlag.OBJECT | MsgFlag.SYNC);
  }

  async ssend(obj: unknown, dest: number, tag = 0): Promise<Status> {
    return this.issend(obj, dest, tag).wait();
  }

  /** A buffered-mode send of a value (mpi4py's comm.ibsend): complete at once, its serialized bytes held in the attached buffer (see Ibsend). */
  ibsend(obj: unknown, dest: number, tag = 0): Request<Status> {
    this.#p2pArgs(dest, tag, false);
    if (dest === PROC_NULL) return completedRequest(this.#world.engine, new Status(PROC_NULL, tag, 0));
    const bytes = pack(obj);
    sendBuffered(bytes, (copy) => this.#isendBytes(this.context, dest, tag, copy, MsgFlag.OBJECT));
    return completedRequest(this.#world.engine, new Status(this.rank, tag, bytes.byteLength));
  }

  async bsend(obj: unknown, dest: number, tag = 0): Promise<Status> {
    return this.ibsend(obj, dest, tag).wait();
  }

  /** Resolves with the value; pass a Status to learn its source, tag and size. */
  async recv<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG, status?: Status): Promise<T> {
    const req = this.irecv<T>(source, tag);
    const v = await req.wait();
    if (status) Object.assign(status, req.status);
    return v;
  }

  async sendrecv<T = unknown>(sendobj: unknown, dest: number, sendtag = 0, source: number = ANY_SOURCE, recvtag: number = ANY_TAG, status?: Status): Promise<T> {
    const r = this.irecv<T>(source, recvtag);
    const s = this.isend(sendobj, dest, sendtag);
    const v = await r.wait();
    await s.wait();
    if (status) Object.assign(status, r.status);
    return v;
  }

  /** MPI_Iprobe: the envelope of a matching message that has arrived, or undefined. */
  iprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Status | undefined {
    this.#p2pArgs(source, tag, true);
    if (source === PROC_NULL) return new Status(PROC_NULL, ANY_TAG, 0);
    const engine = this.#world.engine;
    engine.progress();
    const u = engine.peek(this.context, source, tag);
    return u ? new Status(u.source, u.tag, u.length) : undefined;
  }

  /** MPI_Probe: waits for a matching message without receiving it. */
  async probe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Status> {
    let st = this.iprobe(source, tag);
    if (!st) await this.#world.engine.until(() => (st = this.iprobe(source, tag)) !== undefined);
    return st!;
  }

  /**
   * MPI_Improbe: takes a matching message that has arrived out of matching
   * (no other receive can have it now) and hands it over to be received
   * with msg.Recv(buf) or msg.recv(); undefined when none has arrived.
   */
  Improbe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Message | undefined {
    this.#p2pArgs(source, tag, true);
    const engine = this.#world.engine;
    if (source === PROC_NULL) return new Message(engine, undefined);
    engine.progress();
    const u = engine.take(this.context, source, tag);
    return u && new Message(engine, u);
  }

  /** MPI_Mprobe: waits for a matching message and takes it (see Improbe). */
  async Mprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Message> {
    let m = this.Improbe(source, tag);
    if (!m) await this.#world.engine.until(() => (m = this.Improbe(source, tag)) !== undefined);
    return m!;
  }

  /** mpi4py's comm.improbe: Improbe (the Message receives objects and typed arrays alike). */
  improbe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Message | undefined {
    return this.Improbe(source, tag);
  }

  async mprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Message> {
    return this.Mprobe(source, tag);
  }

  Iprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Status | undefined {
    return this.iprobe(source, tag);
  }

  async Probe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Status> {
    return this.probe(source, tag);
  }

  // ---- collectives, typed arrays ------------------------------------------

  #nextCollTag(): number {
    this.#check();
    this.#intraOnly();
    return this.#collSeq++ & TAG_UB;
  }

  /** MPI_Comm_test_inter. */
  get isInter(): boolean {
    return this.#peers !== this.group;
  }

  // An intercommunicator has the collectives Intercomm implements; the rest
  // (and what creates communicators from it) fail here rather than run
  // with a meaning MPI does not give them.
  #intraOnly(): void {
    if (this.isInter) throw new InvalidArgumentError('this call is not available on an intercommunicator: merge() it into an intracommunicator first (Intercomm has Barrier, Bcast, Reduce, Gather, Scatter, Allreduce, Allgather and Alltoall)');
  }

  #coll(): Coll {
    const tag = this.#nextCollTag();
    const ctx = this.context + 1;
    return {
      rank: this.rank,
      size: this.size,
      large: this.#world.config.collLarge,
      local: this.#local,
      isend: (buf, dest) => this.#isendBytes(ctx, dest, tag, bytesOf(buf), 0),
      irecv: (buf, source) => this.#irecvBytes(ctx, source, tag, bytesOf(buf), buf.BYTES_PER_ELEMENT) as Request<Status>,
    };
  }

  #root(root: number): void {
    checkRank(root, this.size, 'root');
  }

  async Barrier(): Promise<void> {
    return barrier(this.#coll());
  }

  /** MPI_Bcast: root's buffer into everyone's. */
  async Bcast(buf: Buf, root = 0): Promise<void> {
    return typedBcast(this.#members, buf, root);
  }

  /** MPI_Reduce; IN_PLACE as the root's sendbuf: its recvbuf holds its contribution. */
  async Reduce(sendbuf: SendBuf, recvbuf: Buf | undefined, op: Op = SUM, root = 0): Promise<void> {
    return typedReduce(this.#members, sendbuf, recvbuf, op, root);
  }

  /** MPI_Allreduce; IN_PLACE as sendbuf: recvbuf holds this rank's contribution. */
  async Allreduce(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Promise<void> {
    return typedAllreduce(this.#members, sendbuf, recvbuf, op);
  }

  /** MPI_Gather; IN_PLACE as the root's sendbuf: its block is in recvbuf already. */
  async Gather(sendbuf: SendBuf, recvbuf: Buf | undefined, root = 0): Promise<void> {
    return typedGather(this.#members, sendbuf, recvbuf, root);
  }

  /** MPI_Gatherv: counts and displacements in elements of recvbuf (instances of its datatype); IN_PLACE as for Gather. */
  async Gatherv(sendbuf: SendBuf, recvbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, root = 0): Promise<void> {
    return typedGatherv(this.#members, sendbuf, recvbuf, counts, displs, root);
  }

  /** MPI_Scatter; IN_PLACE as the root's recvbuf: its block stays where it is in sendbuf. */
  async Scatter(sendbuf: Buf | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Promise<void> {
    return typedScatter(this.#members, sendbuf, recvbuf, root);
  }

  /** MPI_Scatterv: counts and displacements in elements of sendbuf (instances of its datatype); IN_PLACE as for Scatter. */
  async Scatterv(sendbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Promise<void> {
    return typedScatterv(this.#members, sendbuf, counts, displs, recvbuf, root);
  }

  /** MPI_Allgather; IN_PLACE as sendbuf: each rank's block is in recvbuf already. */
  async Allgather(sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
    return typedAllgather(this.#members, sendbuf, recvbuf);
  }

  /** MPI_Allgatherv: counts and displacements in elements of recvbuf (instances of its datatype); IN_PLACE as for Allgather. */
  async Allgatherv(sendbuf: SendBuf, recvbuf: Buf, counts: number[], displs?: number[]): Promise<void> {
    return typedAllgatherv(this.#members, sendbuf, recvbuf, counts, displs);
  }

  /** MPI_Alltoall; IN_PLACE as sendbuf: recvbuf holds the blocks to send and gets those received. */
  async Alltoall(sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
    return typedAlltoall(this.#members, sendbuf, recvbuf);
  }

  /**
   * MPI_Alltoallv: each side's counts and displacements in its own elements
   * (instances of its datatype). IN_PLACE as sendbuf: the blocks sent are
   * recvbuf's, by the receive counts and displacements (the send ones are
   * ignored, as MPI says).
   */
  async Alltoallv(sendbuf: SendBuf, scounts: number[] | undefined, sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Promise<void> {
    return typedAlltoallv(this.#members, sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls);
  }

  /**
   * MPI_Alltoallw: block j goes to rank j as scounts[j] instances of
   * stypes[j] from byte sdispls[j] of sendbuf; block j of recvbuf comes from
   * rank j likewise. Each pair of blocks needs matching elements only.
   */
  async Alltoallw(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Promise<void> {
    return typedAlltoallw(this.#members, sendbuf, scounts, sdispls, stypes, recvbuf, rcounts, rdispls, rtypes);
  }

  async Scan(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Promise<void> {
    return typedScan(this.#members, sendbuf, recvbuf, op, false);
  }

  /** MPI_Exscan; rank 0's recvbuf is left as it was. */
  async Exscan(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Promise<void> {
    return typedScan(this.#members, sendbuf, recvbuf, op, true);
  }

  /**
   * MPI_Reduce_scatter: block i (counts[i] elements of recvbuf, instances of
   * its datatype) of the reduction goes to rank i. IN_PLACE as sendbuf:
   * recvbuf holds the whole input, and this rank's block lands at its start.
   */
  async ReduceScatter(sendbuf: SendBuf, recvbuf: Buf, counts: number[], op: Op = SUM): Promise<void> {
    return typedReduceScatter(this.#members, sendbuf, recvbuf, counts, op);
  }

  /** MPI_Reduce_scatter_block: ReduceScatter with recvbuf's count for every rank (with IN_PLACE, recvbuf's count over the ranks). */
  async ReduceScatterBlock(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Promise<void> {
    return typedReduceScatterBlock(this.#members, sendbuf, recvbuf, op);
  }

  /** MPI_Ibarrier. */
  Ibarrier(): Request<void> {
    return promiseRequest(this.#world.engine, this.Barrier());
  }

  /** MPI_Ibcast. */
  Ibcast(buf: Buf, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Bcast(buf, root));
  }

  // The other nonblocking collectives, as mpi4py names them. Each starts its
  // collective at once (it takes its place in this communicator's order of
  // collectives when called, as MPI requires) and progresses while the
  // caller does other work; wait() on the request, or Request.waitAll.

  /** MPI_Ireduce. */
  Ireduce(sendbuf: SendBuf, recvbuf: Buf | undefined, op: Op = SUM, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Reduce(sendbuf, recvbuf, op, root));
  }

  /** MPI_Igather. */
  Igather(sendbuf: SendBuf, recvbuf: Buf | undefined, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Gather(sendbuf, recvbuf, root));
  }

  /** MPI_Igatherv. */
  Igatherv(sendbuf: SendBuf, recvbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Gatherv(sendbuf, recvbuf, counts, displs, root));
  }

  /** MPI_Iscatter. */
  Iscatter(sendbuf: Buf | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Scatter(sendbuf, recvbuf, root));
  }

  /** MPI_Iscatterv. */
  Iscatterv(sendbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Request<void> {
    return promiseRequest(this.#world.engine, this.Scatterv(sendbuf, counts, displs, recvbuf, root));
  }

  /** MPI_Iallgather. */
  Iallgather(sendbuf: SendBuf, recvbuf: Buf): Request<void> {
    return promiseRequest(this.#world.engine, this.Allgather(sendbuf, recvbuf));
  }

  /** MPI_Iallgatherv. */
  Iallgatherv(sendbuf: SendBuf, recvbuf: Buf, counts: number[], displs?: number[]): Request<void> {
    return promiseRequest(this.#world.engine, this.Allgatherv(sendbuf, recvbuf, counts, displs));
  }

  /** MPI_Ialltoall. */
  Ialltoall(sendbuf: SendBuf, recvbuf: Buf): Request<void> {
    return promiseRequest(this.#world.engine, this.Alltoall(sendbuf, recvbuf));
  }

  /** MPI_Ialltoallv. */
  Ialltoallv(sendbuf: SendBuf, scounts: number[] | undefined, sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Request<void> {
    return promiseRequest(this.#world.engine, this.Alltoallv(sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls));
  }

  /** MPI_Ialltoallw. */
  Ialltoallw(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Request<void> {
    return promiseRequest(this.#world.engine, this.Alltoallw(sendbuf, scounts, sdispls, stypes, recvbuf, rcounts, rdispls, rtypes));
  }

  /** MPI_Iscan. */
  Iscan(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Request<void> {
    return promiseRequest(this.#world.engine, this.Scan(sendbuf, recvbuf, op));
  }

  /** MPI_Iexscan. */
  Iexscan(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Request<void> {
    return promiseRequest(this.#world.engine, this.Exscan(sendbuf, recvbuf, op));
  }

  /** MPI_Ireduce_scatter. */
  IreduceScatter(sendbuf: SendBuf, recvbuf: Buf, counts: number[], op: Op = SUM): Request<void> {
    return promiseRequest(this.#world.engine, this.ReduceScatter(sendbuf, recvbuf, counts, op));
  }

  /** MPI_Ireduce_scatter_block. */
  IreduceScatterBlock(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Request<void> {
    return promiseRequest(this.#world.engine, this.ReduceScatterBlock(sendbuf, recvbuf, op));
  }

  /** MPI_Iallreduce. */
  Iallreduce(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Request<void> {
    return promiseRequest(this.#world.engine, this.Allreduce(sendbuf, recvbuf, op));
  }

  // ---- persistent collectives (MPI-4): arguments bound once, start() runs them
  // (see collectiveInit). An iterative solver's Allreduce or a pipeline's
  // Bcast is set up once and started every step.

  /** MPI_Barrier_init. */
  BarrierInit(): Prequest {
    return collectiveInit(this.#world.engine, () => this.Barrier());
  }

  /** MPI_Bcast_init. */
  BcastInit(buf: Buf, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Bcast(buf, root));
  }

  /** MPI_Reduce_init. */
  ReduceInit(sendbuf: SendBuf, recvbuf: Buf | undefined, op: Op = SUM, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Reduce(sendbuf, recvbuf, op, root));
  }

  /** MPI_Allreduce_init. */
  AllreduceInit(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Prequest {
    return collectiveInit(this.#world.engine, () => this.Allreduce(sendbuf, recvbuf, op));
  }

  /** MPI_Gather_init. */
  GatherInit(sendbuf: SendBuf, recvbuf: Buf | undefined, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Gather(sendbuf, recvbuf, root));
  }

  /** MPI_Gatherv_init. */
  GathervInit(sendbuf: SendBuf, recvbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Gatherv(sendbuf, recvbuf, counts, displs, root));
  }

  /** MPI_Scatter_init. */
  ScatterInit(sendbuf: Buf | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Scatter(sendbuf, recvbuf, root));
  }

  /** MPI_Scatterv_init. */
  ScattervInit(sendbuf: Buf | undefined, counts: number[] | undefined, displs: number[] | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Prequest {
    return collectiveInit(this.#world.engine, () => this.Scatterv(sendbuf, counts, displs, recvbuf, root));
  }

  /** MPI_Allgather_init. */
  AllgatherInit(sendbuf: SendBuf, recvbuf: Buf): Prequest {
    return collectiveInit(this.#world.engine, () => this.Allgather(sendbuf, recvbuf));
  }

  /** MPI_Allgatherv_init. */
  AllgathervInit(sendbuf: SendBuf, recvbuf: Buf, counts: number[], displs?: number[]): Prequest {
    return collectiveInit(this.#world.engine, () => this.Allgatherv(sendbuf, recvbuf, counts, displs));
  }

  /** MPI_Alltoall_init. */
  AlltoallInit(sendbuf: SendBuf, recvbuf: Buf): Prequest {
    return collectiveInit(this.#world.engine, () => this.Alltoall(sendbuf, recvbuf));
  }

  /** MPI_Alltoallv_init. */
  AlltoallvInit(sendbuf: SendBuf, scounts: number[] | undefined, sdispls: number[] | undefined, recvbuf: Buf, rcounts: number[], rdispls?: number[]): Prequest {
    return collectiveInit(this.#world.engine, () => this.Alltoallv(sendbuf, scounts, sdispls, recvbuf, rcounts, rdispls));
  }

  /** MPI_Alltoallw_init. */
  AlltoallwInit(sendbuf: ArrayBufferView, scounts: number[], sdispls: number[], stypes: Datatype[], recvbuf: ArrayBufferView, rcounts: number[], rdispls: number[], rtypes: Datatype[]): Prequest {
    return collectiveInit(this.#world.engine, () => this.Alltoallw(sendbuf, scounts, sdispls, stypes, recvbuf, rcounts, rdispls, rtypes));
  }

  /** MPI_Scan_init. */
  ScanInit(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Prequest {
    return collectiveInit(this.#world.engine, () => this.Scan(sendbuf, recvbuf, op));
  }

  /** MPI_Exscan_init. */
  ExscanInit(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Prequest {
    return collectiveInit(this.#world.engine, () => this.Exscan(sendbuf, recvbuf, op));
  }

  /** MPI_Reduce_scatter_init. */
  ReduceScatterInit(sendbuf: SendBuf, recvbuf: Buf, counts: number[], op: Op = SUM): Prequest {
    return collectiveInit(this.#world.engine, () => this.ReduceScatter(sendbuf, recvbuf, counts, op));
  }

  /** MPI_Reduce_scatter_block_init. */
  ReduceScatterBlockInit(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Prequest {
    return collectiveInit(this.#world.engine, () => this.ReduceScatterBlock(sendbuf, recvbuf, op));
  }

  // ---- collectives, objects ---------------------------------------------

  async barrier(): Promise<void> {
    return this.Barrier();
  }

  /** Broadcasts any structured-cloneable value from root; resolves with it everywhere. */
  async bcast<T>(obj: T, root = 0): Promise<T> {
    this.#root(root);
    let data: Uint8Array | undefined = this.rank === root ? pack(obj) : undefined;
    const c = this.#coll();
    const len = Float64Array.of(data?.length ?? 0);
    await bcast(c, len, root);
    const c2 = this.#coll();
    data ??= new Uint8Array(len[0]!);
    await bcast(c2, data, root);
    return this.rank === root ? obj : (deserialize(data) as T);
  }

  /** Gathers one value per rank at root (an array there, undefined elsewhere). */
  async gather<T>(obj: T, root = 0): Promise<T[] | undefined> {
    this.#root(root);
    const ctx = this.context + 1;
    const tag = this.#nextCollTag();
    if (this.rank !== root) {
      await this.#isendBytes(ctx, root, tag, pack(obj), MsgFlag.OBJECT).wait();
      return undefined;
    }
    const reqs = this.group.map((_, i) => (i === root ? undefined : this.#irecvBytes(ctx, i, tag, undefined, 1)));
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(i === root ? obj : ((await reqs[i]!.wait()) as T));
    return out;
  }

  /** Every rank gets every rank's value. */
  async allgather<T>(obj: T): Promise<T[]> {
    const all = await this.gather(obj, 0);
    return this.bcast(all as T[], 0);
  }

  /** Rank i gets element i of root's array. */
  async scatter<T>(objs: T[] | undefined, root = 0): Promise<T> {
    this.#root(root);
    const ctx = this.context + 1;
    const tag = this.#nextCollTag();
    if (this.rank !== root) return (await this.#irecvBytes(ctx, root, tag, undefined, 1).wait()) as T;
    if (!Array.isArray(objs) || objs.length !== this.size) throw new InvalidArgumentError(`scatter: root needs an array of ${this.size} values`);
    const reqs = objs.map((o, i) => (i === root ? undefined : this.#isendBytes(ctx, i, tag, pack(o), MsgFlag.OBJECT)));
    for (const r of reqs) if (r) await r.wait();
    return objs[root]!;
  }

  /** Rank j gets element j of every rank's array, in rank order. */
  async alltoall<T>(objs: T[]): Promise<T[]> {
    if (!Array.isArray(objs) || objs.length !== this.size) throw new InvalidArgumentError(`alltoall needs an array of ${this.size} values`);
    const ctx = this.context + 1;
    const tag = this.#nextCollTag();
    const recvs = this.group.map((_, i) => (i === this.rank ? undefined : this.#irecvBytes(ctx, i, tag, undefined, 1)));
    const sends = objs.map((o, i) => (i === this.rank ? undefined : this.#isendBytes(ctx, i, tag, pack(o), MsgFlag.OBJECT)));
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(i === this.rank ? objs[i]! : ((await recvs[i]!.wait()) as T));
    for (const s of sends) if (s) await s.wait();
    return out;
  }

  /** Reduces numbers (or arrays of numbers) with a built-in or user Op, at root. */
  async reduce(value: number | number[], op: Op = SUM, root = 0): Promise<number | number[] | undefined> {
    const arr = numbers(value, 'reduce');
    // On an intercommunicator the result is the root's, which passes ROOT.
    const out = (this.isInter ? root === ROOT : this.rank === root) ? new Float64Array(arr.length) : undefined;
    await this.Reduce(arr, out, op, root);
    if (!out) return undefined;
    return Array.isArray(value) ? Array.from(out) : out[0]!;
  }

  /** Reduces numbers (or arrays of numbers) everywhere. */
  async allreduce(value: number | number[], op: Op = SUM): Promise<number | number[]> {
    const arr = numbers(value, 'allreduce');
    const out = new Float64Array(arr.length);
    await this.Allreduce(arr, out, op);
    return Array.isArray(value) ? Array.from(out) : out[0]!;
  }

  /** The inclusive prefix reduction of numbers (or arrays of numbers) over ranks 0..this one. */
  async scan(value: number | number[], op: Op = SUM): Promise<number | number[]> {
    const arr = numbers(value, 'scan');
    const out = new Float64Array(arr.length);
    await this.Scan(arr, out, op);
    return Array.isArray(value) ? Array.from(out) : out[0]!;
  }

  /** The exclusive prefix reduction over ranks 0..this one - 1; undefined on rank 0 (mpi4py's None). */
  async exscan(value: number | number[], op: Op = SUM): Promise<number | number[] | undefined> {
    const arr = numbers(value, 'exscan');
    const out = new Float64Array(arr.length);
    await this.Exscan(arr, out, op);
    if (this.rank === 0) return undefined;
    return Array.isArray(value) ? Array.from(out) : out[0]!;
  }

  // ---- communicator management --------------------------------------------

  /** MPI_Comm_dup: same group, new context (its messages never match this one's). */
  async dup(): Promise<Comm> {
    const ctx = await this.#agreeContext();
    return new Comm(this.#world, ctx, this.group);
  }

  /**
   * MPI_Comm_split: ranks with the same color form a communicator, ordered
   * by key then by rank here; color UNDEFINED gets undefined.
   */
  async split(color: number, key = 0): Promise<Comm | undefined> {
    if (!Number.isInteger(color) || (color < 0 && color !== UNDEFINED)) throw new InvalidArgumentError(`split: color must be a non-negative integer or UNDEFINED, got ${color}`);
    if (!Number.isInteger(key)) throw new InvalidArgumentError(`split: key must be an integer, got ${key}`);
    const part = await Comm.partition(this, color, key);
    return part && new Comm(this.#world, part.context, part.group);
  }

  /** MPI_Comm_group: this communicator's members as a Group. */
  getGroup(): Group {
    this.#check();
    return new Group(this.group, this.#world.rank);
  }

  /**
   * MPI_Comm_create: a communicator of `group`'s members (a subset of this
   * one's, ranked in the group's order); undefined on the others.
   * Collective over this communicator, each rank passing the same group.
   */
  async create(group: Group): Promise<Comm | undefined> {
    const key = this.#membership(group, 'create');
    const part = await Comm.partition(this, key < 0 ? UNDEFINED : 0, key);
    return part && new Comm(this.#world, part.context, part.group);
  }

  /**
   * MPI_Comm_create_group: as create, but collective over `group`'s members
   * only (the others need not call it); `tag` tells apart concurrent calls
   * on this communicator. A non-member gets undefined.
   */
  async createGroup(group: Group, tag = 0): Promise<Comm | undefined> {
    const me = this.#membership(group, 'createGroup');
    checkTag(tag, 'createGroup tag', false, TAG_UB);
    if (me < 0) return undefined;
    const members = Group.members(group);
    // The members agree on a context id among themselves (the largest
    // proposal, as #agreeContext) through the first member, on the
    // collective context under a tag above TAG_UB that no collective uses.
    const ctx = this.context + 1;
    const t = TAG_UB + 1 + tag;
    const leader = this.group.indexOf(members[0]!);
    const id = Int32Array.of(this.#world.nextContext);
    if (me === 0) {
      const other = new Int32Array(1);
      for (let i = 1; i < members.length; i++) {
        await this.#irecvBytes(ctx, this.group.indexOf(members[i]!), t, bytesOf(other), 4).wait();
        id[0] = Math.max(id[0]!, other[0]!);
      }
      await Promise.all(members.slice(1).map((w) => this.#isendBytes(ctx, this.group.indexOf(w), t, bytesOf(id), 0).wait()));
    } else {
      await this.#isendBytes(ctx, leader, t, bytesOf(id), 0).wait();
      await this.#irecvBytes(ctx, leader, t, bytesOf(id), 4).wait();
    }
    this.#world.nextContext = Math.max(this.#world.nextContext, id[0]! + 2);
    return new Comm(this.#world, id[0]!, members);
  }

  /** This rank's rank in `group`, or -1; the group must be within this communicator. */
  #membership(group: Group, what: string): number {
    this.#check();
    const members = Group.members(group);
    for (const w of members) if (!this.group.includes(w)) throw new InvalidArgumentError(`${what}: the group has a member (world rank ${w}) outside this communicator`);
    return members.indexOf(this.#world.rank);
  }

  /** MPI_Comm_compare: IDENT (one communicator), CONGRUENT (same ranks in the same order), SIMILAR (same ranks), UNEQUAL. */
  static compare(a: Comm, b: Comm): number {
    if (!(a instanceof Comm) || !(b instanceof Comm)) throw new InvalidArgumentError('compare: takes two communicators');
    if (a === b || (a.context === b.context && a.#world === b.#world)) return IDENT;
    const g = Group.compare(a.getGroup(), b.getGroup());
    return g === IDENT ? CONGRUENT : g;
  }

  /**
   * @internal split's agreement, for communicators that carry more than a
   * group (topologies): a new context id, and the world ranks of the
   * members with this rank's color, ordered by key then rank (undefined
   * for UNDEFINED). Collective.
   */
  static async partition(comm: Comm, color: number, key: number): Promise<{ context: number; group: number[] } | undefined> {
    comm.#intraOnly();
    const mine = Int32Array.of(color, key);
    const all = new Int32Array(2 * comm.size);
    await comm.Allgather(mine, all);
    const context = await comm.#agreeContext();
    if (color === UNDEFINED) return undefined;
    const members: { rank: number; key: number }[] = [];
    for (let r = 0; r < comm.size; r++) if (all[2 * r] === color) members.push({ rank: r, key: all[2 * r + 1]! });
    members.sort((a, b) => a.key - b.key || a.rank - b.rank);
    return { context, group: members.map((m) => comm.group[m.rank]!) };
  }

  /** @internal A new context id for this group (dup's agreement). Collective. */
  static agreeContext(comm: Comm): Promise<number> {
    comm.#check();
    return comm.#agreeContext();
  }

  /**
   * @internal Point-to-point on the collective context under `tags`
   * consecutive tags that belong to one collective call (neighbor
   * collectives tell their directions apart by tag).
   */
  static collectiveChannel(comm: Comm, tags: number): CollectiveChannel {
    comm.#check();
    const base = comm.#collSeq;
    comm.#collSeq += tags;
    const ctx = comm.context + 1;
    return {
      isend: (buf, dest, k) => comm.#isendBytes(ctx, dest, (base + k) & TAG_UB, bytesOf(buf), 0),
      irecv: (buf, source, k) => comm.#irecvBytes(ctx, source, (base + k) & TAG_UB, bytesOf(buf), buf.BYTES_PER_ELEMENT) as Request<Status>,
    };
  }

  // ---- process topologies (topo/): Cartesian grids and distributed graphs

  /** MPI_Topo_test: CART, DIST_GRAPH, or UNDEFINED for a communicator without a topology. */
  topoTest(): number {
    return UNDEFINED;
  }

  /**
   * MPI_Cart_create: the first prod(dims) ranks as a grid, row-major (the
   * last dimension varies fastest), `periods[i]` making dimension i wrap;
   * the ranks left over get undefined. `reorder` is accepted and ignored
   * (MPI allows keeping the ranks). Collective.
   */
  async createCart(dims: readonly number[], periods?: readonly (boolean | number)[], reorder = false): Promise<CartComm | undefined> {
    void reorder;
    this.#check();
    const { CartComm, checkCartArgs } = await import('./topo/cart.js');
    const { d, p } = checkCartArgs(dims, periods, this.size, 'createCart');
    const cells = d.reduce((a, b) => a * b, 1);
    const part = await Comm.partition(this, this.rank < cells ? 0 : UNDEFINED, this.rank);
    return part && new CartComm(this.#world, part.context, part.group, d, p);
  }

  /**
   * MPI_Dist_graph_create_adjacent: this rank's incoming (`sources`) and
   * outgoing (`destinations`) neighbors, in the order neighbor collectives
   * use them; a rank may be listed more than once. Weights and `reorder`
   * are not taken (MPI lets an implementation ignore them). Collective.
   */
  async createDistGraphAdjacent(sources: readonly number[], destinations: readonly number[], reorder = false): Promise<DistGraphComm> {
    void reorder;
    this.#check();
    const { DistGraphComm, checkNeighbors } = await import('./topo/dist-graph.js');
    const src = checkNeighbors(sources, this.size, 'createDistGraphAdjacent sources');
    const dst = checkNeighbors(destinations, this.size, 'createDistGraphAdjacent destinations');
    const ctx = await this.#agreeContext();
    return new DistGraphComm(this.#world, ctx, this.group, src, dst);
  }

  /**
   * MPI_Comm_split_type with COMM_TYPE_SHARED: the ranks of this
   * communicator that share memory with this one (those on its host that the
   * shared-memory transport reaches: what Win.AllocateShared needs), ordered
   * by key then rank; UNDEFINED gives undefined, as split does.
   */
  async splitType(splitType: number, key = 0): Promise<Comm | undefined> {
    if (splitType !== COMM_TYPE_SHARED && splitType !== UNDEFINED) throw new InvalidArgumentError(`splitType: type must be COMM_TYPE_SHARED or UNDEFINED, got ${String(splitType)}`);
    this.#check();
    const via = this.#world.transportOf;
    // The lowest member this rank shares memory with names the group: the
    // same color on every member.
    const color = splitType === UNDEFINED ? UNDEFINED : this.group.findIndex((w) => w === this.#world.rank || via[w] === 'shm');
    return this.split(color, key);
  }

  /**
   * MPI_Intercomm_create: an intercommunicator between this communicator's
   * group and another, disjoint one. Collective over both groups: each
   * calls it on its own communicator, naming its leader there, and the two
   * leaders find each other through `peerComm` (where `remoteLeader` is the
   * other leader's rank) under `tag`.
   */
  async createIntercomm(localLeader: number, peerComm: Comm, remoteLeader: number, tag = 0): Promise<Intercomm> {
    this.#check();
    this.#intraOnly();
    checkRank(localLeader, this.size, 'createIntercomm localLeader');
    checkTag(tag, 'createIntercomm tag', false, TAG_UB);
    if (!(peerComm instanceof Comm)) throw new InvalidArgumentError('createIntercomm: peerComm must be a communicator');
    const { Intercomm } = await import('./intercomm.js');
    // The local steps of the intercommunicator's collectives run on a
    // duplicate of this communicator.
    const intra = await this.dup();
    const proposal = new Int32Array(1);
    await intra.Allreduce(Int32Array.of(this.#world.nextContext), proposal, MAX);
    let agreed: { context: number; remote: number[] } | undefined;
    if (this.rank === localLeader) {
      checkRank(remoteLeader, peerComm.size, 'createIntercomm remoteLeader');
      const other = await peerComm.sendrecv<{ proposal: number; group: number[] }>({ proposal: proposal[0], group: this.group }, remoteLeader, tag, remoteLeader, tag);
      agreed = { context: Math.max(proposal[0]!, other.proposal), remote: other.group };
    }
    agreed = await intra.bcast(agreed, localLeader);
    const { context, remote } = agreed!;
    this.#world.nextContext = Math.max(this.#world.nextContext, context + 2);
    if (remote.some((w) => this.group.includes(w))) {
      intra.free();
      throw new InvalidArgumentError('createIntercomm: the two groups overlap (MPI needs them disjoint)');
    }
    return new Intercomm(this.#world, context, this.group, remote, intra);
  }

  // Every member proposes its next free context id; the largest wins, and
  // every member moves past it, so the new id is unused by all of them.
  async #agreeContext(): Promise<number> {
    this.#intraOnly();
    const proposal = Int32Array.of(this.#world.nextContext);
    const agreed = new Int32Array(1);
    await this.Allreduce(proposal, agreed, MAX);
    this.#world.nextContext = agreed[0]! + 2;
    return agreed[0]!;
  }

  /** MPI_Comm_free: further use throws ResourceClosedError. */
  free(): void {
    if (this.context === 0) throw new InvalidArgumentError('COMM_WORLD cannot be freed');
    this.#freed = true;
    this.#local?.close();
  }

  get freed(): boolean {
    return this.#freed;
  }

  /** MPI_Abort: ends the whole job with `errorCode`; never returns normally. */
  abort(errorCode = 1, reason?: string): Promise<never> {
    return this.#world.abort(errorCode, reason);
  }
}

/** @internal v8.serialize (the structured clone algorithm), with a typed error for values it cannot clone. */
export function pack(obj: unknown): Uint8Array {
  try {
    return serialize(obj);
  } catch (err) {
    throw new InvalidArgumentError(`cannot send this value: ${(err as Error).message}`, { cause: err });
  }
}

/** What reduce and allreduce of values take: a number or an array of numbers, as doubles. */
function numbers(value: unknown, what: string): Float64Array {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === 'number')) throw new InvalidArgumentError(`${what}: takes a number or an array of numbers`);
  return Float64Array.from(list as number[]);
}

