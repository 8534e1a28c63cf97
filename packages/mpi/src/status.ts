// MPI_Status: who sent the message, with which tag, and how big it was.

export class Status {
  /** The sender's rank in the communicator (MPI_SOURCE). */
  source: number;
  /** The message's tag (MPI_TAG). */
  tag: number;
  /** Bytes received. */
  byteCount: number;
  /** True when the request was cancelled before it matched. */
  cancelled = false;

  constructor(source = -1, tag = -1, byteCount = 0) {
    this.source = source;
    this.tag = tag;
    this.byteCount = byteCount;
  }

  /** MPI_Get_count: elements of `bytesPerElement` bytes (default 1: bytes). */
  getCount(bytesPerElement = 1): number {
    return Math.floor(this.byteCount / bytesPerElement);
  }

  /** Elements received for typed receives; bytes otherwise. */
  get count(): number {
    return this.byteCount / this.elementBytes;
  }

  /** The element size of the receive buffer (1 for objects and bytes). */
  elementBytes = 1;
}
