// Cartesian process topologies (MPI_Cart_*): ranks as a grid with optional
// wrap-around per dimension, the neighbor arithmetic stencil codes need
// (shift, coordinates), row and column sub-communicators, and neighbor
// collectives in MPI's order (per dimension, the lower neighbor then the
// upper one).
import { InvalidArgumentError } from '@ibal/hca';
import { Comm } from '../comm.js';
import { CART, PROC_NULL } from '../constants.js';
import type { World } from '../world.js';
import { TopoComm } from './topo-comm.js';

export class CartComm extends TopoComm {
  /** Processes per dimension. */
  readonly dims: readonly number[];
  /** Whether each dimension wraps around. */
  readonly periods: readonly boolean[];
  /** This rank's coordinates. */
  readonly coords: readonly number[];

  /** @internal */
  constructor(world: World, context: number, group: readonly number[], dims: readonly number[], periods: readonly boolean[]) {
    const rank = group.indexOf(world.rank);
    const coords = coordsOf(rank, dims);
    const neighbors: number[] = [];
    for (let i = 0; i < dims.length; i++) {
      const [lower, upper] = shiftOf(coords, dims, periods, i, 1);
      neighbors.push(lower, upper);
    }
    // A block sent toward the lower neighbor arrives there as the one from
    // its upper neighbor: send slot j travels under tag j and receive slot
    // j expects tag j ^ 1. That pairs them even where a rank is both
    // neighbors (a periodic dimension of 1 or 2).
    const tags = neighbors.map((_, j) => j);
    super(world, context, group, { sources: neighbors, destinations: neighbors, sendTag: tags, recvTag: tags.map((j) => j ^ 1) });
    this.dims = Object.freeze([...dims]);
    this.periods = Object.freeze([...periods]);
    this.coords = Object.freeze(coords);
  }

  /** MPI_Cartdim_get. */
  get ndim(): number {
    return this.dims.length;
  }

  override topoTest(): number {
    return CART;
  }

  /** MPI_Cart_coords: the coordinates of `rank`. */
  getCoords(rank: number): number[] {
    if (!Number.isInteger(rank) || rank < 0 || rank >= this.size) throw new InvalidArgumentError(`getCoords: ${String(rank)} is not a rank of this grid (size ${this.size})`);
    return coordsOf(rank, this.dims);
  }

  /**
   * MPI_Cart_rank: the rank at `coords`; a periodic dimension wraps any
   * coordinate, a coordinate outside a non-periodic one is an error.
   */
  getCartRank(coords: readonly number[]): number {
    if (!Array.isArray(coords) || coords.length !== this.ndim) throw new InvalidArgumentError(`getCartRank: takes ${this.ndim} coordinates`);
    let rank = 0;
    for (let i = 0; i < this.ndim; i++) {
      const n = this.dims[i]!;
      let c = coords[i] as unknown;
      if (typeof c !== 'number' || !Number.isInteger(c)) throw new InvalidArgumentError(`getCartRank: coordinate ${i} must be an integer, got ${String(c)}`);
      if (this.periods[i]) c = ((c % n) + n) % n;
      else if (c < 0 || c >= n) throw new InvalidArgumentError(`getCartRank: coordinate ${i} (${c}) is outside the non-periodic dimension of ${n}`);
      rank = rank * n + (c as number);
    }
    return rank;
  }

  /**
   * MPI_Cart_shift: [source, dest] for a shift by `disp` along
   * `direction`: dest is `disp` steps up, source as far down; PROC_NULL
   * past the edge of a non-periodic dimension. As ported code uses it:
   * `const [left, right] = cart.shift(1, 1)`.
   */
  shift(direction: number, disp = 1): [number, number] {
    if (!Number.isInteger(direction) || direction < 0 || direction >= this.ndim) throw new InvalidArgumentError(`shift: direction ${String(direction)} is not a dimension of this ${this.ndim}-d grid`);
    if (!Number.isInteger(disp)) throw new InvalidArgumentError(`shift: disp must be an integer, got ${String(disp)}`);
    return shiftOf(this.coords, this.dims, this.periods, direction, disp);
  }

  /**
   * MPI_Cart_sub: the grids of the dimensions kept (`remainDims[i]` true),
   * one per position in the dropped ones: rows or columns of a 2-d grid.
   * Collective.
   */
  async sub(remainDims: readonly boolean[]): Promise<CartComm> {
    if (!Array.isArray(remainDims) || remainDims.length !== this.ndim) throw new InvalidArgumentError(`sub: takes ${this.ndim} flags (one per dimension)`);
    const keep = remainDims.map((k) => k === true || k === 1);
    // Ranks agreeing in every dropped coordinate share a color.
    let color = 0;
    for (let i = 0; i < this.ndim; i++) if (!keep[i]) color = color * this.dims[i]! + this.coords[i]!;
    const part = await Comm.partition(this, color, this.rank);
    const dims = this.dims.filter((_, i) => keep[i]);
    const periods = this.periods.filter((_, i) => keep[i]);
    return new CartComm(Comm.worldOf(this), part!.context, part!.group, dims, periods);
  }

  /** MPI_Comm_dup keeps the topology. */
  override async dup(): Promise<CartComm> {
    const ctx = await Comm.agreeContext(this);
    return new CartComm(Comm.worldOf(this), ctx, this.group, this.dims, this.periods);
  }
}

/** createCart's arguments, checked: dims as positive integers that fit in `size` ranks, periods as booleans. */
export function checkCartArgs(dims: readonly number[], periods: readonly (boolean | number)[] | undefined, size: number, what: string): { d: number[]; p: boolean[] } {
  if (!Array.isArray(dims) || dims.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`${what}: dims must be an array of positive integers`);
  const cells = dims.reduce((a: number, b: number) => a * b, 1);
  if (cells > size) throw new InvalidArgumentError(`${what}: a grid of ${dims.join('x')} needs ${cells} ranks; the communicator has ${size}`);
  if (periods !== undefined && (!Array.isArray(periods) || periods.length !== dims.length || periods.some((v) => typeof v !== 'boolean' && v !== 0 && v !== 1))) {
    throw new InvalidArgumentError(`${what}: periods must be ${dims.length} booleans (or 0/1)`);
  }
  return { d: [...dims], p: dims.map((_, i) => Boolean(periods?.[i])) };
}

function coordsOf(rank: number, dims: readonly number[]): number[] {
  const c = new Array<number>(dims.length);
  for (let i = dims.length - 1; i >= 0; i--) {
    c[i] = rank % dims[i]!;
    rank = Math.floor(rank / dims[i]!);
  }
  return c;
}

function shiftOf(coords: readonly number[], dims: readonly number[], periods: readonly boolean[], dir: number, disp: number): [number, number] {
  const at = (delta: number): number => {
    let rank = 0;
    for (let i = 0; i < dims.length; i++) {
      const n = dims[i]!;
      let c = coords[i]!;
      if (i === dir) {
        c += delta;
        if (periods[i]) c = ((c % n) + n) % n;
        else if (c < 0 || c >= n) return PROC_NULL;
      }
      rank = rank * n + c;
    }
    return rank;
  };
  return [at(-disp), at(disp)];
}
