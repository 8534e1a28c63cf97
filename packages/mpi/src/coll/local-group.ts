// A communicator whose members all share this host's memory (each is this
// process or a shared-memory peer) gets staging memory for its collectives,
// as Open MPI's coll/sm does: every member maps one segment of its own and
// the other members' segments, so a collective moves data with plain
// copies between them instead of passing messages (no system call per
// transfer: on a virtual machine those cost far more than the copies).
//
// Every member makes the same decisions from the same sequence of calls (a
// communicator's collectives are called in one order by all), so they all
// set up and use the staging at the same points. Setting up is itself a
// collective, in the first call that needs it: names go to every member,
// then every member says whether it mapped them all; if any could not, the
// communicator stays on point to point, everywhere.
import { ShmSegment } from '@ibal/hca';
import type { TypedArray } from '../ops.js';
import { Request } from '../request.js';
import type { Status } from '../status.js';
import { ShmTransport } from '../transport/shm.js';
import type { Endpoint, Transport } from '../transport/transport.js';
import type { Coll } from './util.js';

// Each member's segment: a line the member describes its contribution in
// (read by whoever combines them), a line of counters (used in member 0's
// segment only: one place every member can count itself in), then an input
// area and a result area. Pages are only backed once touched, so a
// communicator that reduces small vectors uses little of it; bigger vectors
// go through it in rounds. One size for every call keeps the set-up a
// single collective step that never depends on the call.
const AREA_BYTES = 2 << 20;
const HEADER = 0;
const CONTROL = 64;
const INPUT = 128;
const RESULT = INPUT + AREA_BYTES;
const SEGMENT_BYTES = RESULT + AREA_BYTES;
const NAME_BYTES = 128;

export interface Staging {
  /** Bytes of each member's input area and of its result area. */
  readonly areaBytes: number;
  /** Member j's header line, as doubles. */
  header(j: number): Float64Array;
  /** Counters shared by every member (member 0's control line). */
  readonly control: Int32Array;
  /** A view of the first n elements (of type T) of member j's input area. */
  input<T extends TypedArray>(T: ArrayCtor<T>, j: number, n: number): T;
  /** A view of the first n elements of member j's result area. */
  result<T extends TypedArray>(T: ArrayCtor<T>, j: number, n: number): T;
}

export type ArrayCtor<T> = new (buffer: ArrayBuffer, byteOffset: number, length: number) => T;

function stagingOver(buffers: readonly ArrayBuffer[]): Staging {
  const headers = buffers.map((b) => new Float64Array(b, HEADER, 8));
  return {
    areaBytes: AREA_BYTES,
    header: (j) => headers[j]!,
    control: new Int32Array(buffers[0]!, CONTROL, 16),
    input: (T, j, n) => new T(buffers[j]!, INPUT, n),
    result: (T, j, n) => new T(buffers[j]!, RESULT, n),
  };
}

export class LocalGroup {
  readonly rank: number;
  readonly size: number;
  #segments: ShmSegment[] = [];
  #staging: Staging | undefined;
  #unavailable = false;
  #round = 0;
  #touched = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #closed = false;
  readonly #release: () => void;

  private constructor(rank: number, size: number, shm: ShmTransport) {
    this.rank = rank;
    this.size = size;
    this.#release = shm.own(this);
  }

  /** The group for a communicator of these world ranks, or undefined when some member is not on this host's shared memory. */
  static for(endpoints: readonly (Endpoint | undefined)[], transports: readonly Transport[], group: readonly number[], rank: number): LocalGroup | undefined {
    if (group.length < 2 || rank < 0) return undefined;
    for (const w of group) {
      const kind = endpoints[w]?.kind;
      if (kind !== 'self' && kind !== 'shm') return undefined;
    }
    const shm = transports.find((t): t is ShmTransport => t instanceof ShmTransport);
    return shm ? new LocalGroup(rank, group.length, shm) : undefined;
  }

