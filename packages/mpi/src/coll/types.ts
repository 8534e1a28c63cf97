// What the collective algorithms need from a communicator: byte-level
// point-to-point on the communicator's collective context, where the tag
// names the collective call so concurrent nonblocking collectives never
// match each other's messages.
export interface Tuning {
  /** Bcast above this many bytes: scatter + ring allgather instead of a binomial tree. */
  bcastLong: number;
  /** Allreduce above this many bytes: ring reduce-scatter + allgather instead of recursive doubling. */
  allreduceLong: number;
}

export interface CollComm {
  readonly rank: number;
  readonly size: number;
  readonly tuning: Tuning;
  send(dest: number, tag: number, bytes: Uint8Array): Promise<unknown>;
  recv(src: number, tag: number, into: Uint8Array): Promise<unknown>;
}

export function sendrecv(c: CollComm, dest: number, tag: number, out: Uint8Array, src: number, into: Uint8Array): Promise<unknown> {
  const r = c.recv(src, tag, into);
  const s = c.send(dest, tag, out);
  return Promise.all([r, s]);
}

/** Splits n items into `parts` nearly equal blocks: [offsets, counts]. */
export function blocks(n: number, parts: number): [number[], number[]] {
  const counts: number[] = [];
  const offs: number[] = [];
  const base = Math.floor(n / parts);
  const extra = n % parts;
  let o = 0;
  for (let i = 0; i < parts; i++) {
    const c = base + (i < extra ? 1 : 0);
    offs.push(o);
    counts.push(c);
    o += c;
  }
  return [offs, counts];
}
