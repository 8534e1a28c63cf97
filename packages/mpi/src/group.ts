// MPI_Group: an ordered set of processes, a local object (making and
// combining groups talks to nobody). Groups name the members of a new
// communicator (comm.create, comm.createGroup) and of a window's
// Post/Start epochs, and translate ranks between communicators.
import { InvalidArgumentError } from '@ibal/hca';
import { PROC_NULL, UNDEFINED } from './constants.js';

/** Group.compare: same members in the same order (MPI_IDENT). */
export const IDENT = 0;
/** Communicators only (MPI_CONGRUENT); groups compare IDENT, SIMILAR or UNEQUAL. */
export const CONGRUENT = 1;
/** Group.compare: same members, another order (MPI_SIMILAR). */
export const SIMILAR = 2;
/** Group.compare: different members (MPI_UNEQUAL). */
export const UNEQUAL = 3;

export class Group {
  /** Members' world ranks, by group rank. */
  readonly #members: readonly number[];
  readonly #self: number;

  /** @internal `members` are world ranks; `self` is this process's. */
  constructor(members: readonly number[], self: number) {
    this.#members = Object.freeze([...members]);
    this.#self = self;
  }

  /** @internal The members' world ranks. */
  static members(g: Group): readonly number[] {
    if (!(g instanceof Group)) throw new InvalidArgumentError('expected a Group (comm.getGroup())');
    return g.#members;
  }

  /** MPI_Group_size. */
  get size(): number {
    return this.#members.length;
  }

  /** MPI_Group_rank: this process's rank in the group, or UNDEFINED. */
  get rank(): number {
    const r = this.#members.indexOf(this.#self);
    return r < 0 ? UNDEFINED : r;
  }

  #ranks(ranks: unknown, what: string): number[] {
    if (!Array.isArray(ranks)) throw new InvalidArgumentError(`${what}: takes an array of ranks of this group`);
    for (const r of ranks) {
      if (!Number.isInteger(r) || r < 0 || r >= this.size) throw new InvalidArgumentError(`${what}: ${String(r)} is not a rank of this group (size ${this.size})`);
    }
    if (new Set(ranks).size !== ranks.length) throw new InvalidArgumentError(`${what}: names a rank twice`);
    return ranks as number[];
  }

  /** MPI_Group_incl: the members at `ranks`, in that order. */
  incl(ranks: readonly number[]): Group {
    return new Group(this.#ranks(ranks, 'incl').map((r) => this.#members[r]!), this.#self);
  }

  /** MPI_Group_excl: the members not at `ranks`, in this group's order. */
  excl(ranks: readonly number[]): Group {
    const out = new Set(this.#ranks(ranks, 'excl'));
    return new Group(this.#members.filter((_, r) => !out.has(r)), this.#self);
  }

  /** MPI_Group_range_incl: `ranges` of [first, last, stride] triplets (last inclusive). */
  rangeIncl(ranges: readonly (readonly [number, number, number])[]): Group {
    return this.incl(this.#expand(ranges, 'rangeIncl'));
  }

  /** MPI_Group_range_excl. */
  rangeExcl(ranges: readonly (readonly [number, number, number])[]): Group {
    return this.excl(this.#expand(ranges, 'rangeExcl'));
  }

  #expand(ranges: unknown, what: string): number[] {
    if (!Array.isArray(ranges)) throw new InvalidArgumentError(`${what}: takes an array of [first, last, stride] triplets`);
    const out: number[] = [];
    for (const t of ranges) {
      if (!Array.isArray(t) || t.length !== 3 || !t.every((x) => Number.isInteger(x))) throw new InvalidArgumentError(`${what}: ${JSON.stringify(t)} is not a [first, last, stride] triplet`);
      const [first, last, stride] = t as [number, number, number];
      if (stride === 0 || (last - first) * stride < 0) throw new InvalidArgumentError(`${what}: stride ${stride} does not lead from ${first} to ${last}`);
      for (let r = first; stride > 0 ? r <= last : r >= last; r += stride) {
        out.push(r);
        if (out.length > this.size) throw new InvalidArgumentError(`${what}: the ranges name more ranks than the group has`);
      }
    }
    return out;
  }

  /** MPI_Group_translate_ranks: each of `ranks` (in this group) as a rank of `other`, UNDEFINED if not a member there. */
  translateRanks(ranks: readonly number[], other: Group): number[] {
    const theirs = Group.members(other);
    if (!Array.isArray(ranks)) throw new InvalidArgumentError('translateRanks: takes an array of ranks of this group');
    return ranks.map((r) => {
      if (r === PROC_NULL) return PROC_NULL;
      if (!Number.isInteger(r) || r < 0 || r >= this.size) throw new InvalidArgumentError(`translateRanks: ${String(r)} is not a rank of this group (size ${this.size})`);
      const t = theirs.indexOf(this.#members[r]!);
      return t < 0 ? UNDEFINED : t;
    });
  }

  /** MPI_Group_union: a's members, then b's not in a. */
  static union(a: Group, b: Group): Group {
    const am = Group.members(a);
    const seen = new Set(am);
    return new Group([...am, ...Group.members(b).filter((w) => !seen.has(w))], a.#self);
  }

  /** MPI_Group_intersection: a's members that are in b, in a's order. */
  static intersection(a: Group, b: Group): Group {
    const bm = new Set(Group.members(b));
    return new Group(Group.members(a).filter((w) => bm.has(w)), a.#self);
  }

  /** MPI_Group_difference: a's members not in b, in a's order. */
  static difference(a: Group, b: Group): Group {
    const bm = new Set(Group.members(b));
    return new Group(Group.members(a).filter((w) => !bm.has(w)), a.#self);
  }

  /** MPI_Group_compare: IDENT, SIMILAR or UNEQUAL. */
  static compare(a: Group, b: Group): number {
    const am = Group.members(a);
    const bm = Group.members(b);
    if (am.length !== bm.length) return UNEQUAL;
    if (am.every((w, i) => bm[i] === w)) return IDENT;
    const s = new Set(bm);
    return am.every((w) => s.has(w)) ? SIMILAR : UNEQUAL;
  }
}
