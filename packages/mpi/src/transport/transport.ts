// The transport interface (a "BTL" in Open MPI's terms): moves headers and
// payloads in order between this rank and one peer, and lends the
// rendezvous protocol a one-sided copy (RDMA READ, process_vm_readv).

/**
 * Where a transport hands each arriving message: the header is words
 * [w, w + HDR_WORDS) of `words`, the payload bytes [p, p + len) of `bytes`
 * (len from the header for EAGER). Both stay valid only during the call.
 */
export type Sink = (peer: number, words: Int32Array, w: number, bytes: Uint8Array, p: number) => void;

export interface Endpoint {
  /** The peer's world rank. */
  readonly peer: number;
  /** 'self', 'shm' or 'verbs'. */
  readonly kind: string;
  /** Messages up to this many bytes go eagerly. */
  readonly eagerLimit: number;
  /** Messages send() accepted that have not reached the peer's side yet (ring full, no credits): only progress moves them. */
  readonly queued: number;
  /**
   * Sends a header (HDR_WORDS words) and an optional payload, after every
   * message sent before it. Copies both before returning, so the caller may
   * reuse them at once.
   */
  send(header: Int32Array, payload: Uint8Array | undefined): void;
  /** Rendezvous sender: lets the peer pull `buf`; fills the header's address and key words; returns the release. */
  expose(buf: Uint8Array, header: Int32Array): () => void;
  /** Rendezvous receiver: pulls `dst.length` bytes the peer exposed; `done` runs once, maybe synchronously. */
  fetch(dst: Uint8Array, addrLo: number, addrHi: number, key: number, done: (err?: Error) => void): void;
  /** One-sided Put, where the transport has one (verbs: RDMA WRITE): `src` into memory the peer exposed; `done` once it is placed there. */
  put?(src: Uint8Array, addrLo: number, addrHi: number, key: number, done: (err?: Error) => void): void;
}

export interface Transport {
  readonly name: string;
  /** Delivers what has arrived to the sink and pushes what is queued; returns how much happened. */
  progress(): number;
  /** Arranges for `kick` to run when something may have arrived (used only when every waiter sleeps). */
  armWake(kick: () => void): void;
  /** Ends a pending armWake. */
  disarm(): void;
  /**
   * Waits on this thread for at most `timeoutMs` (spinning briefly first,
   * or up to `expectNs` when the caller expects that long a wait); only
   * shared memory can.
   */
  waitSync?(timeoutMs: number, expectNs?: number): void;
  /** Keeps the process alive only while there is something to do. */
  close(): Promise<void> | void;
}
