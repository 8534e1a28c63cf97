// MPI windows (MPI_Win): one-sided Put, Get and the accumulates into memory
// other ranks expose, with fence and post/start/complete/wait (active
// target) and lock (passive target) synchronization, in mpi4py's names.
//
// Four paths, chosen per target when the window is made:
//  - in place: a window made by Allocate lives in a shared-memory segment
//    that the ranks on its host (those the shm transport reaches) map, so
//    their Put and Get are one copy into or out of it and complete at once,
//    and their accumulates run under a lock word in the segment's header,
//    as Open MPI's osc/sm does; every rank's own window is in place for it;
//  - process_vm_*: a window over a process's own array (Create), for the
//    ranks of its host: Put and Get are one process_vm_writev/readv into or
//    out of it, complete at once, with nothing asked of the target; its
//    accumulates go by message (the target applies them one at a time);
//  - RDMA: a window of a rank reached over verbs is registered once, and
//    Put and Get to it are one RDMA WRITE or READ, complete when the HCA
//    says so (a Flush waits for that), with nothing asked of the target's
//    program (on a native HCA, nothing of its CPU either); its accumulates
//    go by message;
//  - messages (the accumulates above, and everything with
//    MPILITE_OSC=pt2pt): control messages to the target's window (protocol.ts),
//    completed there as they arrive (target.ts), whether or not the
//    target's program is in an MPI call. Data moves with one copy each way
//    when small and as a rendezvous pull (RDMA READ, process_vm_readv)
//    straight into the window or the origin's array when large.
// Locks go by message on every path (MODE_NOCHECK takes none): the
// target's lock queue is the one place that orders them.
//
// As in MPI, an operation is only started by its call: the origin's array
// must stay as it is, and a Get's result is there, once a synchronization
// call completes it (Fence, Unlock, Flush; FlushLocal for the origin's
// side only).
import { ResourceClosedError, vmRead, vmWrite, type ShmSegment } from '@ibal/hca';
import { Comm } from '../comm.js';
import { LOCK_EXCLUSIVE, LOCK_SHARED, MODE_NOCHECK, MODE_NOSUCCEED, PROC_NULL, UNDEFINED } from '../constants.js';
import { bytesOf, checkBuffer, checkRank, checkSameType, isTypedArray } from '../args.js';
import { side, type Buf } from '../dtype/buffer.js';
import { Datatype, UINT8_T as UINT8 } from '../dtype/datatype.js';
import { InvalidArgumentError, RmaSyncError, TransportError } from '../errors.js';
import { Group } from '../group.js';
import { ARRAY_CLASSES, MIN, NO_OP, Op, RMA_OPS, SUM, arrayClass, type TypedArray } from '../ops.js';
import type { Engine } from '../p2p/engine.js';
import { HDR_WORDS } from '../protocol/header.js';
import { Request, completedRequest, joined } from '../request.js';
import { accumulateInPlace, compareAndSwap, lockAcc, unlockAcc, withAccLock } from './apply.js';
import { allocWindowMemory, reachOf, windowCard, type Reach, type WinMemory } from './reach.js';
import { DATA_TAG, LockType, REPLY_TAG, RmaKind, readControl, writeControl, type RmaControl } from './protocol.js';
import { WinTarget } from './target.js';

/** Where an operation lands in the target's window: a displacement (in its dispUnit), or [disp, count, datatype] (mpi4py's target). */
export type WinTargetSpec = number | readonly [disp: number, count: number, datatype: Datatype];

/** The most one operation may move: its length travels in one header word. */
const MAX_OP_BYTES = 0xffffffff;

export class Win {
  /** This process's rank in the window's group. */
  readonly rank: number;
  /** Ranks in the window's group. */
  readonly size: number;
  /** Bytes of the local window (what other ranks' operations read and write). */
  readonly memory: Uint8Array;
  /** The displacement unit of the local window, in bytes. */
  readonly dispUnit: number;
  readonly #engine: Engine;
  /** A private duplicate of the creating communicator: its context carries the window's traffic, its barrier the fences. */
  readonly #comm: Comm;
  readonly #target: WinTarget;
  readonly #h = new Int32Array(HDR_WORDS);
  readonly #c: RmaControl = { kind: RmaKind.PUT, origin: 0, dtype: 0, op: 0, lock: 0, len: 0, offset: 0 };
  #sizes: number[] = [];
  #dispUnits: number[] = [];
  #freed = false;
  /** A fence opened an access epoch on every rank (until a fence with MODE_NOSUCCEED). */
  #fenceEpoch = false;
  /** Locks granted to this origin, by target; #locking: asked for and not yet granted. */
  readonly #locks = new Map<number, number>();
  readonly #locking = new Set<number>();
  #lockAll = false;
  /** Locks opened with MODE_NOCHECK: nothing was asked of the target, so nothing is released. */
  readonly #unchecked = new Set<number>();
  #lockAllUnchecked = false;
  /** Targets with operations not yet known complete. */
  readonly #touched = new Set<number>();
  /** Data sends and reply receives still open, with their target. */
  #pending: { target: number; req: Request<unknown> }[] = [];
  /** How this process reaches each target's window (reach.ts). */
  #reach: Reach[] = [];
  /** Ends this window's registration for RDMA, when it has one. */
  #unexpose: (() => void) | undefined;
  /** This window's own segment, and the peers' this process mapped. */
  readonly #segments: ShmSegment[] = [];
  // Requests sent and answers received, per target: a wait compares the two.
  readonly #asked: Record<'lock' | 'unlock' | 'flush', number[]>;
  readonly #answered: Record<'lock' | 'unlock' | 'flush', number[]>;
  // General active target: POSTs received from targets and used by Start,
  // COMPLETEs taken by the target half and used by Wait, per rank.
  readonly #postsFrom: number[];
  readonly #postsUsed: number[];
  readonly #completesFrom: number[];
  readonly #completesUsed: number[];
  /** Targets of the access epoch Start opened; origins of the exposure epoch Post opened. */
  #startGroup: Set<number> | undefined;
  #starting = false;
  #postGroup: number[] | undefined;

