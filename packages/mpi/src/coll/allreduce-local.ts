// Allreduce among members that all share this host's memory, through the
// communicator's staging (local-group.ts). One round, for a vector that
// fits the staging (bigger ones take several):
//   1. every member copies its input into its input area, describes it in
//      its header line and counts itself in (an atomic add on a counter
//      all members share);
//   2. the member whose add completes the count (the last to arrive) folds
//      every input, in rank order and in one pass, into its result area and
//      sends each other member a small message naming itself;
//   3. the others, woken by that message, copy the result into their output.
// Nobody but the last to arrive has to be woken in between, and each of
// the others is woken once: with more ranks than cores, every wake-up costs
// a context switch (on a virtual machine, tens to hundreds of microseconds),
// and those, not the copies, are what an exchange of slices between every
// pair of members would spend its time on. The result is the same, bit for
// bit, on every member: it is computed once.
//
// Why nothing is overwritten while someone still reads it: a member's input
// area and header are read by the round's folder before its message, and
// the member writes them again only after that message. A result area is
// read by the others after the message and before they count themselves
// into a later round; its owner writes it again only as the folder of a
// later round, which it can be only once everyone has counted in.
//
// MPI_IN_PLACE (input and output the same array) needs no care: the input
// is copied to the staging before the output is written.
import { InvalidArgumentError } from '@ibal/hca';
import { ANY_SOURCE } from '../constants.js';
import { ARRAY_CLASSES, arrayClass, type Op, type TypedArray } from '../ops.js';
import type { ArrayCtor, LocalGroup } from './local-group.js';
import type { Coll } from './util.js';

// Header line: what a member contributes to this round.
const H_BYTES = 0;
const H_TYPE = 1;
// Array types by number (their index in ARRAY_CLASSES), so members can tell they passed the same kind.
const TYPES = ARRAY_CLASSES;
// Message from the folder: who it is, and how the fold went.
const M_FOLDER = 0;
const M_STATUS = 1;
const S_OK = 0;
const S_MISMATCH = 1;
const S_OP_THREW = 2;

/**
 * Resolves true when done, false when the communicator has no staging
 * (every member then gets false alike, and falls back to point to point).
 */
export async function allreduceLocal(c: Coll, g: LocalGroup, sendbuf: TypedArray, recvbuf: TypedArray, op: Op): Promise<boolean> {
  const st = await g.staging(c, recvbuf.byteLength);
  if (!st) return false;
  const { rank, size } = c;
  const T = arrayClass(recvbuf) as unknown as ArrayCtor<TypedArray>;
  const el = recvbuf.BYTES_PER_ELEMENT;
  const type = TYPES.indexOf(T);
  const total = recvbuf.length;
  const perRound = Math.floor(st.areaBytes / el / op.unit) * op.unit;
  const mine = st.header(rank);
  const note = new Float64Array(2);
  const ins: TypedArray[] = [];
  for (let base = 0; base < total; ) {
    const n = Math.min(perRound, total - base);
    const round = g.nextRound();
    st.input(T, rank, n).set(sendbuf.subarray(base, base + n) as never);
    mine[H_BYTES] = recvbuf.byteLength;
    mine[H_TYPE] = type;
    // Sequentially consistent: the input and header are visible to whoever sees the count.
    const before = Atomics.add(st.control, 0, 1);
    if (((before + 1) | 0) === (Math.imul(size, round) | 0)) {
      let mismatch: string | undefined;
      for (let j = 0; j < size && !mismatch; j++) {
        const h = st.header(j);
        if (h[H_BYTES] !== recvbuf.byteLength || h[H_TYPE] !== type) {
          const what = (b: number, t: number): string => `${b} bytes of ${(TYPES[t] as { name?: string } | undefined)?.name ?? 'an unknown type'}`;
          mismatch = `Allreduce: rank ${j} passed ${what(h[H_BYTES]!, h[H_TYPE]!)}, rank ${rank} ${what(recvbuf.byteLength, type)}`;
        }
      }
      const out = st.result(T, rank, n);
      let failure: unknown;
      if (!mismatch) {
        for (let j = 0; j < size; j++) ins[j] = j === rank ? sendbuf.subarray(base, base + n) : st.input(T, j, n);
        try {
          op.fold(ins, out);
        } catch (err) {
          // A user operation threw: everyone hears of it rather than waiting for a result.
          failure = err;
        }
      }
      note[M_FOLDER] = rank;
      note[M_STATUS] = mismatch ? S_MISMATCH : failure !== undefined ? S_OP_THREW : S_OK;
      const sends = [];
      for (let j = 0; j < size; j++) if (j !== rank) sends.push(c.isend(note, j));
      for (const s of sends) await s.wait();
      if (mismatch) throw new InvalidArgumentError(mismatch);
      if (failure !== undefined) throw failure;
      recvbuf.set(out as never, base);
    } else {
      await c.irecv(note, ANY_SOURCE).wait();
      if (note[M_STATUS] === S_MISMATCH) throw new InvalidArgumentError(`Allreduce: the ranks passed different arrays (rank ${rank}: ${recvbuf.byteLength} bytes of ${recvbuf.constructor.name})`);
      if (note[M_STATUS] === S_OP_THREW) throw new InvalidArgumentError(`Allreduce: operation ${op.name} threw on rank ${note[M_FOLDER]}`);
      recvbuf.set(st.result(T, note[M_FOLDER]!, n) as never, base);
    }
    base += n;
  }
  return true;
}
