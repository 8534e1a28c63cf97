// MPI_Status: who sent the message, with which tag, and how big it was.
import { UNDEFINED } from './constants.js';
import type { Datatype } from './dtype/datatype.js';

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

  /**
   * MPI_Get_count: with a Datatype, the whole instances received
   * (UNDEFINED when the bytes end inside one); with a number, elements of
   * that many bytes (default 1: bytes).
   */
  getCount(datatype: Datatype | number = 1): number {
    if (typeof datatype === 'number') return Math.floor(this.byteCount / datatype);
    if (datatype.size === 0) return this.byteCount === 0 ? 0 : UNDEFINED;
    return this.byteCount % datatype.size === 0 ? this.byteCount / datatype.size : UNDEFINED;
  }

  /**
   * MPI_Get_elements: the basic elements received as `datatype`, counting
   * those of a last instance that arrived only in part (UNDEFINED when the
   * bytes end inside an element).
   */
  getElements(datatype: Datatype): number {
    if (datatype.size === 0) return 0;
    const whole = Math.floor(this.byteCount / datatype.size);
    let left = this.byteCount - whole * datatype.size;
    let n = whole * datatype.elements;
    for (let i = 0; left > 0; i++) {
      const l = Math.min(datatype.len[i]!, left);
      const e = datatype.elemBytes[i]!;
      if (l % e !== 0) return UNDEFINED;
      n += l / e;
      left -= l;
    }
    return n;
  }

  /** Elements received for typed receives; bytes otherwise. */
  get count(): number {
    return this.byteCount / this.elementBytes;
  }

  /** The element size of the receive buffer (1 for objects and bytes). */
  elementBytes = 1;
}
