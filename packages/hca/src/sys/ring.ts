// A single-producer single-consumer ring of messages in shared memory, in
// the manner of Open MPI's vader/sm FIFOs and of io_uring's rings: the
// producer owns `head`, the consumer owns `tail`, each on its own cache line
// so they never false-share.
//
// Layout from byteOffset (all lines 64 bytes):
//   line 0  head (u32, bytes ever written, wrapping; informational)
//   line 1  tail (u32, bytes ever consumed)
//   line 2  data doorbell  (rung by the producer, waited on by the consumer)
//   line 3  space doorbell (rung by the consumer, waited on by a producer that found the ring full)
//   line 4  magic, capacity, closed flags
//   line 5+ data: `capacity` bytes (a power of two)
// A message is an 8-byte header (stamped length, tag) and its bytes padded
// to 8, so every payload starts 8-byte aligned. A message never wraps: when
// it does not fit before the end, a wrap marker sends the reader back to 0.
//
// The consumer learns of a message from its header alone, as FastForward
// queues do, not from `head`: a header is published last, with an atomic
// store, and carries a stamp (bit 31 set, bit 30 the parity of its lap
// around the ring) that no stale header or payload byte at that place can
// carry. Before publishing, the producer clears the word where the next
// header will go, so what the consumer reads there is either nothing yet or
// that next header. Waiting for data thus reads the one line the message
// arrives in: polling `head` cost a second cache miss per message, and the
// producer's store to it a third. The producer reads `tail` only when its
// last view of it says the ring is full.
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import { Doorbell, checkMemory, type DoorbellOptions, type WaitOutcome } from './doorbell.js';

const LINE = 64;
const HEAD = 0; // Int32 indexes
const TAIL = LINE / 4;
const META = (4 * LINE) / 4;
const DATA_BELL_OFF = 2 * LINE;
const SPACE_BELL_OFF = 3 * LINE;
const HEADER = 5 * LINE;
const MAGIC = 0x69626c32; // 'ibl2': stamped headers (the first layout, 'iblr', polled head)
const STAMP = 0x80000000;
const LEN_MASK = 0x3fffffff;
const WRAP = LEN_MASK; // a length no message has (maxMessage < 2^29)
const PRODUCER_CLOSED = 1;
const CONSUMER_CLOSED = 2;

export class ShmRing {
  /** Bytes of header before the data area. */
  static readonly HEADER_BYTES = HEADER;

  /** Bytes a ring of `capacity` data bytes occupies. */
  static bytesFor(capacity: number): number {
    checkCapacity(capacity);
    return HEADER + capacity;
  }

  /** Lays out a new, empty ring at `byteOffset` (64-byte aligned) of `buffer`. */
  static create(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, capacity: number, options?: DoorbellOptions): ShmRing {
    checkCapacity(capacity);
    checkPlace(buffer, byteOffset, capacity);
    const w = new Int32Array(buffer, byteOffset, HEADER / 4);
    w.fill(0);
    w[META + 1] = capacity;
    // The first header's place: nothing there yet, whatever the buffer held.
    new Uint32Array(buffer, byteOffset + HEADER, 1)[0] = 0;
    Atomics.store(w, META, MAGIC);
    return new ShmRing(buffer, byteOffset, options);
  }

  /** Attaches to a ring another process (or this one) created. */
  static attach(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, options?: DoorbellOptions): ShmRing {
    checkMemory(buffer, 'a ring');
    return new ShmRing(buffer, byteOffset, options);
  }

  readonly capacity: number;
  /** The largest message a ring of this capacity always accepts. */
  readonly maxMessage: number;
  /** The data area; `offset` after peek and reserve's result index it. */
  readonly data: Uint8Array;
  /** Rung on every commit; consumers wait on it. */
  readonly dataBell: Doorbell;
  /** Rung on every release; a producer facing a full ring waits on it. */
  readonly spaceBell: Doorbell;
  /** After peek: where the message's bytes start in `data`. */
  offset = 0;
  /** After peek: the message's tag. */
  tag = 0;

  readonly #w: Int32Array;
  readonly #u32: Uint32Array;
  readonly #mask: number;
  readonly #lapShift: number;
  #head: number; // producer's own copy
  #tail: number; // consumer's own copy
  /** The producer's last view of tail: the shared word is read only when this says full. */
  #tailSeen: number;
  #resAt = -1;
  #resLen = 0;
  #recEnd = -1;
  #closed = false;
  #ownBit = 0;

