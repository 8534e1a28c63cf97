// Intercommunicators (MPI_Intercomm_create, MPI_Intercomm_merge): two
// disjoint groups that address each other. Point-to-point ranks name the
// remote group's members (Comm's whole point-to-point API works as is);
// this rank's own rank and size are in its local group. The collectives
// MPI defines between the groups that programs coupling two codes use
// most are here (Barrier; Bcast, Reduce, Gather, Scatter with ROOT and
// PROC_NULL; Allreduce, Allgather, Alltoall),
// each a local step on a duplicate of the local communicator and one
// exchange between the two leaders (local rank 0); for the rest, merge()
// gives an intracommunicator over both groups.
import { Comm } from './comm.js';
import { MAX, SUM, arrayClass, type Op, type TypedArray } from './ops.js';
import { InvalidArgumentError } from './errors.js';
import { PROC_NULL, ROOT } from './constants.js';
import { checkRank, checkSameType } from './args.js';
import { reductionOp, side, type Buf } from './dtype/buffer.js';
import { Group } from './group.js';
import type { CollectiveChannel, IN_PLACE, SendBuf } from './comm.js';
import { Request } from './request.js';
import type { World } from './world.js';

export class Intercomm extends Comm {
  /** World ranks of the remote group, by their rank in it. */
  readonly remoteGroup: readonly number[];
  /** MPI_Comm_remote_size. */
  readonly remoteSize: number;
  readonly #intra: Comm;

  /** @internal Made by Comm.createIntercomm; `intra` is a duplicate of the local communicator. */
  constructor(world: World, context: number, local: readonly number[], remote: readonly number[], intra: Comm) {
    super(world, context, local, remote);
    this.remoteGroup = Object.freeze([...remote]);
    this.remoteSize = remote.length;
    this.#intra = intra;
  }

  getRemoteSize(): number {
    return this.remoteSize;
  }

  /** MPI_Comm_remote_group. */
  getRemoteGroup(): Group {
    return new Group(this.remoteGroup, Comm.worldOf(this).rank);
  }

  /**
   * MPI_Intercomm_merge: an intracommunicator over both groups, the group
   * that passed high = false first (when both passed the same, the group
   * whose leader has the lower world rank). Collective over both groups.
   */
  async merge(high = false): Promise<Comm> {
    const world = Comm.worldOf(this);
    const ch = Comm.collectiveChannel(this, 1);
    const mine = Int32Array.of(high ? 1 : 0, this.group[0]!, world.nextContext);
    const theirs = new Int32Array(3);
    await this.#intra.Allreduce(Int32Array.of(world.nextContext), mine.subarray(2), MAX);
    await this.#leaders(ch, mine, theirs);
    await this.#intra.Bcast(theirs, 0);
    const first = mine[0] !== theirs[0] ? mine[0] === 0 : mine[1]! < theirs[1]!;
    const context = Math.max(mine[2]!, theirs[2]!);
    world.nextContext = Math.max(world.nextContext, context + 2);
    return new Comm(world, context, first ? [...this.group, ...this.remoteGroup] : [...this.remoteGroup, ...this.group]);
  }

