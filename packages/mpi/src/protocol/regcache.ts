// A registration cache, as MPI libraries keep one for rendezvous: user
// buffers are registered once (their whole ArrayBuffer) and reused by every
// later transfer from or into them; the least recently used registrations
// are dropped when the total passes a bound.
import { Access, regMr, type MR, type PD } from '@ibal/verbs';

const ACCESS = Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE;

interface Entry {
  mr: MR;
  inUse: number;
}

export class RegCache {
  readonly #pd: PD;
  readonly #limit: number;
  readonly #entries = new Map<ArrayBufferLike, Entry>();
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(pd: PD, limitBytes: number) {
    this.#pd = pd;
    this.#limit = limitBytes;
  }

  /** The MR covering `view`'s buffer (registered now or earlier); release() when the transfer ends. */
  acquire(view: Uint8Array): MR {
    const ab = view.buffer;
    let e = this.#entries.get(ab);
    if (e) {
      this.hits++;
      this.#entries.delete(ab);
    } else {
      this.misses++;
      this.#evict(ab.byteLength);
      e = { mr: regMr(this.#pd, new Uint8Array(ab), ACCESS), inUse: 0 };
      this.#bytes += ab.byteLength;
    }
    this.#entries.set(ab, e);
    e.inUse++;
    return e.mr;
  }

  release(view: Uint8Array): void {
    const e = this.#entries.get(view.buffer);
    if (e && e.inUse > 0) e.inUse--;
  }

  #evict(incoming: number): void {
    for (const [ab, e] of this.#entries) {
      if (this.#bytes + incoming <= this.#limit) return;
      if (e.inUse > 0) continue;
      this.#entries.delete(ab);
      this.#bytes -= ab.byteLength;
      e.mr.dereg();
    }
  }

  clear(): void {
    for (const e of this.#entries.values()) e.mr.dereg();
    this.#entries.clear();
    this.#bytes = 0;
  }
}
