// MPI_Dims_create: a balanced grid for a number of processes, as ported code
// calls it before createCart (mpi4py's Compute_dims).
import { InvalidArgumentError } from '@ibal/hca';

/**
 * Fills the zero entries of `dims` (or `ndims` zeros) so the product is
 * `nnodes`, the free dimensions as close to each other as the factors allow
 * and in non-increasing order; non-zero entries are kept.
 */
export function dimsCreate(nnodes: number, dims: number | readonly number[]): number[] {
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new InvalidArgumentError(`dimsCreate: nnodes must be a positive integer, got ${String(nnodes)}`);
  const out = typeof dims === 'number' ? zeros(dims) : Array.isArray(dims) ? [...(dims as number[])] : undefined;
  if (!out || out.some((d) => !Number.isInteger(d) || d < 0)) throw new InvalidArgumentError('dimsCreate: dims must be a count of dimensions or an array of non-negative integers');
  let fixed = 1;
  for (const d of out) if (d > 0) fixed *= d;
  if (nnodes % fixed !== 0) throw new InvalidArgumentError(`dimsCreate: ${nnodes} processes do not divide by the fixed dimensions' product ${fixed}`);
  const free = out.filter((d) => d === 0).length;
  let rest = nnodes / fixed;
  if (free === 0) {
    if (rest !== 1) throw new InvalidArgumentError(`dimsCreate: the dimensions multiply to ${fixed}, not ${nnodes}`);
    return out;
  }
  // Largest prime factors first, each onto the smallest dimension so far.
  const primes: number[] = [];
  for (let p = 2; p * p <= rest; p++) {
    while (rest % p === 0) {
      primes.push(p);
      rest /= p;
    }
  }
  if (rest > 1) primes.push(rest);
  const grid = new Array<number>(free).fill(1);
  for (const p of primes.reverse()) {
    let k = 0;
    for (let i = 1; i < free; i++) if (grid[i]! < grid[k]!) k = i;
    grid[k]! *= p;
  }
  grid.sort((a, b) => b - a);
  let g = 0;
  return out.map((d) => (d === 0 ? grid[g++]! : d));
}

function zeros(ndims: number): number[] | undefined {
  return Number.isInteger(ndims) && ndims >= 0 ? new Array<number>(ndims).fill(0) : undefined;
}
