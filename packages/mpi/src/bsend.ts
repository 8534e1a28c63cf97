// Buffered mode (MPI_Buffer_attach, MPI_Bsend): a send that completes at
// once whatever the receiver does, its data copied into room the program
// set aside. Legacy codes use it to send before the matching receives exist
// without risking a deadlock; running out of that room is their error to
// see (MPI_ERR_BUFFER), not a wait.
import { InvalidArgumentError } from '@ibal/hca';
import { BufferError } from './errors.js';
import { Request } from './request.js';

/** MPI_BSEND_OVERHEAD: what each buffered message takes beyond its bytes (its bookkeeping here). */
export const BSEND_OVERHEAD = 96;

let capacity = 0;
let used = 0;
let attached = false;
/** Buffered messages still on their way, and the room each holds. */
const held: { req: Request<unknown>; need: number }[] = [];

/** Gives back the room of messages delivered since (no callbacks on requests: looked at when room is asked for). */
function reclaim(): void {
  for (let i = held.length - 1; i >= 0; i--) {
    if (!held[i]!.req.done) continue;
    used -= held[i]!.need;
    held.splice(i, 1);
  }
}

/**
 * MPI_Buffer_attach: `size` bytes for buffered sends (Bsend, Ibsend), each
 * message taking its length plus BSEND_OVERHEAD while it is on its way.
 * One buffer per process, as in MPI.
 */
export function bufferAttach(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`bufferAttach: size must be a non-negative integer, got ${String(size)}`);
  if (attached) throw new InvalidArgumentError('bufferAttach: a buffer is attached already (bufferDetach it first)');
  attached = true;
  capacity = size;
  used = 0;
}

/** MPI_Buffer_detach: waits for every buffered message to be delivered, then gives the size back. */
export async function bufferDetach(): Promise<number> {
  if (!attached) throw new InvalidArgumentError('bufferDetach: no buffer is attached');
  // A failed send is done too (the job's failure reaches the program elsewhere).
  while (held.length > 0) {
    await Request.waitAll(held.map((h) => h.req)).catch(() => undefined);
    reclaim();
  }
  attached = false;
  const size = capacity;
  capacity = 0;
  return size;
}

/**
 * Sends a copy of `data` (the program may reuse its array at once) with
 * `start`, holding room in the attached buffer until that send completes.
 */
export function sendBuffered(data: Uint8Array, start: (copy: Uint8Array) => Request<unknown>): void {
  if (!attached) throw new BufferError(`Bsend of ${data.length} bytes with no buffer attached (bufferAttach first)`);
  reclaim();
  const need = data.length + BSEND_OVERHEAD;
  if (used + need > capacity) throw new BufferError(`Bsend of ${data.length} bytes: the attached buffer has ${capacity - used} of ${capacity} bytes free (each message takes BSEND_OVERHEAD = ${BSEND_OVERHEAD} more)`);
  const req = start(data.slice());
  if (req.done) return;
  used += need;
  held.push({ req, need });
}
