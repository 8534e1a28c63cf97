// Dissemination barrier: ceil(log2 p) rounds, in round k each rank
// signals rank + 2^k and hears from rank - 2^k (Hensgen, Finkel, Manber).
import { mod, sendrecv, type Coll } from './util.js';

const EMPTY = new Uint8Array(0);

export async function barrier(c: Coll): Promise<void> {
  const { rank, size } = c;
  for (let k = 1; k < size; k <<= 1) {
    await sendrecv(c, EMPTY, mod(rank + k, size), new Uint8Array(0), mod(rank - k, size));
  }
}
