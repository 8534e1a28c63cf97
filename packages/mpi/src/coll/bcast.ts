// Broadcast. Small messages: a binomial tree (log p steps, the whole
// message each). Large ones: scatter the message down the binomial tree,
// then a ring allgather (van de Geijn), so each link carries about 2n
// bytes instead of n log p.
import type { TypedArray } from '../ops.js';
import type { Request } from '../request.js';
import type { Status } from '../status.js';
import { mod, waitAll, type Coll } from './util.js';

export async function bcast(c: Coll, buf: TypedArray, root: number): Promise<void> {
  const { size } = c;
  if (size === 1) return;
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < c.large || bytes.length < size) return binomial(c, bytes, root);
  return scatterAllgather(c, bytes, root);
}

async function binomial(c: Coll, buf: Uint8Array, root: number): Promise<void> {
  const { rank, size } = c;
  const vr = mod(rank - root, size);
  let mask = 1;
  while (mask < size) {
    if (vr & mask) {
      await c.irecv(buf, mod(vr - mask + root, size)).wait();
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  const sends: Request<Status>[] = [];
  for (; mask > 0; mask >>= 1) if (vr + mask < size) sends.push(c.isend(buf, mod(vr + mask + root, size)));
  await waitAll(sends);
}

async function scatterAllgather(c: Coll, buf: Uint8Array, root: number): Promise<void> {
  const { rank, size } = c;
  const n = buf.length;
  const chunk = Math.ceil(n / size);
  const range = (from: number, to: number): Uint8Array => buf.subarray(Math.min(n, from * chunk), Math.min(n, to * chunk));
  const vr = mod(rank - root, size);
  // Scatter: each node receives the chunks of its subtree [vr, vr + mask).
  let mask = 1;
  while (mask < size) {
    if (vr & mask) {
      await c.irecv(range(vr, Math.min(vr + mask, size)), mod(vr - mask + root, size)).wait();
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  const sends: Request<Status>[] = [];
  for (; mask > 0; mask >>= 1) {
    if (vr + mask < size) sends.push(c.isend(range(vr + mask, Math.min(vr + 2 * mask, size)), mod(vr + mask + root, size)));
  }
  await waitAll(sends);
  // Ring allgather over virtual ranks: step s passes chunk vr - s to the right.
  const right = mod(vr + 1 + root, size);
  const left = mod(vr - 1 + root, size);
  for (let s = 0; s < size - 1; s++) {
    const out = mod(vr - s, size);
    const inc = mod(vr - s - 1, size);
    const r = c.irecv(range(inc, inc + 1), left);
    const w = c.isend(range(out, out + 1), right);
    await r.wait();
    await w.wait();
  }
}