  private constructor(engine: Engine, comm: Comm, mem: WinMemory, dispUnit: number) {
    const { memory } = mem;
    this.#engine = engine;
    this.#comm = comm;
    this.rank = comm.rank;
    this.size = comm.size;
    this.memory = memory;
    this.dispUnit = dispUnit;
    const zeros = (): number[] => new Array<number>(comm.size).fill(0);
    this.#asked = { lock: zeros(), unlock: zeros(), flush: zeros() };
    this.#answered = { lock: zeros(), unlock: zeros(), flush: zeros() };
    this.#postsFrom = zeros();
    this.#postsUsed = zeros();
    this.#completesFrom = zeros();
    this.#completesUsed = zeros();
    this.#target = new WinTarget(engine, comm.context, comm.rank, comm.group, memory, mem.accLock, (origin) => this.#completesFrom[origin]!++);
    if (mem.segment) this.#segments.push(mem.segment);
    engine.setRmaHandler(comm.context, this.#onControl);
    engine.retainService();
  }

  /**
   * MPI_Win_create (collective over `comm`): exposes `memory` to the group's
   * one-sided operations. A target displacement counts `dispUnit` bytes (1,
   * as in mpi4py, unless given: pass memory.BYTES_PER_ELEMENT to count in
   * elements).
   */
  static async Create(memory: TypedArray, comm: Comm): Promise<Win>;
  static async Create(memory: TypedArray, dispUnit: number, comm: Comm): Promise<Win>;
  static async Create(memory: TypedArray, dispUnitOrComm: number | Comm, maybeComm?: Comm): Promise<Win> {
    checkBuffer(memory, 'Win.Create memory');
    const [dispUnit, comm] = typeof dispUnitOrComm === 'number' ? [dispUnitOrComm, maybeComm] : [1, dispUnitOrComm];
    return Win.#create(() => ({ memory: bytesOf(memory), segment: undefined, accLock: undefined }), dispUnit, comm, 'Win.Create');
  }

  /**
   * MPI_Win_allocate (collective): a window over `size` new zeroed bytes, in
   * `win.memory`, which Free releases. Ranks of one host that share memory
   * (the shm transport's peers) map each other's and operate in place.
   */
  static async Allocate(size: number, comm: Comm): Promise<Win>;
  static async Allocate(size: number, dispUnit: number, comm: Comm): Promise<Win>;
  static async Allocate(size: number, dispUnitOrComm: number | Comm, maybeComm?: Comm): Promise<Win> {
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`Win.Allocate: size must be a non-negative integer, got ${String(size)}`);
    const [dispUnit, comm] = typeof dispUnitOrComm === 'number' ? [dispUnitOrComm, maybeComm] : [1, dispUnitOrComm];
    return Win.#create((engine, c, inPlace) => allocWindowMemory(engine, c, size, inPlace), dispUnit, comm, 'Win.Allocate');
  }

  /**
   * MPI_Win_allocate_shared (collective): Allocate where every member maps
   * every other member's window (SharedQuery gives each for loads and
   * stores). The members must share memory: make the communicator with
   * comm.splitType(COMM_TYPE_SHARED); any pair that cannot map each other
   * frees the window everywhere and throws InvalidArgumentError. The
   * windows are separate segments (MPI's alloc_shared_noncontig).
   */
  static async AllocateShared(size: number, comm: Comm): Promise<Win>;
  static async AllocateShared(size: number, dispUnit: number, comm: Comm): Promise<Win>;
  static async AllocateShared(size: number, dispUnitOrComm: number | Comm, maybeComm?: Comm): Promise<Win> {
    const win = await (typeof dispUnitOrComm === 'number' ? Win.Allocate(size, dispUnitOrComm, maybeComm!) : Win.Allocate(size, dispUnitOrComm));
    const mapped = Int32Array.of(win.#reach.every((r) => r.direct !== undefined) ? 1 : 0);
    const all = new Int32Array(1);
    await win.#comm.Allreduce(mapped, all, MIN);
    if (all[0] === 1) return win;
    await win.Free();
    throw new InvalidArgumentError('Win.AllocateShared: some members cannot map each other\'s memory (other hosts, no shared memory between them, or MPILITE_OSC=pt2pt): make the communicator with comm.splitType(COMM_TYPE_SHARED)');
  }

  static async #create(alloc: (engine: Engine, comm: Comm, inPlace: boolean) => WinMemory, dispUnit: number, comm: Comm | undefined, what: string): Promise<Win> {
    if (!(comm instanceof Comm)) throw new InvalidArgumentError(`${what}: needs the communicator whose ranks share the window`);
    if (!Number.isSafeInteger(dispUnit) || dispUnit < 1) throw new InvalidArgumentError(`${what}: dispUnit must be a positive integer, got ${String(dispUnit)}`);
    const world = Comm.worldOf(comm);
    const engine = world.engine;
    const oneSided = world.config.osc === 'auto';
    const wcomm = await comm.dup();
    // The handler is in place before this rank's part of the exchange below,
    // so no rank can send it an operation before it can take one.
    const mem = alloc(engine, wcomm, oneSided);
    const win = new Win(engine, wcomm, mem, dispUnit);
    try {
      const { card, unexpose } = windowCard(engine, wcomm, mem, dispUnit, oneSided);
      win.#unexpose = unexpose;
      const cards = await wcomm.allgather(card);
      win.#sizes = cards.map((c) => c.size);
      win.#dispUnits = cards.map((c) => c.dispUnit);
      win.#reach = reachOf(engine, wcomm, cards, mem, oneSided, win.#segments);
      // Every peer has mapped the segments (or given up): their names can
      // go, so a job killed from here on leaves nothing in /dev/shm. Decided
      // from the cards, the same on every rank: a rank with no segment of
      // its own (alone on its host) takes the barrier too.
      if (cards.some((c) => c.segment)) {
        await wcomm.Barrier();
        mem.segment?.unlink();
      }
    } catch (err) {
      win.#release();
      throw err;
    }
    return win;
  }

  /** mpi4py's Win.tomemory(): the local window's bytes. */
  tomemory(): Uint8Array {
    this.#check();
    return this.memory;
  }

  /** Bytes of rank `r`'s window, as it said at creation. */
  sizeOf(r: number): number {
    this.#check();
    checkRank(r, this.size, 'rank');
    return this.#sizes[r]!;
  }

