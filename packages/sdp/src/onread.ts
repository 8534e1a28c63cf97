// net.Socket's `onread` option: received bytes are copied into one buffer
// the application owns and reuses, and handed to its callback, instead of
// going up the stream as a new Buffer per chunk. Over SDP that removes the
// allocation per RDMA READ: the connection lands READs in registered memory
// it keeps and reuses (see SdpConnection's landing buffers), and the bytes
// go from there into this buffer, memory that is already the process's.

import { argError } from './errors.js';
import { rethrowLater } from './rethrow.js';

/** As net.Socket's `onread`: a reusable buffer (or a function returning the next one) and the callback that gets each chunk. */
export interface SdpOnread {
  buffer: Uint8Array | (() => Uint8Array);
  /** Called with the number of bytes written to `buf`; returning false pauses reading until resume(). */
  callback: (bytesWritten: number, buf: Uint8Array) => boolean | void;
}

/** The TypeError net.Socket throws for a malformed `onread` (ERR_INVALID_ARG_TYPE). */
function invalid(what: string, expected: string, got: unknown): Error {
  const seen = got === null ? 'null' : got instanceof Uint8Array ? `a ${got.length}-byte ${got.constructor.name}` : `type ${typeof got}`;
  return argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.onread.${what}" property must be ${expected}. Received ${seen}`);
}

/** Validates `onread` as net.Socket does; undefined when it is absent (or null). */
export function checkOnread(onread: unknown): SdpOnread | undefined {
  if (onread === undefined || onread === null || typeof onread !== 'object') return undefined;
  const { buffer, callback } = onread as SdpOnread;
  if (typeof buffer !== 'function' && !(buffer instanceof Uint8Array)) throw invalid('buffer', 'an instance of Uint8Array or a function', buffer);
  if (typeof callback !== 'function') throw invalid('callback', 'of type function', callback);
  return { buffer, callback };
}

/**
 * Copies incoming chunks into the application's buffer, a buffer-full per
 * callback. A callback that returns false stops delivery; the rest of the
 * chunk it was in is kept (copied: the chunk itself may be reused by the
 * connection as soon as deliver() returns) and goes first on resume().
 */
export class OnreadDelivery {
  readonly #gen: (() => Uint8Array) | undefined;
  readonly #callback: SdpOnread['callback'];
  #buf: Uint8Array;
  #held: Buffer | undefined;
  /** The callback returned false, or the socket was paused: deliver nothing until resume(). */
  stopped = false;

  constructor(onread: SdpOnread) {
    this.#callback = onread.callback;
    if (typeof onread.buffer === 'function') {
      this.#gen = onread.buffer;
      const b = this.#gen();
      if (!(b instanceof Uint8Array) || b.length === 0) throw invalid('buffer()', 'a function returning a non-empty Uint8Array', b);
      this.#buf = b;
    } else {
      if (onread.buffer.length === 0) throw invalid('buffer', 'a non-empty Uint8Array', onread.buffer);
      this.#buf = onread.buffer;
    }
  }

  /** The buffer for the next chunk: the function's next one (as net.Socket, a result that is not a usable Uint8Array keeps the last). */
  #advance(): void {
    const b = this.#gen!();
    if (b instanceof Uint8Array && b.length > 0) this.#buf = b;
  }

  /**
   * Hands `chunk` to the callback; true when all of it went and delivery may
   * go on, false when the callback asked to stop (what is left is held).
   */
  deliver(chunk: Uint8Array): boolean {
    if (this.stopped) {
      this.#hold(chunk, 0);
      return false;
    }
    let off = 0;
    while (off < chunk.length) {
      const buf = this.#buf;
      const n = Math.min(buf.length, chunk.length - off);
      buf.set(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
      off += n;
      let go = true;
      try {
        go = this.#callback.call(undefined, n, buf) !== false;
        if (this.#gen) this.#advance();
      } catch (err) {
        // The bytes after it still go.
        rethrowLater(err);
      }
      if (!go) {
        this.stopped = true;
        if (off < chunk.length) this.#hold(chunk, off);
        return false;
      }
    }
    return true;
  }

  #hold(chunk: Uint8Array, off: number): void {
    const rest = Buffer.from(chunk.subarray(off));
    this.#held = this.#held ? Buffer.concat([this.#held, rest]) : rest;
  }

  /** Clears a stop and delivers what was held; false if the callback stopped it again. */
  resume(): boolean {
    this.stopped = false;
    const held = this.#held;
    if (!held) return true;
    this.#held = undefined;
    return this.deliver(held);
  }
}