  /**
   * Runs `fn` once every staged collective started before it on this
   * communicator has finished: they share the staging memory. Members start
   * collectives in the same order, so they all queue them alike.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#queued++;
    const run = this.#tail.then(fn).finally(() => {
      this.#queued--;
      if (this.#closed && this.#queued === 0) this.#unmap();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /**
   * The staging, set up collectively on first use, with the first `bytes`
   * of every member's areas mapped in this process; undefined when shared
   * memory could not be had. Call only inside exclusive().
   */
  async staging(c: Coll, bytes: number): Promise<Staging | undefined> {
    if (this.#unavailable || this.#closed) return undefined;
    const st = this.#staging ?? (await this.#setUp(c));
    if (st && bytes > this.#touched) this.#touch(Math.min(AREA_BYTES, bytes));
    return st;
  }

  // A page's first touch in a process costs a fault, ~10-20 us each on a
  // virtual machine (5 ms and more per MiB): a vector's first reduction
  // would pay it, and so would every later one whose folder, or whose
  // reader of the folder's result, meets a page for the first time. Touch
  // every page of every area up to the size in use now, once, instead:
  // this member's own by adding 0 to a word (atomically, so a peer reading
  // it meanwhile sees no change), the others' by reading one.
  #touch(upTo: number): void {
    const from = this.#touched;
    const to = Math.ceil(upTo / 4096) * 4096;
    this.#segments.forEach((seg, j) => {
      for (const at of [INPUT, RESULT]) {
        const w = new Int32Array(seg.buffer, at + from, (to - from) / 4);
        if (j === this.rank) for (let i = 0; i < w.length; i += 1024) Atomics.add(w, i, 0);
        else for (let i = 0; i < w.length; i += 1024) Atomics.load(w, i);
      }
    });
    this.#touched = to;
  }

  /** Numbers the rounds that use the staging: the same sequence in every member. */
  nextRound(): number {
    return ++this.#round;
  }

  async #setUp(c: Coll): Promise<Staging | undefined> {
    const { rank, size } = this;
    const segments: (ShmSegment | undefined)[] = [];
    let kept = false;
    try {
      try {
        segments[rank] = ShmSegment.create(SEGMENT_BYTES);
      } catch {
        // No room in /dev/shm or no descriptors left: the others hear it below.
      }
      const own = segments[rank];
      const name = new Uint8Array(NAME_BYTES);
      if (own) name.set(new TextEncoder().encode(own.name).subarray(0, NAME_BYTES));
      const names = inboxes(size, () => new Uint8Array(NAME_BYTES));
      await exchange(c, name, names);
      let ok = own !== undefined;
      for (let j = 0; j < size && ok; j++) {
        if (j === rank) continue;
        const bytes = names[j]!;
        const end = bytes.indexOf(0);
        try {
          const seg = ShmSegment.open(new TextDecoder().decode(bytes.subarray(0, end < 0 ? NAME_BYTES : end)));
          segments[j] = seg;
          if (seg.size < SEGMENT_BYTES) ok = false;
        } catch {
          ok = false;
        }
      }
      const votes = inboxes(size, () => new Uint8Array(1));
      await exchange(c, Uint8Array.of(ok ? 1 : 0), votes);
      // Every member has mapped every segment (or given up): the name can go.
      own?.unlink();
      if (!ok || votes.some((v, j) => j !== rank && v[0] !== 1)) {
        this.#unavailable = true;
        return undefined;
      }
      this.#segments = segments as ShmSegment[];
      this.#staging = stagingOver(this.#segments.map((s) => s.buffer));
      kept = true;
      return this.#staging;
    } finally {
      // Closing our own segment also unlinks its name if that has not happened.
      if (!kept) for (const s of segments) s?.close();
    }
  }

  /** Unmaps the staging now, or once the collectives queued on it have finished (MPI_Comm_free, finalize). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#release();
    if (this.#queued === 0) this.#unmap();
  }

  #unmap(): void {
    for (const s of this.#segments) s.close();
    this.#segments = [];
    this.#staging = undefined;
  }
}

export function inboxes<T>(size: number, make: () => T): T[] {
  return Array.from({ length: size }, make);
}

/**
 * Sends `out` to every other member and receives one message from each j
 * into inbox[j]. Receives are posted first; sends are waited for too, so
 * `out` may change once this returns.
 */
export async function exchange(c: Coll, out: TypedArray, inbox: readonly TypedArray[]): Promise<void> {
  const { rank, size } = c;
  const reqs: Request<Status>[] = [];
  for (let j = 0; j < size; j++) if (j !== rank) reqs.push(c.irecv(inbox[j]!, j));
  for (let j = 0; j < size; j++) if (j !== rank) reqs.push(c.isend(out, j));
  await Request.waitAll(reqs);
}