  /**
   * MPI_Win_shared_query: rank `r`'s window memory as mapped in this process
   * (and its dispUnit), for plain loads and stores, when this process reaches
   * it in place (Allocate's windows on one host, and its own); undefined
   * when operations on it go by message. Loads and stores to it obey the
   * same epochs as Put and Get.
   */
  SharedQuery(r: number): { memory: Uint8Array; dispUnit: number } | undefined {
    this.#check();
    checkRank(r, this.size, 'rank');
    const memory = this.#reach[r]?.direct;
    return memory ? { memory, dispUnit: this.#dispUnits[r]! } : undefined;
  }

  readonly #onControl = (_peer: number, words: Int32Array, w: number): void => {
    const c = readControl(words, w, this.#c);
    const from = c.origin;
    if (from < 0 || from >= this.size) return;
    switch (c.kind) {
      case RmaKind.LOCK_GRANTED:
        this.#answered.lock[from]!++;
        return;
      case RmaKind.UNLOCK_DONE:
        this.#answered.unlock[from]!++;
        return;
      case RmaKind.FLUSH_DONE:
        this.#answered.flush[from]!++;
        return;
      case RmaKind.POST:
        this.#postsFrom[from]!++;
        return;
      default:
        this.#target.take(c);
    }
  };

  #check(): void {
    if (this.#freed) throw new ResourceClosedError('window');
  }

  /** A lock (or LockAll) is held or asked for: a passive-target epoch is open. */
  get #passiveEpoch(): boolean {
    return this.#locks.size > 0 || this.#locking.size > 0 || this.#lockAll;
  }

