// POSIX shared memory segments (shm_open + mmap) whose bytes JS sees as an
// ArrayBuffer. Names follow /ibal-<pid>-<n>, so a segment left behind by a
// process that crashed before unlinking it can be recognised and swept by
// anyone: its pid no longer exists.
import fs from 'node:fs';
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import { fromNative } from './errors.js';
import { processExists } from './host.js';
import { sys } from './load.js';

const PREFIX = 'ibal-';
const NAME_RE = /^ibal-(\d+)-[0-9a-z]+$/;
let counter = 0;

export interface ShmCreateOptions {
  /** A name of your own (/name); default /ibal-<pid>-<n>. Only default names are swept. */
  name?: string;
}

/**
 * One mapping of a shared memory segment. The creator sizes it and unlinks
 * its name on close; others open it by name. `buffer` is valid until close,
 * which unmaps it (every view of it then has length 0, never dangles).
 */
export class ShmSegment {
  readonly name: string;
  readonly size: number;
  readonly isCreator: boolean;
  #buffer: ArrayBuffer | undefined;
  #linked: boolean;

  private constructor(name: string, buffer: ArrayBuffer, creator: boolean) {
    this.name = name;
    this.size = buffer.byteLength;
    this.isCreator = creator;
    this.#buffer = buffer;
    // An opener may unlink too (a handshake can leave that to the peer).
    this.#linked = true;
  }

  /** Creates a new segment of `size` bytes (zero-filled, mode 0600). */
  static create(size: number, options: ShmCreateOptions | null = {}): ShmSegment {
    if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError(`segment size must be a positive integer, got ${size}`);
    const addon = sys();
    const name = options?.name ?? `/${PREFIX}${process.pid}-${(counter++).toString(36)}`;
    try {
      return new ShmSegment(name, addon.shmMap(name, size, true), true);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Maps an existing segment by name; size 0 maps all of it. */
  static open(name: string, size = 0): ShmSegment {
    const addon = sys();
    try {
      return new ShmSegment(name, addon.shmMap(name, size, false), false);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** The mapped bytes. */
  get buffer(): ArrayBuffer {
    if (!this.#buffer) throw new ResourceClosedError(`shared memory segment ${this.name}`);
    return this.#buffer;
  }

  get closed(): boolean {
    return this.#buffer === undefined;
  }

  /**
   * Removes the name (the memory stays mapped by whoever has it). Calling it
   * as soon as the peer has mapped the segment leaves nothing to sweep even
   * if both processes are killed.
   */
  unlink(): boolean {
    if (!this.#linked) return false;
    this.#linked = false;
    try {
      return sys().shmUnlink(this.name);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Unmaps the segment; the creator also unlinks its name if still linked. */
  close(): void {
    if (!this.#buffer) return;
    const buf = this.#buffer;
    this.#buffer = undefined;
    if (this.isCreator && this.#linked) {
      this.#linked = false;
      try {
        sys().shmUnlink(this.name);
      } catch {
        // Already gone (another process swept or unlinked it).
      }
    }
    sys().detach(buf);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Unlinks /dev/shm/ibal-<pid>-* segments whose creating pid is dead and
 * returns their names. Segments of live processes are left alone.
 */
export function sweepStaleSegments(dir = '/dev/shm'): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const e of entries) {
    const m = NAME_RE.exec(e);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processExists(pid)) continue;
    try {
      if (sys().shmUnlink(`/${e}`)) swept.push(`/${e}`);
    } catch {
      // Not ours to remove (another user's segment): leave it.
    }
  }
  return swept;
}