  /** The leaders' exchange: `send` to the remote leader, `recv` from it (other ranks do nothing). */
  async #leaders(ch: CollectiveChannel, send: TypedArray, recv: TypedArray): Promise<void> {
    if (this.rank !== 0) return;
    const r = ch.irecv(recv, 0, 0);
    const s = ch.isend(send, 0, 0);
    await r.wait();
    await s.wait();
  }

  /** MPI_Barrier on an intercommunicator: returns once every member of both groups has entered. */
  override async Barrier(): Promise<void> {
    const ch = Comm.collectiveChannel(this, 1);
    await this.#intra.Barrier();
    await this.#leaders(ch, new Uint8Array(0), new Uint8Array(0));
    await this.#intra.Barrier();
  }

  /**
   * MPI_Bcast from one group to the other: in the sending group the root
   * passes ROOT and the others PROC_NULL (their buffers are not touched);
   * in the receiving group every member passes the root's rank in the
   * remote group.
   */
  override async Bcast(buf: Buf, root = 0): Promise<void> {
    const role = this.#role(root, 'Bcast');
    const s = role === 'idle' ? undefined : side(buf, 'Bcast buffer', role === 'root' ? 'send' : 'recv');
    const ch = Comm.collectiveChannel(this, 1);
    if (role === 'root') await ch.isend(s!.array, 0, 0).wait();
    else if (role === 'remote') {
      if (this.rank === 0) await ch.irecv(s!.array, root, 0).wait();
      await this.#intra.Bcast(s!.array, 0);
      s!.unpack?.(s!.array.byteLength);
    }
    s?.release();
  }

  /** MPI_Allreduce on an intercommunicator: each group gets the reduction of the other group's buffers. */
  override async Allreduce(sendbuf: SendBuf, recvbuf: Buf, op: Op = SUM): Promise<void> {
    if (typeof sendbuf === 'symbol') throw new InvalidArgumentError('Allreduce: IN_PLACE is not defined on an intercommunicator');
    const s = side(sendbuf, 'Allreduce sendbuf', 'send');
    const r = side(recvbuf, 'Allreduce recvbuf', 'recv');
    const o = reductionOp(op, s, 'Allreduce');
    checkSameType(s.array, r.array, 'Allreduce');
    if (r.array.length !== s.array.length) throw new InvalidArgumentError(`Allreduce: recvbuf has ${r.array.length} elements, sendbuf ${s.array.length}`);
    const ch = Comm.collectiveChannel(this, 1);
    const ours = this.rank === 0 ? s.array.slice() : undefined;
    await this.#intra.Reduce(s.array, ours, o, 0);
    await this.#leaders(ch, ours ?? s.array, r.array);
    await this.#intra.Bcast(r.array, 0);
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /** MPI_Allgather on an intercommunicator: recvbuf gets every remote member's block, in their rank order. */
  override async Allgather(sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
    if (typeof sendbuf === 'symbol') throw new InvalidArgumentError('Allgather: IN_PLACE is not defined on an intercommunicator');
    const s = side(sendbuf, 'Allgather sendbuf', 'send');
    const r = side(recvbuf, 'Allgather recvbuf', 'recv');
    checkSameType(s.array, r.array, 'Allgather');
    const ch = Comm.collectiveChannel(this, 1);
    const ours = this.rank === 0 ? new (arrayClass(s.array))(s.array.length * this.size) : undefined;
    await this.#intra.Gather(s.array, ours, 0);
    await this.#leaders(ch, ours ?? s.array, r.array);
    await this.#intra.Bcast(r.array, 0);
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /**
   * MPI_Reduce between the groups: the root (ROOT; its group's others pass
   * PROC_NULL) gets the reduction of the other group's buffers, whose
   * members pass the root's rank in their remote group.
   */
  override async Reduce(sendbuf: SendBuf, recvbuf: Buf | undefined, op: Op = SUM, root = 0): Promise<void> {
    if (await this.#rootEnd(this.#role(root, 'Reduce'), recvbuf, 'Reduce')) return;
    if (typeof sendbuf === 'symbol') throw new InvalidArgumentError('Reduce: IN_PLACE is not defined on an intercommunicator');
    const s = side(sendbuf, 'Reduce sendbuf', 'send');
    const o = reductionOp(op, s, 'Reduce');
    const ch = Comm.collectiveChannel(this, 1);
    const ours = this.rank === 0 ? s.array.slice() : undefined;
    await this.#intra.Reduce(s.array, ours, o, 0);
    if (ours) await ch.isend(ours, root, 0).wait();
    s.release();
  }

  /** MPI_Gather between the groups: the root (ROOT) gets one block from each member of the other group, in their rank order. */
  override async Gather(sendbuf: SendBuf, recvbuf: Buf | undefined, root = 0): Promise<void> {
    if (await this.#rootEnd(this.#role(root, 'Gather'), recvbuf, 'Gather')) return;
    if (typeof sendbuf === 'symbol') throw new InvalidArgumentError('Gather: IN_PLACE is not defined on an intercommunicator');
    const s = side(sendbuf, 'Gather sendbuf', 'send');
    const ch = Comm.collectiveChannel(this, 1);
    const ours = this.rank === 0 ? new (arrayClass(s.array))(s.array.length * this.size) : undefined;
    await this.#intra.Gather(s.array, ours, 0);
    if (ours) await ch.isend(ours, root, 0).wait();
    s.release();
  }

  /** MPI_Scatter between the groups: the root (ROOT) sends block j of sendbuf to the other group's rank j. */
  override async Scatter(sendbuf: Buf | undefined, recvbuf: Buf | typeof IN_PLACE, root = 0): Promise<void> {
    const role = this.#role(root, 'Scatter');
    if (role === 'idle') {
      Comm.collectiveChannel(this, 1);
      return;
    }
    if (role === 'root') {
      const s = side(sendbuf, 'Scatter sendbuf', 'send');
      if (s.array.length % this.remoteSize !== 0) throw new InvalidArgumentError(`Scatter: sendbuf's ${s.array.length} elements do not split over ${this.remoteSize} remote ranks`);
      const ch = Comm.collectiveChannel(this, 1);
      await ch.isend(s.array, 0, 0).wait();
      s.release();
      return;
    }
    if (typeof recvbuf === 'symbol') throw new InvalidArgumentError('Scatter: IN_PLACE is not defined on an intercommunicator');
    const r = side(recvbuf, 'Scatter recvbuf', 'recv');
    const ch = Comm.collectiveChannel(this, 1);
    const all = this.rank === 0 ? new (arrayClass(r.array))(r.array.length * this.size) : undefined;
    if (all) await ch.irecv(all, root, 0).wait();
    await this.#intra.Scatter(all, r.array, 0);
    r.unpack?.(r.array.byteLength);
  }

  /** MPI_Alltoall between the groups: block j of sendbuf to remote rank j; block j of recvbuf from it. */
  override async Alltoall(sendbuf: SendBuf, recvbuf: Buf): Promise<void> {
    if (typeof sendbuf === 'symbol') throw new InvalidArgumentError('Alltoall: IN_PLACE is not defined on an intercommunicator');
    const s = side(sendbuf, 'Alltoall sendbuf', 'send');
    const r = side(recvbuf, 'Alltoall recvbuf', 'recv');
    checkSameType(s.array, r.array, 'Alltoall');
    const p = this.remoteSize;
    if (s.array.length % p !== 0 || r.array.length % p !== 0) throw new InvalidArgumentError(`Alltoall: sendbuf and recvbuf must split over the ${p} remote ranks`);
    const out = s.array.length / p;
    const into = r.array.length / p;
    const ch = Comm.collectiveChannel(this, 1);
    const reqs = [];
    for (let j = 0; j < p; j++) reqs.push(ch.irecv(r.array.subarray(j * into, (j + 1) * into), j, 0));
    for (let j = 0; j < p; j++) reqs.push(ch.isend(s.array.subarray(j * out, (j + 1) * out), j, 0));
    await Request.waitAll(reqs);
    r.unpack?.(r.array.byteLength);
    s.release();
  }

  /**
   * The root's group's side of Reduce and Gather: the root takes the whole
   * result from the remote leader, the others only keep the collective
   * count. True when this rank is one of them (nothing more to do).
   */
  async #rootEnd(role: 'root' | 'idle' | 'remote', recvbuf: Buf | undefined, what: string): Promise<boolean> {
    if (role === 'remote') return false;
    if (role === 'idle') {
      Comm.collectiveChannel(this, 1);
      return true;
    }
    const r = side(recvbuf, `${what} recvbuf`, 'recv');
    const ch = Comm.collectiveChannel(this, 1);
    await ch.irecv(r.array, 0, 0).wait();
    r.unpack?.(r.array.byteLength);
    return true;
  }

  /** What this rank does in a rooted collective: the root, an idle member of the root's group, or a member of the other group. */
  #role(root: number, what: string): 'root' | 'idle' | 'remote' {
    if (root === ROOT) return 'root';
    if (root === PROC_NULL) return 'idle';
    checkRank(root, this.remoteSize, `${what} root (a rank of the remote group, or ROOT / PROC_NULL in the root's group)`);
    return 'remote';
  }

  /** MPI_Comm_free: the intercommunicator and its local duplicate. */
  override free(): void {
    super.free();
    this.#intra.free();
  }
}