  /** Start has opened (or is opening) a general active-target access epoch. */
  get #accessEpoch(): boolean {
    return this.#startGroup !== undefined || this.#starting;
  }

  // ---- communication ------------------------------------------------------

  /**
   * MPI_Put: `origin` into rank `targetRank`'s window at `target`: a
   * displacement (in the target's dispUnit), or mpi4py's [disp, count,
   * datatype] to spread the data over the target's window as that type
   * lays it out. `origin` may be a buffer with a datatype (see Buf).
   */
  Put(origin: Buf, targetRank: number, target: WinTargetSpec = 0): void {
    this.#put(origin, targetRank, target);
  }

  /** MPI_Rput, in a passive-target epoch: the request completes when `origin` may be reused (Flush completes it at the target). */
  Rput(origin: Buf, targetRank: number, target: WinTargetSpec = 0): Request<void> {
    return this.#requested(targetRank, 'Rput', () => this.#put(origin, targetRank, target));
  }

  /** MPI_Rget, in a passive-target epoch: the request completes when `origin` holds the data. */
  Rget(origin: Buf, targetRank: number, target: WinTargetSpec = 0): Request<void> {
    return this.#requested(targetRank, 'Rget', () => this.#get(origin, targetRank, target));
  }

  /** MPI_Raccumulate, in a passive-target epoch. */
  Raccumulate(origin: Buf, targetRank: number, target: WinTargetSpec = 0, op: Op = SUM): Request<void> {
    return this.#requested(targetRank, 'Raccumulate', () => this.#accumulate(origin, targetRank, target, op));
  }

  /** MPI_Rget_accumulate, in a passive-target epoch: the request completes when `result` holds the old values. */
  RgetAccumulate(origin: Buf, result: Buf, targetRank: number, target: WinTargetSpec = 0, op: Op = SUM): Request<void> {
    return this.#requested(targetRank, 'RgetAccumulate', () => this.#getAccumulate(origin, result, targetRank, target, op));
  }

  /**
   * The request of an operation (MPI allows them in passive-target epochs
   * only): its own open request, or a completed one when it was done at once.
   */
  #requested(target: number, what: string, start: () => Request<unknown> | undefined): Request<void> {
    // #null checks the window and the rank (start() checks them again: cheap).
    if (!this.#null(target) && !this.#lockAll && !this.#locks.has(target)) {
      throw new RmaSyncError(`${what} to rank ${target} outside a passive-target epoch: call Lock(${target}) or LockAll first`);
    }
    const req = start();
    return (req ?? completedRequest(this.#engine, undefined)) as Request<void>;
  }

  /**
   * An operation with a datatype on either side: the origin packed (or
   * received into a packed copy), the target's layout split into its
   * contiguous runs, one operation each, as osc/rdma moves a derived type.
   * Accumulates stay atomic per element, which is all MPI promises.
   */
  #typed(origin: Buf, targetRank: number, target: WinTargetSpec, what: string, use: 'send' | 'recv', move: (piece: Uint8Array, offset: number) => Request<unknown> | undefined): Request<unknown> | undefined {
    const s = side(origin, `${what} origin`, use);
    if (this.#null(targetRank)) {
      s.release();
      return undefined;
    }
    const pieces = this.#pieces(targetRank, target, s.array.byteLength, what);
    const bytes = bytesOf(s.array);
    const reqs: Request<unknown>[] = [];
    let at = 0;
    for (let i = 0; i < pieces.length; i += 2) {
      const len = pieces[i + 1]!;
      const r = move(bytes.subarray(at, at + len), pieces[i]!);
      if (r) reqs.push(r);
      at += len;
    }
    return joined(this.#engine, reqs, use === 'recv' ? () => s.unpack?.(at) : s.release);
  }

  /**
   * Where `len` bytes go in the target's window, as [byte offset, length]
   * pairs: one for a displacement, one per run of a [disp, count, datatype]
   * target (whose data must be as long as the origin's).
   */
  #pieces(targetRank: number, target: WinTargetSpec, len: number, what: string): number[] {
    if (typeof target === 'number') return [this.#access(targetRank, target, len, what), len];
    if (!Array.isArray(target) || target.length !== 3 || !(target[2] instanceof Datatype)) {
      throw new InvalidArgumentError(`${what}: the target must be a displacement or [disp, count, datatype]`);
    }
    const [disp, count, type] = target as readonly [number, number, Datatype];
    type.checkUsable(`${what} target`);
    if (!Number.isSafeInteger(count) || count < 0) throw new InvalidArgumentError(`${what}: target count must be a non-negative integer, got ${String(count)}`);
    if (count * type.size !== len) throw new InvalidArgumentError(`${what}: the origin holds ${len} bytes, the target ${count} x ${type.name} = ${count * type.size}`);
    const base = this.#access(targetRank, disp, 0, what);
    const last = (count - 1) * type.extent;
    const lo = base + Math.min(0, last) + type.trueLb;
    const hi = base + Math.max(0, last) + type.trueLb + type.trueExtent;
    if (len > 0 && (lo < 0 || hi > this.#sizes[targetRank]!)) {
      throw new InvalidArgumentError(`${what}: ${count} x ${type.name} at displacement ${disp} spans bytes [${lo}, ${hi}) of rank ${targetRank}'s window of ${this.#sizes[targetRank]} bytes`);
    }
    const out: number[] = [];
    for (let k = 0; k < count; k++) {
      for (let i = 0; i < type.disp.length; i++) out.push(base + k * type.extent + type.disp[i]!, type.len[i]!);
    }
    return out;
  }

  /** Starts a Put; its request while the origin array is still in use, else undefined. */
  #put(origin: Buf, targetRank: number, target: WinTargetSpec): Request<unknown> | undefined {
    if (!isTypedArray(origin) || typeof target !== 'number') return this.#typed(origin, targetRank, target, 'Put', 'send', (piece, offset) => this.#putAt(targetRank, piece, offset));
    if (this.#null(targetRank)) return undefined;
    const bytes = bytesOf(origin);
    return this.#putAt(targetRank, bytes, this.#access(targetRank, target, bytes.length, 'Put'));
  }

  #putAt(targetRank: number, bytes: Uint8Array, offset: number): Request<unknown> | undefined {
    const { direct, vm, rdma } = this.#reach[targetRank]!;
    if (direct) {
      direct.set(bytes, offset);
      return undefined;
    }
    if (vm && bytes.length > 0) {
      vmMove(vmWrite, vm.pid, vm.base + BigInt(offset), bytes, targetRank);
      return undefined;
    }
    if (rdma && bytes.length > 0) return this.#rdmaOp(targetRank, rdma, bytes, offset, true);
    this.#control(targetRank, RmaKind.PUT, bytes.length, offset);
    return this.#sendData(targetRank, bytes);
  }

  /** MPI_Get: rank `targetRank`'s window at `target` (a displacement or [disp, count, datatype]) into `origin`. */
  Get(origin: Buf, targetRank: number, target: WinTargetSpec = 0): void {
    this.#get(origin, targetRank, target);
  }

  #get(origin: Buf, targetRank: number, target: WinTargetSpec): Request<unknown> | undefined {
    if (!isTypedArray(origin) || typeof target !== 'number') return this.#typed(origin, targetRank, target, 'Get', 'recv', (piece, offset) => this.#getAt(targetRank, piece, offset));
    if (this.#null(targetRank)) return undefined;
    const bytes = bytesOf(origin);
    return this.#getAt(targetRank, bytes, this.#access(targetRank, target, bytes.length, 'Get'));
  }

  #getAt(targetRank: number, bytes: Uint8Array, offset: number): Request<unknown> | undefined {
    const { direct, vm, rdma } = this.#reach[targetRank]!;
    if (direct) {
      bytes.set(direct.subarray(offset, offset + bytes.length));
      return undefined;
    }
    if (vm && bytes.length > 0) {
      vmMove(vmRead, vm.pid, vm.base + BigInt(offset), bytes, targetRank);
      return undefined;
    }
    if (rdma && bytes.length > 0) return this.#rdmaOp(targetRank, rdma, bytes, offset, false);
    const reply = this.#expectReply(targetRank, bytes);
    this.#control(targetRank, RmaKind.GET, bytes.length, offset);
    return reply;
  }

  /**
   * MPI_Accumulate: target = origin op target, element by element,
   * atomically per element against other accumulates. A datatype on either
   * side must be of the origin's one element type.
   */
  Accumulate(origin: Buf, targetRank: number, target: WinTargetSpec = 0, op: Op = SUM): void {
    this.#accumulate(origin, targetRank, target, op);
  }

  #accumulate(origin: Buf, targetRank: number, target: WinTargetSpec, op: Op): Request<unknown> | undefined {
    // The datatype path apart: this one is an in-place accumulate's whole cost.
    if (!isTypedArray(origin) || typeof target !== 'number') return this.#accumulateTyped(origin, targetRank, target, op);
    const code = this.#op(op, origin, 'Accumulate', false);
    if (this.#null(targetRank)) return undefined;
    return this.#accAt(targetRank, origin, this.#access(targetRank, target, origin.byteLength, 'Accumulate'), code);
  }

  #accumulateTyped(origin: Buf, targetRank: number, target: WinTargetSpec, op: Op): Request<unknown> | undefined {
    // The element types, without packing (a malformed origin fails in #typed).
    const last: unknown = Array.isArray(origin) ? origin[origin.length - 1] : undefined;
    const otype = isTypedArray(origin) ? Datatype.of(origin) : last instanceof Datatype ? last : undefined;
    const ttype: unknown = Array.isArray(target) ? target[2] : undefined;
    if (otype && !otype.homogeneous) throw new InvalidArgumentError(`Accumulate: ${otype.name} mixes element types; an accumulate needs one`);
    if (otype && ttype instanceof Datatype && (!ttype.homogeneous || otype.arrayClass !== ttype.arrayClass)) {
      throw new InvalidArgumentError(`Accumulate: the target datatype ${ttype.name} must be of the origin's element type`);
    }
    const elements = (otype ?? UINT8).arrayClass;
    const code = this.#op(op, new elements(0), 'Accumulate', false);
    return this.#typed(origin, targetRank, target, 'Accumulate', 'send', (piece, offset) => {
      // Runs of a type of the origin's elements hold whole elements.
      const view = new (elements as unknown as new (b: ArrayBufferLike, o: number, n: number) => TypedArray)(piece.buffer, piece.byteOffset, piece.byteLength / elements.BYTES_PER_ELEMENT);
      return this.#accAt(targetRank, view, offset, code);
    });
  }

  #accAt(targetRank: number, origin: TypedArray, offset: number, code: number): Request<unknown> | undefined {
    const len = origin.byteLength;
    const reach = this.#reach[targetRank]!;
    if (reach.direct) {
      this.#inPlace(reach, offset, len, code, origin, undefined);
      return undefined;
    }
    this.#control(targetRank, RmaKind.ACC, len, offset, dtypeOf(origin), code);
    return this.#sendData(targetRank, bytesOf(origin));
  }

  // The lock taken and released around the operation here rather than
  // through withAccLock's closure: this is the whole cost of an in-place
  // accumulate.
  #inPlace(reach: Reach, offset: number, len: number, code: number, origin: TypedArray, result: TypedArray | undefined): void {
    const { lock } = reach;
    if (lock) lockAcc(lock);
    try {
      accumulateInPlace(reach.direct!, (reach.views ??= []), offset, len, dtypeOf(origin), code, origin, result);
    } finally {
      if (lock) unlockAcc(lock);
    }
  }

  /**
   * MPI_Get_accumulate: `result` gets the target's values from before `op`
   * applied `origin` to them (NO_OP: only read). Origin and result may be
   * buffers with datatypes and the target a [disp, count, datatype], all of
   * one element type.
   */
  GetAccumulate(origin: Buf, result: Buf, targetRank: number, target: WinTargetSpec = 0, op: Op = SUM): void {
    this.#getAccumulate(origin, result, targetRank, target, op);
  }

  #getAccumulate(origin: Buf, result: Buf, targetRank: number, target: WinTargetSpec, op: Op): Request<unknown> | undefined {
    const plain = isTypedArray(origin) && isTypedArray(result) && typeof target === 'number';
    // Both sides as contiguous elements (a datatype's packed into a copy; the result's unpacked when all is in).
    const o = plain ? undefined : side(origin, 'GetAccumulate origin', 'send');
    const r = plain ? undefined : side(result, 'GetAccumulate result', 'recv');
    const ov = o ? o.array : (origin as TypedArray);
    const rv = r ? r.array : (result as TypedArray);
    checkSameType(ov, rv, 'GetAccumulate');
    if (ov.length !== rv.length) throw new InvalidArgumentError(`GetAccumulate: origin has ${ov.length} elements, result ${rv.length}`);
    if (!plain) {
      for (const t of [o!.datatype, r!.datatype, Array.isArray(target) ? (target[2] as unknown) : undefined]) {
        if (t instanceof Datatype && (!t.homogeneous || t.arrayClass !== arrayClass(ov))) throw new InvalidArgumentError(`GetAccumulate: datatype ${t.name} is not of the origin's one element type`);
      }
    }
    const code = this.#op(op, ov, 'GetAccumulate', true);
    if (this.#null(targetRank)) return undefined;
    if (plain) return this.#getAccAt(targetRank, ov, rv, this.#access(targetRank, target as number, ov.byteLength, 'GetAccumulate'), code);
    const pieces = this.#pieces(targetRank, target, ov.byteLength, 'GetAccumulate');
    const bpe = ov.BYTES_PER_ELEMENT;
    const reqs: Request<unknown>[] = [];
    for (let i = 0, at = 0; i < pieces.length; i += 2) {
      const n = pieces[i + 1]! / bpe;
      const req = this.#getAccAt(targetRank, ov.subarray(at, at + n), rv.subarray(at, at + n), pieces[i]!, code);
      if (req) reqs.push(req);
      at += n;
    }
    return joined(this.#engine, reqs, () => {
      r!.unpack?.(rv.byteLength);
      o!.release();
    });
  }

  #getAccAt(targetRank: number, origin: TypedArray, result: TypedArray, offset: number, code: number): Request<unknown> | undefined {
    const len = origin.byteLength;
    const reach = this.#reach[targetRank]!;
    if (reach.direct) {
      this.#inPlace(reach, offset, len, code, origin, result);
      return undefined;
    }
    // The old values come back after the target has the data: their arrival completes both.
    const reply = this.#expectReply(targetRank, bytesOf(result));
    this.#control(targetRank, RmaKind.GET_ACC, len, offset, dtypeOf(origin), code);
    this.#sendData(targetRank, bytesOf(origin));
    return reply;
  }

  /** MPI_Fetch_and_op: GetAccumulate of one element (the first of `origin` and `result`). */
  FetchAndOp(origin: TypedArray, result: TypedArray, targetRank: number, targetDisp = 0, op: Op = SUM): void {
    checkBuffer(origin, 'FetchAndOp origin');
    checkBuffer(result, 'FetchAndOp result');
    if (origin.length < 1 || result.length < 1) throw new InvalidArgumentError('FetchAndOp: origin and result need an element each');
    this.#getAccumulate(origin.length === 1 ? origin : origin.subarray(0, 1), result.length === 1 ? result : result.subarray(0, 1), targetRank, targetDisp, op);
  }

  /**
   * MPI_Compare_and_swap on one element: where the target's element equals
   * `compare[0]` (bit for bit) it becomes `origin[0]`; `result[0]` gets the
   * old value either way.
   */
  CompareAndSwap(origin: TypedArray, compare: TypedArray, result: TypedArray, targetRank: number, targetDisp = 0): void {
    for (const [a, name] of [
      [origin, 'origin'],
      [compare, 'compare'],
      [result, 'result'],
    ] as const) {
      checkBuffer(a, `CompareAndSwap ${name}`);
      if (a.length < 1) throw new InvalidArgumentError(`CompareAndSwap: ${name} needs an element`);
    }
    checkSameType(origin, compare, 'CompareAndSwap');
    checkSameType(origin, result, 'CompareAndSwap');
    if (this.#null(targetRank)) return;
    const cls = arrayClass(origin);
    const bpe = origin.BYTES_PER_ELEMENT;
    const offset = this.#access(targetRank, targetDisp, bpe, 'CompareAndSwap');
    const data = new cls(2);
    (data as Float64Array)[0] = compare[0] as number;
    (data as Float64Array)[1] = origin[0] as number;
    const { direct, lock } = this.#reach[targetRank]!;
    if (direct) {
      bytesOf(result.subarray(0, 1)).set(withAccLock(lock, () => compareAndSwap(direct, offset, bpe, data)));
      return;
    }
    this.#expectReply(targetRank, bytesOf(result.subarray(0, 1)));
    this.#control(targetRank, RmaKind.CAS, bpe, offset, dtypeOf(origin));
    this.#sendData(targetRank, bytesOf(data));
  }

  /** PROC_NULL makes an operation a no-op; any other rank must be a member. */
  #null(target: number): boolean {
    this.#check();
    if (target === PROC_NULL) return true;
    // checkRank only to word the error: this runs on every operation.
    if (!(Number.isInteger(target) && target >= 0 && target < this.size)) checkRank(target, this.size, 'target rank');
    return false;
  }

  /** The target byte offset of an operation in an access epoch, checked against the target's window. */
  #access(target: number, disp: number, len: number, what: string): number {
    if (!this.#fenceEpoch && !this.#lockAll && !this.#locks.has(target) && !this.#startGroup?.has(target)) {
      throw new RmaSyncError(`${what} to rank ${target} outside an access epoch: call Fence, Lock(${target}), LockAll or Start first`);
    }
    if (!Number.isSafeInteger(disp) || disp < 0) throw new InvalidArgumentError(`${what}: target displacement must be a non-negative integer, got ${String(disp)}`);
    if (len > MAX_OP_BYTES) throw new InvalidArgumentError(`${what}: ${len} bytes is more than one operation moves (${MAX_OP_BYTES})`);
    const offset = disp * this.#dispUnits[target]!;
    if (offset + len > this.#sizes[target]!) {
      throw new InvalidArgumentError(`${what}: ${len} bytes at displacement ${disp} (byte ${offset}) run past rank ${target}'s window of ${this.#sizes[target]} bytes`);
    }
    return offset;
  }

  #op(op: unknown, buf: TypedArray, what: string, noOpAllowed: boolean): number {
    const code = op instanceof Op ? RMA_OPS.indexOf(op) : -1;
    if (code < 0) {
      const name = op instanceof Op ? op.name : typeof op;
      throw new InvalidArgumentError(`${what}: op must be a predefined operation (SUM, MAX, ..., REPLACE${noOpAllowed ? ', NO_OP' : ''}); the target applies it: got ${name}`);
    }
    if (op === NO_OP && !noOpAllowed) throw new InvalidArgumentError(`${what}: NO_OP is for GetAccumulate and FetchAndOp`);
    (op as Op).check(buf);
    return code;
  }

  #control(target: number, kind: RmaKind, len = 0, offset = 0, dtype = 0, op = 0, lock = 0): void {
    // An operation by message waits for a flush; one in place (or by process_vm_*) is complete already.
    if (kind <= RmaKind.CAS) this.#touched.add(target);
    this.#engine.sendHeader(this.#comm.group[target]!, writeControl(this.#h, this.#comm.context, this.rank, kind, len, offset, dtype, op, lock));
  }

  /** An RDMA WRITE (Put) or READ (Get) of `bytes` at `offset` in the target's window, open until its completion. */
  #rdmaOp(target: number, { ep, base, key }: NonNullable<Reach['rdma']>, bytes: Uint8Array, offset: number, write: boolean): Request<unknown> | undefined {
    const req = new Request<unknown>(this.#engine);
    const at = base + offset;
    const lo = at % 2 ** 32 | 0;
    const hi = Math.floor(at / 2 ** 32) | 0;
    const done = (err?: Error): void => req.complete(undefined, err);
    if (write) ep.put!(bytes, lo, hi, key, done);
    else ep.fetch(bytes, lo, hi, key, done);
    return this.#open(target, req);
  }

  /**
   * progress() now, and a turn of the event loop once a millisecond: what
   * arrives by socket (the soft HCA over UDP, the bootstrap) is read only
   * there, and a loop whose awaits all resolve at once never gives it one.
   */
  #idleProgress(): Promise<void> {
    this.#engine.progress();
    // The clock on every call (~40 ns): reading it every 64th call only left
    // a rank whose Flushes are milliseconds apart without a turn for 64 of them.
    const now = performance.now();
    if (now - this.#lastTurn < 1) return DONE;
    this.#lastTurn = now;
    return new Promise((resolve) => setImmediate(resolve));
  }

  #lastTurn = 0;

  /** Whether an operation to `target` is still open (a loop: Flush calls it on every iteration of a latency test). */
  #opens(target: number): boolean {
    for (const p of this.#pending) if (p.target === target && !p.req.done) return true;
    return false;
  }

  /** Keeps `req` among the open ones until a synchronization settles it; undefined when it is done already. */
  #open(target: number, req: Request<unknown>): Request<unknown> | undefined {
    if (req.done && !req.error) return undefined;
    this.#pending.push({ target, req });
    return req;
  }

  #sendData(target: number, bytes: Uint8Array): Request<unknown> | undefined {
    const req = new Request<unknown>(this.#engine);
    this.#engine.isend(req, this.#comm.context, this.#comm.group[target]!, this.rank, DATA_TAG, bytes, 0);
    return this.#open(target, req);
  }

  #expectReply(target: number, into: Uint8Array): Request<unknown> | undefined {
    const req = new Request<unknown>(this.#engine);
    this.#engine.irecv(req, this.#comm.context, target, REPLY_TAG, into);
    return this.#open(target, req);
  }

  // ---- synchronization ----------------------------------------------------

  /**
   * MPI_Win_fence (collective): completes every operation of the epoch at
   * origins and targets, and opens the next one unless `assertion` has
   * MODE_NOSUCCEED.
   */
  async Fence(assertion = 0): Promise<void> {
    this.#check();
    checkAssertion(assertion, 'Fence');
    if (this.#passiveEpoch) throw new RmaSyncError('Fence inside a passive-target epoch: Unlock first');
    if (this.#accessEpoch || this.#postGroup) throw new RmaSyncError('Fence inside a Post/Start epoch: Complete and Wait first');
    await this.#flush(this.#all());
    // After every rank's flushes, every operation on every window is done.
    await this.#comm.Barrier();
    this.#fenceEpoch = (assertion & MODE_NOSUCCEED) === 0;
  }

  // ---- general active target (post, start, complete, wait) ----------------

  /**
   * MPI_Win_post: opens an exposure epoch to the origins in `group` (a
   * Group, or ranks of the window); each may Start an access epoch on this
   * window once it hears of it. Returns at once; Wait or Test ends the
   * epoch.
   */
  Post(group: Group | readonly number[], assertion = 0): void {
    this.#check();
    const ranks = this.#group(group, 'Post');
    checkAssertion(assertion, 'Post');
    if (this.#postGroup) throw new RmaSyncError('Post: an exposure epoch is open already (Wait or Test for it first)');
    this.#postGroup = ranks;
    for (const o of ranks) this.#control(o, RmaKind.POST);
  }

  /** MPI_Win_start: an access epoch on the targets in `group`, once each has posted one to this rank. */
  async Start(group: Group | readonly number[], assertion = 0): Promise<void> {
    this.#check();
    const ranks = this.#group(group, 'Start');
    checkAssertion(assertion, 'Start');
    if (this.#accessEpoch) throw new RmaSyncError('Start: an access epoch is open already (Complete it first)');
    if (this.#passiveEpoch) throw new RmaSyncError('Start inside a passive-target epoch: Unlock first');
    this.#starting = true;
    const posted = (): boolean => ranks.every((t) => this.#postsFrom[t]! > this.#postsUsed[t]!);
    try {
      if (!posted()) await this.#engine.until(posted);
    } finally {
      this.#starting = false;
    }
    for (const t of ranks) this.#postsUsed[t]!++;
    this.#startGroup = new Set(ranks);
  }

  /**
   * MPI_Win_complete: ends the access epoch Start opened. Its operations
   * are complete here when it resolves, and at each target by the time its
   * Wait returns (COMPLETE follows them through the target's queue).
   */
  async Complete(): Promise<void> {
    this.#check();
    const group = this.#startGroup;
    if (!group) throw new RmaSyncError('Complete without Start');
    this.#startGroup = undefined;
    const targets = [...group];
    // Replies first: once a target's Wait returns, its program may write the window a large Get is pulled from.
    await this.#settle(targets);
    for (const t of targets) this.#control(t, RmaKind.COMPLETE);
    for (const t of targets) this.#touched.delete(t);
  }

  /** MPI_Win_wait: ends the exposure epoch Post opened, once every origin in its group has called Complete. */
  async Wait(): Promise<void> {
    this.#check();
    const group = this.#postGroup;
    if (!group) throw new RmaSyncError('Wait without Post');
    const done = (): boolean => group.every((o) => this.#completesFrom[o]! > this.#completesUsed[o]!);
    if (!done()) await this.#engine.until(done);
    this.#endExposure(group);
  }

  /** MPI_Win_test: Wait that does not wait; true (and the epoch over) when every origin has completed. */
  Test(): boolean {
    this.#check();
    const group = this.#postGroup;
    if (!group) throw new RmaSyncError('Test without Post');
    this.#engine.progress();
    if (!group.every((o) => this.#completesFrom[o]! > this.#completesUsed[o]!)) return false;
    this.#endExposure(group);
    return true;
  }

  #endExposure(group: number[]): void {
    for (const o of group) this.#completesUsed[o]!++;
    this.#postGroup = undefined;
  }

  /** A group of Post or Start: distinct ranks of the window. */
  #group(group: unknown, what: string): number[] {
    if (group instanceof Group) {
      const ranks = group.translateRanks(Array.from({ length: group.size }, (_, r) => r), this.#comm.getGroup());
      if (ranks.includes(UNDEFINED)) throw new InvalidArgumentError(`${what}: the group has a member outside the window's communicator`);
      group = ranks;
    }
    if (!Array.isArray(group)) throw new InvalidArgumentError(`${what}: group must be a Group or an array of ranks`);
    for (const r of group) checkRank(r, this.size, `${what} group rank`);
    if (new Set(group).size !== group.length) throw new InvalidArgumentError(`${what}: group names a rank twice`);
    return [...(group as number[])];
  }

  /** MPI_Win_lock: starts an access epoch on `rank`'s window once its lock is granted. */
  async Lock(rank: number, lockType: number = LOCK_EXCLUSIVE, assertion = 0): Promise<void> {
    if (this.#null(rank)) return;
    if (lockType !== LOCK_EXCLUSIVE && lockType !== LOCK_SHARED) throw new InvalidArgumentError(`Lock: lockType must be LOCK_EXCLUSIVE or LOCK_SHARED, got ${String(lockType)}`);
    checkAssertion(assertion, 'Lock');
    if (this.#locks.has(rank) || this.#locking.has(rank) || this.#lockAll) throw new RmaSyncError(`Lock: rank ${rank}'s window is locked by this process already`);
    if (this.#accessEpoch) throw new RmaSyncError('Lock inside a Start epoch: Complete first');
    // MODE_NOCHECK: the program promises no conflicting lock, so none is taken (as MPI allows).
    if (assertion & MODE_NOCHECK) {
      this.#locks.set(rank, lockType);
      this.#unchecked.add(rank);
      return;
    }
    this.#locking.add(rank);
    try {
      await this.#ask('lock', [rank], RmaKind.LOCK, lockType === LOCK_EXCLUSIVE ? LockType.EXCLUSIVE : LockType.SHARED);
    } finally {
      this.#locking.delete(rank);
    }
    this.#locks.set(rank, lockType);
  }

  /** MPI_Win_unlock: completes the epoch's operations on `rank` (there and here) and releases its lock. */
  async Unlock(rank: number): Promise<void> {
    if (this.#null(rank)) return;
    if (!this.#locks.has(rank)) throw new RmaSyncError(`Unlock: rank ${rank}'s window is not locked by this process`);
    this.#locks.delete(rank);
    if (this.#unchecked.delete(rank)) {
      await this.#flush([rank]);
      return;
    }
    // Replies first: a large Get's data is pulled from the target's window,
    // which the next lock holder may write as soon as the lock is released.
    await this.#settle([rank]);
    await this.#ask('unlock', [rank], RmaKind.UNLOCK);
    this.#touched.delete(rank);
  }

  /** MPI_Win_lock_all: a shared lock on every rank's window (none taken with MODE_NOCHECK). */
  async LockAll(assertion = 0): Promise<void> {
    this.#check();
    checkAssertion(assertion, 'LockAll');
    if (this.#passiveEpoch) throw new RmaSyncError('LockAll: this process holds or awaits locks already');
    if (this.#accessEpoch) throw new RmaSyncError('LockAll inside a Start epoch: Complete first');
    if (assertion & MODE_NOCHECK) {
      this.#lockAll = true;
      this.#lockAllUnchecked = true;
      return;
    }
    const all = this.#all();
    for (const r of all) this.#locking.add(r);
    try {
      await this.#ask('lock', all, RmaKind.LOCK, LockType.SHARED);
    } finally {
      this.#locking.clear();
    }
    this.#lockAll = true;
  }

  /** MPI_Win_unlock_all. */
  async UnlockAll(): Promise<void> {
    this.#check();
    if (!this.#lockAll) throw new RmaSyncError('UnlockAll without LockAll');
    this.#lockAll = false;
    const all = this.#all();
    if (this.#lockAllUnchecked) {
      this.#lockAllUnchecked = false;
      await this.#flush(all);
      return;
    }
    await this.#settle(all);
    await this.#ask('unlock', all, RmaKind.UNLOCK);
    this.#touched.clear();
  }

  /**
   * MPI_Win_sync: a memory barrier between this process's loads and stores
   * to windows (SharedQuery's mappings) and other processes'. Windows here
   * have one copy of their memory (MPI's unified model), so that is all.
   */
  Sync(): void {
    this.#check();
    Atomics.add(FENCE, 0, 0);
    // Programs poll a flag in a shared window with Sync: they make progress too.
    this.#engine.progress();
  }

  /**
   * MPI_Win_flush: this origin's operations on `rank` are complete there (and
   * here) when it resolves. On a window reached in place there is nothing to
   * wait for, and no async frame is made (it shows in osu_put_latency); a bad
   * argument still rejects rather than throws.
   */
  Flush(rank: number): Promise<void> {
    try {
      if (this.#null(rank)) return DONE;
      this.#inPassiveEpoch(rank, 'Flush');
      if (this.#touched.has(rank) || this.#opens(rank)) return this.#flush([rank]);
      // Nothing to wait for, but an MPI call still makes progress (~30 ns
      // when idle): a rank computing between Flushes serves the others'
      // requests there (workqueue.mjs's counter owner drew every task before).
      return this.#idleProgress();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** MPI_Win_flush_all. */
  async FlushAll(): Promise<void> {
    this.#check();
    await this.#flush(this.#all());
  }

  /** MPI_Win_flush_local: this origin's operations on `rank` are complete here (arrays reusable, Get results in). */
  async FlushLocal(rank: number): Promise<void> {
    if (this.#null(rank)) return;
    this.#inPassiveEpoch(rank, 'FlushLocal');
    await this.#settle([rank]);
  }

  /** MPI_Win_flush_local_all. */
  async FlushLocalAll(): Promise<void> {
    this.#check();
    await this.#settle(undefined);
  }

  #inPassiveEpoch(rank: number, what: string): void {
    if (!this.#lockAll && !this.#locks.has(rank)) throw new RmaSyncError(`${what}: no lock on rank ${rank}'s window`);
  }

  /** Asks each target for completion of everything sent it so far, and waits for the answers and for local completion. */
  async #flush(targets: number[]): Promise<void> {
    // Only targets sent operations by message since their last flush are
    // asked; RDMA operations (and replies) are done when their requests are.
    const ask = targets.filter((t) => this.#touched.has(t));
    if (ask.length > 0) await this.#ask('flush', ask, RmaKind.FLUSH);
    await this.#settle(targets);
    for (const t of ask) this.#touched.delete(t);
  }

  /** Every rank of the window. */
  #all(): number[] {
    return this.#comm.group.map((_, r) => r);
  }

  /** Sends `kind` to each target and waits until each has answered it. */
  async #ask(what: 'lock' | 'unlock' | 'flush', targets: number[], kind: RmaKind, lock = 0): Promise<void> {
    const asked = this.#asked[what];
    const answered = this.#answered[what];
    for (const t of targets) {
      asked[t]!++;
      this.#control(t, kind, 0, 0, 0, 0, lock);
    }
    const done = (): boolean => targets.every((t) => answered[t]! >= asked[t]!);
    if (!done()) await this.#engine.until(done);
  }

  /** Waits for the open sends and reply receives to `targets` (undefined: all); throws the first one's error. */
  async #settle(targets: number[] | undefined): Promise<void> {
    const mine = (p: { target: number }): boolean => targets === undefined || targets.includes(p.target);
    const open = (): boolean => this.#pending.some((p) => !p.req.done && mine(p));
    if (open()) await this.#engine.until(() => !open());
    else await this.#idleProgress();
    let err: Error | undefined;
    this.#pending = this.#pending.filter((p) => {
      if (!p.req.done) return true;
      err ??= p.req.error;
      return false;
    });
    if (err) throw err;
  }

  /**
   * MPI_Win_free (collective): completes what is outstanding, waits for
   * every rank to be done with the window, and releases it.
   */
  async Free(): Promise<void> {
    this.#check();
    if (this.#passiveEpoch) throw new RmaSyncError('Free inside a passive-target epoch: Unlock first');
    if (this.#accessEpoch || this.#postGroup) throw new RmaSyncError('Free inside a Post/Start epoch: Complete and Wait first');
    await this.#flush(this.#all());
    await this.#comm.Barrier();
    this.#release();
  }

  #release(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#unexpose?.();
    this.#unexpose = undefined;
    for (const seg of this.#segments) seg.close();
    this.#segments.length = 0;
    this.#reach = [];
    this.#engine.setRmaHandler(this.#comm.context, undefined);
    this.#engine.releaseService();
    this.#comm.free();
  }

  get freed(): boolean {
    return this.#freed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#freed) await this.Free();
  }
}

const DONE: Promise<void> = Promise.resolve();
/** A word whose atomic update Sync uses as a full fence. */
const FENCE = new Int32Array(new SharedArrayBuffer(4));

/** One process_vm_writev or readv of all of `bytes`; a short one (the window is gone) is a TransportError. */
function vmMove(move: typeof vmRead, pid: number, at: bigint, bytes: Uint8Array, target: number): void {
  const n = move(pid, at, bytes);
  if (n !== bytes.length) throw new TransportError(`rank ${target}'s window: process_vm moved ${n} of ${bytes.length} bytes`);
}

function checkAssertion(assertion: unknown, what: string): void {
  if (!Number.isInteger(assertion) || (assertion as number) < 0) throw new InvalidArgumentError(`${what}: assertion must be a combination of MODE_* bits, got ${String(assertion)}`);
}

function dtypeOf(a: TypedArray): number {
  return ARRAY_CLASSES.indexOf(arrayClass(a));
}