  private constructor(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, options?: DoorbellOptions) {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % LINE !== 0 || byteOffset + HEADER > buffer.byteLength) {
      throw new InvalidArgumentError(`ring offset ${byteOffset} must be 64-byte aligned and inside the buffer`);
    }
    this.#w = new Int32Array(buffer, byteOffset, HEADER / 4);
    if (Atomics.load(this.#w, META) !== MAGIC) throw new InvalidArgumentError(`no ring at offset ${byteOffset}`);
    this.capacity = this.#w[META + 1]!;
    checkPlace(buffer, byteOffset, this.capacity);
    this.#mask = this.capacity - 1;
    this.#lapShift = 31 - Math.clz32(this.capacity);
    this.maxMessage = this.capacity / 2 - 8;
    this.data = new Uint8Array(buffer, byteOffset + HEADER, this.capacity);
    this.#u32 = new Uint32Array(buffer, byteOffset + HEADER, this.capacity / 4);
    this.#head = Atomics.load(this.#w, HEAD) >>> 0;
    this.#tail = Atomics.load(this.#w, TAIL) >>> 0;
    this.#tailSeen = this.#tail;
    this.dataBell = new Doorbell(buffer, byteOffset + DATA_BELL_OFF, options);
    this.spaceBell = new Doorbell(buffer, byteOffset + SPACE_BELL_OFF, options);
  }

  // ---- producer ---------------------------------------------------------

  /**
   * Reserves room for a message of `length` bytes and returns where to write
   * them in `data` (8-byte aligned), or -1 when the ring is full now.
   * Nothing is visible to the consumer until commit.
   */
  reserve(length: number): number {
    if (!Number.isInteger(length) || length < 0 || length > this.maxMessage) {
      throw new InvalidArgumentError(`a message's length must be an integer in [0, ${this.maxMessage}] for this ring, got ${String(length)}`);
    }
    if (this.#closed) throw new ResourceClosedError('ring');
    const rec = 8 + ((length + 7) & ~7);
    const head = this.#head;
    const idx = head & this.#mask;
    const skip = this.capacity - idx < rec ? this.capacity - idx : 0;
    // 8 more: the word after the message is cleared at commit, and must be free.
    const need = skip + rec + 8;
    if (this.capacity - ((head - this.#tailSeen) >>> 0) < need) {
      this.#tailSeen = Atomics.load(this.#w, TAIL) >>> 0;
      if (this.capacity - ((head - this.#tailSeen) >>> 0) < need) return -1;
    }
    if (skip) Atomics.store(this.#u32, idx >>> 2, this.#stamp(head) | WRAP);
    const at = (head + skip) & this.#mask;
    this.#resAt = at;
    this.#resLen = length;
    this.#head = (head + skip) >>> 0;
    return at + 8;
  }

  /** Publishes the reserved message; rings the data doorbell unless `notify` is false. */
  commit(tag = 0, notify = true): void {
    const at = this.#resAt;
    if (at < 0) throw new InvalidArgumentError('commit without reserve');
    this.#resAt = -1;
    const u32 = this.#u32;
    const rec = 8 + ((this.#resLen + 7) & ~7);
    u32[(at >>> 2) + 1] = tag >>> 0;
    // A message ending at the ring's end is followed by the next lap's first
    // header, whose old stamp already reads as nothing.
    const next = (at + rec) & this.#mask;
    if (next !== 0) u32[next >>> 2] = 0;
    Atomics.store(u32, at >>> 2, this.#stamp(this.#head) | this.#resLen);
    this.#head = (this.#head + rec) >>> 0;
    this.#w[HEAD] = this.#head | 0;
    if (notify) this.dataBell.ring();
  }

  /** The stamp of a header at absolute position `pos`: set, and the parity of its lap. */
  #stamp(pos: number): number {
    return (STAMP | (((pos >>> this.#lapShift) & 1) << 30)) >>> 0;
  }

  /** Copies `src` in as one message; false when the ring is full now. */
  tryWrite(src: Uint8Array, tag = 0, notify = true): boolean {
    // Anything else with a length (a string, an array) was written as that many garbage bytes.
    if (!(src instanceof Uint8Array)) throw new InvalidArgumentError('tryWrite takes a Uint8Array');
    const at = this.reserve(src.length);
    if (at < 0) return false;
    this.data.set(src, at);
    this.commit(tag, notify);
    return true;
  }

  /** Bytes free for the producer (a message needs 8 + its padded length, maybe plus a wrap). */
  freeBytes(): number {
    return this.capacity - ((this.#head - (Atomics.load(this.#w, TAIL) >>> 0)) >>> 0);
  }

  // ---- consumer ---------------------------------------------------------

  /**
   * The length of the next message, or -1 when the ring is empty. Its bytes
   * are data[offset, offset + length) until release().
   */
  peek(): number {
    let tail = this.#tail;
    let len = this.#published(tail);
    if (len === WRAP) {
      tail = (tail + this.capacity - (tail & this.#mask)) >>> 0;
      this.#tail = tail;
      len = this.#published(tail);
    }
    if (len < 0) return -1;
    if (len > this.maxMessage) throw new InvalidArgumentError(`corrupt ring: message length ${len}`);
    const idx = tail & this.#mask;
    this.offset = idx + 8;
    this.tag = this.#u32[(idx >>> 2) + 1]!;
    this.#recEnd = (tail + 8 + ((len + 7) & ~7)) >>> 0;
    return len;
  }

  /** The length (or WRAP) in the header at absolute position `pos`, or -1 while none with its lap's stamp is published there. */
  #published(pos: number): number {
    const h = Atomics.load(this.#u32, (pos & this.#mask) >>> 2);
    return (h & ~LEN_MASK) >>> 0 === this.#stamp(pos) ? h & LEN_MASK : -1;
  }

  /** Consumes the message returned by the last peek; rings the space doorbell. */
  release(): void {
    if (this.#recEnd < 0) throw new InvalidArgumentError('release without peek');
    this.#tail = this.#recEnd;
    this.#recEnd = -1;
    Atomics.store(this.#w, TAIL, this.#tail | 0);
    this.spaceBell.ring();
  }

  /** Copies the next message into dst at dstOffset and consumes it; -1 when empty. */
  read(dst: Uint8Array, dstOffset = 0): number {
    const len = this.peek();
    if (len < 0) return -1;
    if (dstOffset + len > dst.length) throw new InvalidArgumentError(`message of ${len} bytes does not fit the destination`);
    dst.set(this.data.subarray(this.offset, this.offset + len), dstOffset);
    this.release();
    return len;
  }

  /** Whether no message waits for the consumer (its next header, past a wrap marker, is not yet published). */
  isEmpty(): boolean {
    const tail = this.#tail;
    const len = this.#published(tail);
    if (len !== WRAP) return len < 0;
    return this.#published((tail + this.capacity - (tail & this.#mask)) >>> 0) < 0;
  }

  // ---- waiting ----------------------------------------------------------

  /** Resolves when a message may be waiting (re-check with peek). Never blocks the event loop. */
  waitData(timeoutMs: number): Promise<WaitOutcome> {
    const seen = this.dataBell.seq();
    if (!this.isEmpty() || this.peerClosed) return Promise.resolve('ok');
    return this.dataBell.wait(seen, timeoutMs);
  }

  /** Blocking wait for data with an adaptive spin (workers, latency loops). */
  waitDataSync(timeoutMs: number): WaitOutcome {
    const seen = this.dataBell.seq();
    if (!this.isEmpty() || this.peerClosed) return 'ok';
    return this.dataBell.waitSync(seen, timeoutMs);
  }

  /** Resolves when the consumer has freed room (re-check with reserve). */
  waitSpace(timeoutMs: number): Promise<WaitOutcome> {
    const seen = this.spaceBell.seq();
    if (this.freeBytes() >= this.capacity / 2 || this.peerClosed) return Promise.resolve('ok');
    return this.spaceBell.wait(seen, timeoutMs);
  }

  /** Blocking wait for room. */
  waitSpaceSync(timeoutMs: number): WaitOutcome {
    const seen = this.spaceBell.seq();
    if (this.freeBytes() >= this.capacity / 2 || this.peerClosed) return 'ok';
    return this.spaceBell.waitSync(seen, timeoutMs);
  }

  // ---- closing ----------------------------------------------------------

  /** True once the other side called close() (as producer or consumer). */
  get peerClosed(): boolean {
    return this.#w.length > 0 && (Atomics.load(this.#w, META + 2) & ~this.#ownBit) !== 0;
  }

  /**
   * Marks this side closed (so the peer's waits end) and stops this side's
   * doorbell threads. `as` says which side this process played.
   */
  close(as: 'producer' | 'consumer' = 'producer'): void {
    if (this.#closed) return;
    this.#ownBit = as === 'producer' ? PRODUCER_CLOSED : CONSUMER_CLOSED;
    if (this.#w.length > 0) {
      Atomics.or(this.#w, META + 2, this.#ownBit);
      this.dataBell.ring();
      this.spaceBell.ring();
    }
    this.#closed = true;
    this.dataBell.close();
    this.spaceBell.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function checkCapacity(capacity: number): void {
  if (!Number.isInteger(capacity) || capacity < 256 || capacity > 1 << 30 || (capacity & (capacity - 1)) !== 0) {
    throw new InvalidArgumentError(`ring capacity must be a power of two in [256, 2^30], got ${String(capacity)}`);
  }
}

function checkPlace(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, capacity: number): void {
  checkMemory(buffer, 'a ring');
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % LINE !== 0) {
    throw new InvalidArgumentError(`ring offset ${byteOffset} must be 64-byte aligned`);
  }
  if (byteOffset + HEADER + capacity > buffer.byteLength) {
    throw new InvalidArgumentError(`a ring of ${capacity} bytes at ${byteOffset} does not fit a ${buffer.byteLength}-byte buffer`);
  }
}
