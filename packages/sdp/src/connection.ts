// The SDP data path over one connected RC QP (IBTA Annex A4): a ring of
// registered receive buffers whose count the peer learns through BSDH.Bufs
// (credits), buffer-copy Data messages for small writes, SrcAvail / RDMA READ
// / RdmaRdCompl for large ones, DisConn for half-close and AbortConn for
// reset. Who set the QP up (the CM) is not this file's business.
//
// Large writes are pipelined, as the Annex's pipelined mode allows: the
// source copies them into a send window registered once per connection and
// completes the write at once (as a kernel socket buffer would), with
// several SrcAvails outstanding; the sink queues them and keeps several RDMA
// READs in flight, each into a fresh buffer that goes up the stream as it
// is, and answers each READ with an RdmaRdCompl that frees window space.

import { Access, SendFlags, WcStatus, WrOpcode, mtuBytes, wcStatusName, regMr, type CQ, type CompChannel, type MR, type PD, type QP, type SendWr } from '@ibal/verbs';
import { SdpProtocolError, SdpSocketError } from './errors.js';
import { rethrowLater } from './rethrow.js';
import { BSDH_SIZE, Mid, midName, newBsdh, readBsdh, writeBsdh } from './protocol/bsdh.js';
import {
  RDMA_RD_COMPL_SIZE,
  SRC_AVAIL_HEADER_SIZE,
  SRC_AVAIL_MIN_INLINE,
  readRdmaRdCompl,
  readSrcAvail,
  writeRdmaRdCompl,
  writeSrcAvail,
  type SrcAvail,
} from './protocol/messages.js';

/** What the connection tells the socket above it. */
export interface ConnectionSink {
  /**
   * data() is done with `chunk` when it returns (it copies what it keeps), so
   * the connection may hand it views of memory it reuses: the receive ring,
   * and registered buffers that RDMA READs land in (net's `onread`).
   */
  readonly copies?: boolean;
  /** In-order stream bytes; return false to stop delivery until resume(). */
  data(chunk: Buffer): boolean;
  /** The peer sent DisConn: no more bytes will come. */
  end(): void;
  /** The connection failed or the peer aborted it; the sink destroys itself with `err`. */
  failed(err: Error): void;
  /** Both sides have sent DisConn and every send completed: the QP may go. */
  finished(): void;
}

export interface ConnectionResources {
  pd: PD;
  qp: QP;
  cq: CQ;
  channel: CompChannel;
}

export interface ConnectionOptions {
  /** Receive buffers in our ring: what the Hello/HelloAck advertise as Bufs. */
  rxBufs: number;
  /** Size of each of our receive buffers (LocalRcvSz / ActRcvSz), BSDH included. */
  rxBufSize: number;
  /** Send buffers (bounce buffers for buffer-copy). */
  txBufs: number;
  /** Writes of at least this many bytes go by SrcAvail + RDMA READ. */
  zcopyThreshold: number;
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = {
  rxBufs: 16,
  rxBufSize: 16 * 1024,
  txBufs: 16,
  zcopyThreshold: 64 * 1024,
};

/** RDMA READs a sink keeps in flight (the QPs are set up with this many rd_atomic resources each way). */
export const MAX_READS = 4;
/**
 * Send queue entries for a connection: twice its send slots plus READs. An
 * unsignaled send stays in the queue until an ACK covers it, and a requester
 * may ask for an ACK on every message once its queue is half full (the soft
 * HCA does), so a queue just deep enough would turn every message into two
 * packets whenever the peer's ACKs lag.
 */
export function sendQueueDepth(opts: ConnectionOptions): number {
  return 2 * (opts.txBufs + MAX_READS);
}

/**
 * The connection's send buffer, as SO_SNDBUF is TCP's: registered once, when
 * first needed, and used as a ring. Large writes are copied into it and
 * advertised by SrcAvail; small ones go straight into a Data message when
 * the peer has credits, and into the window when it has none, where they
 * gather into the next Data message or, once there are enough of them, a
 * SrcAvail. A write completes once copied; a full window is backpressure.
 */
const WINDOW_BYTES = 8 << 20;
/**
 * The most one SrcAvail advertises. Bytes copied while SrcAvails are
 * outstanding are advertised together, up to this: on the soft HCA each
 * SrcAvail costs four messages (SrcAvail, READ request and response,
 * RdmaRdCompl) and as many chances to wake a sleeping peer, whatever its
 * size; but the sink starts copying a SrcAvail's bytes only once it is sent,
 * so smaller ones overlap the two sides' copies better. 1 MiB against
 * 4 MiB, alternating runs on one VM, 1 MiB writes (with READ_PIECE the
 * same): 2560-3115 against 2124-2409 MiB/s, server to client 2713-3263
 * against 2034-2189. (An earlier VM, where waking a process cost ~270 us,
 * favoured 4 MiB.)
 */
const SRC_AVAIL_MAX = 1 << 20;
/** SrcAvails kept outstanding before further bytes wait to be advertised together. */
const SRC_AVAIL_AHEAD = 2;
/** SrcAvails outstanding at most. */
const MAX_SRC_AVAILS = 8;
/**
 * Bytes copied into the window at least at a time (or the rest of the
 * write): with less room the write waits, and the end of the window is
 * skipped when shorter, so writes are not cut into slivers there.
 */
const MIN_STAGE = 4096;
/**
 * The most one RDMA READ moves. Each READ lands in a fresh buffer of its
 * own, which then goes up the stream as it is: no copy on the sink. A
 * landing zone copied out into 64 KiB buffers (as Node's TCP reads)
 * measured slower, and so did pieces of 128-512 KiB; 1 MiB pieces beat
 * 4 MiB ones with SrcAvails of 1 MiB (see SRC_AVAIL_MAX).
 */
const READ_PIECE = 1 << 20;
/**
 * The most one READ moves into a landing buffer (a sink that copies): these
 * stay registered for the connection's life, so smaller pieces keep that
 * memory small; no page of it is new after the first READs.
 */
const LANDING_PIECE = 1 << 20;

/** Completions taken per poll. */
const POLL_BATCH = 16;

// wrIds: receives, sends (by slot) and RDMA READs live in separate ranges
// so a completion names its kind whatever its status.
const RECV_BASE = 0x10000;
const READ_WR = 0x20000;
/**
 * The message that only returns credits. OFED sent a Data message with no
 * payload, which Wireshark's SDP dissector reports as malformed (it expects
 * data after a Data BSDH). A BSDH-only SinkAvailCancel carries the same Bufs
 * and MSeqAck and cancels nothing: this implementation never advertises a
 * SinkAvail. Both are accepted as credit updates.
 */
const CREDIT_UPDATE = Mid.SinkAvailCancel;
/** Packets shorter than this would look malformed to Wireshark's SDP dissector (BSDH + a 48-byte header). */
const RUNT = 64;

/** Room in a send slot after the BSDH, never below what a SrcAvail needs. */
function slotPayload(size: number): number {
  return size - BSDH_SIZE;
}

interface TxChunk {
  buf: Uint8Array;
  offset: number;
  cb: ((err?: Error | null) => void) | undefined;
}

/** A SrcAvail the sink has queued: its in-line bytes are copied out, the rest is READ piece by piece. */
interface SrcEntry {
  kind: 'src';
  len: number;
  rkey: number;
  vaddr: number;
  /** The in-line bytes, until they go up in front of the first READ's. */
  inline: Buffer | undefined;
  inlineLen: number;
  /** Offset (from the advertised start) of the next byte to READ. */
  next: number;
  /** Bytes handed up so far. */
  delivered: number;
  /** READ buffers completed, in order, not yet handed up. */
  ready: ReadyPiece[];
}

/** Bytes ready to go up: a READ's buffer (a landing buffer's view, which goes back to the pool once handed up), or in-line bytes. */
interface ReadyPiece {
  buf: Buffer;
  land: Landing | undefined;
}

/** A registered buffer that READs land in when the sink copies: reused, so receiving makes no new memory. */
interface Landing {
  buf: Buffer;
  mr: MR;
}

type RxEntry = { kind: 'data'; slot: number; offset: number; length: number } | SrcEntry | { kind: 'eof' };

/** An RDMA READ in flight on the sink. */
interface ReadOp {
  entry: SrcEntry;
  /** What goes up the stream: the in-line bytes (first READ of a SrcAvail only), then the READ's. */
  dest: Buffer;
  mr: MR;
  /** The landing buffer `dest` is a view of; undefined when `dest` is the sink's own (registered for this READ). */
  land: Landing | undefined;
  /** Bytes the READ moves. */
  len: number;
}

/**
 * A region of the window on its way: a SrcAvail until the sink's RdmaRdCompl
 * covers it, or bytes already copied into a Data message, kept in the list
 * only so that the window is released in order.
 */
interface SrcOut {
  srcAvail: boolean;
  len: number;
  acked: number;
  /** Window position to release to once acknowledged (includes alignment and a wrap skipped before it). */
  end: number;
}

export class SdpConnection {
  readonly #res: ConnectionResources;
  #sink: ConnectionSink;
  readonly #opts: ConnectionOptions;
  readonly #rxMr: MR;
  /** The receive ring's memory (what #rxMr registers). */
  readonly #rxBuf: Buffer;
  #txMr!: MR;
  /** Size of the peer's receive buffers: the largest message we may send. */
  #txSize = 0;
  /** The path MTU: Data messages are cut so their last packet is not a runt. */
  #mtu = 256;
  readonly #recvWrs: { wrId: number; sgList: { addr: number; length: number; lkey: number }[] }[] = [];
  readonly #sendWrs: SendWr[] = [];
  readonly #readWrs: SendWr[] = [];
  readonly #bsdh = newBsdh();
  readonly #sa: SrcAvail = { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 };
  #maxReads = MAX_READS;

  // Credits and sequence numbers (Annex A4 flow control).
  #credits = 0;
  #nextMseq = 1;
  #lastRecvMseq = 0;
  #rxPosted = 0;
  #advBufs: number;
  #advMseqAck = 0;

  // Send slots complete in order (RC), so a head/tail pair tracks them.
  #txHead = 0;
  #txTail = 0;
  /** txHead when each slot was posted: a completion frees every slot up to its own (RC completes in order). */
  #slotSeq: number[] = [];
  #unsignaled = 0;
  readonly #tx: TxChunk[] = [];

  // The source's window (see WINDOW_BYTES), in monotonic positions modulo its size:
  // [winTail, advHead) advertised and not yet read, [advHead, winHead) copied and not yet advertised.
  #window: MR | undefined;
  #winHead = 0;
  #advHead = 0;
  #winTail = 0;
  /** The end of the window skipped at the last wrap, [gapAt, gapEnd): never advertised. */
  #gapAt = -1;
  #gapEnd = -1;
  readonly #srcOut: SrcOut[] = [];
  /** SrcAvails in #srcOut not yet read completely. */
  #srcAvails = 0;

  // The sink's queue, READs in flight, and the RdmaRdCompls it owes (one per SrcAvail, in order).
  readonly #rx: RxEntry[] = [];
  readonly #reads: ReadOp[] = [];
  /** Landing buffers not in use, and every one made (at most one per READ in flight). */
  readonly #landFree: Landing[] = [];
  readonly #landAll: Landing[] = [];
  #readSeq = 0;
  readonly #rdOwed: { entry: SrcEntry; n: number }[] = [];
  #paused = false;

  #finalCb: ((err?: Error | null) => void) | undefined;
  #sentDisConn = false;
  #recvDisConn = false;
  #closed = false;
  #failed = false;
  #pumping = false;
  #flushing = false;

  bytesRead = 0;
  bytesWritten = 0;
  /** Last time anything was sent or received (for keepalive and idle timeouts). */
  lastActivity = Date.now();

  /**
   * Allocates and posts the receive ring, so call it before the Hello or
   * HelloAck leaves: those advertise these buffers as credits.
   */
  constructor(res: ConnectionResources, sink: ConnectionSink, opts: ConnectionOptions) {
    this.#res = res;
    this.#sink = sink;
    this.#opts = opts;
    // On the heap: only this process's HCA touches the rings, so a provider-allocated (shareable) region buys nothing.
    this.#rxBuf = Buffer.alloc(opts.rxBufs * opts.rxBufSize);
    this.#rxMr = regMr(res.pd, this.#rxBuf, Access.LOCAL_WRITE);
    for (let i = 0; i < opts.rxBufs; i++) {
      this.#recvWrs.push({ wrId: RECV_BASE + i, sgList: [this.#rxMr.sge(i * opts.rxBufSize, opts.rxBufSize)] });
    }
    for (let i = 0; i < MAX_READS; i++) {
      this.#readWrs.push({ wrId: READ_WR + i, opcode: WrOpcode.RDMA_READ, sendFlags: SendFlags.SIGNALED, sgList: [{ addr: 0, length: 0, lkey: 0 }], rdma: { remoteAddr: 0, rkey: 0 } });
    }
    for (let i = 0; i < opts.rxBufs; i++) this.#repost(i);
    this.#advBufs = this.#rxPosted;
  }

  /** Our DisConn is sent: this side's stream is over, only sends may be in flight. */
  get ended(): boolean {
    return this.#sentDisConn && !this.#failed;
  }

  /** Neither failed nor closed, and no DisConn sent or asked for: end() may still be called. */
  get endable(): boolean {
    return !this.#closed && !this.#failed && !this.#sentDisConn && this.#finalCb === undefined;
  }

  /**
   * For a socket being destroyed after its DisConn (sent, or asked for by
   * end()): resolves true once the last sends completed, the DisConn among
   * them (at most `ms` later), so it may close without a reset, as TCP's
   * close sends FIN, not RST.
   * Received bytes nobody read make it false at once, as TCP resets a
   * connection closed with unread data; an unread end of stream does not.
   */
  settle(ms: number): Promise<boolean> {
    if (this.#finished) return Promise.resolve(true);
    if (this.#failed || this.#closed || (!this.#sentDisConn && this.#finalCb === undefined) || !this.#onlyEofUnread()) return Promise.resolve(false);
    if (this.#sendsDone()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#settleWaiters.delete(done);
        resolve(false);
      }, ms);
      const done = (ok: boolean) => {
        clearTimeout(t);
        resolve(ok);
      };
      this.#settleWaiters.add(done);
    });
  }

  #finished = false;
  readonly #settleWaiters = new Set<(ok: boolean) => void>();

  /** Ends every settle() in progress with `ok`. */
  #settleAll(ok: boolean): void {
    for (const w of this.#settleWaiters) w(ok);
    this.#settleWaiters.clear();
  }

  /** The socket above takes over from whoever set the connection up. */
  setSink(sink: ConnectionSink): void {
    this.#sink = sink;
  }

  /** Receive buffers posted now: what a Hello/HelloAck advertises as Bufs. */
  get postedReceives(): number {
    return this.#rxPosted;
  }

  /**
   * Starts the data path once the peer's Hello (passive side) or HelloAck
   * (active side) said how many buffers it posted and how big they are.
   */
  start(peer: { bufs: number; rcvSz: number }): void {
    if (this.#txMr) return;
    this.#txSize = Math.min(peer.rcvSz, 1 << 20);
    this.#credits = peer.bufs;
    const attr = this.#res.qp.queryQp();
    if (attr.pathMtu !== undefined) this.#mtu = mtuBytes(attr.pathMtu);
    if (attr.maxRdAtomic !== undefined && attr.maxRdAtomic > 0) this.#maxReads = Math.min(MAX_READS, attr.maxRdAtomic);
    this.#txMr = regMr(this.#res.pd, Buffer.alloc(this.#opts.txBufs * this.#txSize), Access.LOCAL_WRITE);
    for (let i = 0; i < this.#opts.txBufs; i++) {
      this.#sendWrs.push({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [this.#txMr.sge(i * this.#txSize, 0)] });
    }
    void this.#pump();
    this.#flush();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues stream bytes; `cb` runs once they are copied out (into a send slot or the window). */
  write(buf: Uint8Array, cb?: (err?: Error | null) => void): void {
    if (this.#closed || this.#sentDisConn) {
      cb?.(new SdpSocketError('EPIPE', 'write', this.#closed ? 'the connection is closed' : 'DisConn already sent'));
      return;
    }
    if (buf.length === 0) {
      cb?.();
      return;
    }
    this.#tx.push({ buf, offset: 0, cb });
    this.#flush();
  }

  /**
   * Queues several writes and sends them together: a corked socket's
   * writes (an HTTP head and its body) leave as one Data message where they
   * fit, not one each. `cb` runs once all of them are copied out.
   */
  writev(bufs: readonly Uint8Array[], cb?: (err?: Error | null) => void): void {
    if (this.#closed || this.#sentDisConn) {
      cb?.(new SdpSocketError('EPIPE', 'write', this.#closed ? 'the connection is closed' : 'DisConn already sent'));
      return;
    }
    let last = -1;
    for (let i = 0; i < bufs.length; i++) if (bufs[i]!.length > 0) last = i;
    if (last < 0) {
      cb?.();
      return;
    }
    for (let i = 0; i <= last; i++) {
      const buf = bufs[i]!;
      if (buf.length > 0) this.#tx.push({ buf, offset: 0, cb: i === last ? cb : undefined });
    }
    this.#flush();
  }

  /** Half-close: sends DisConn after everything written so far. */
  end(cb?: (err?: Error | null) => void): void {
    // The peer closed first, cleanly (peerClosed): there is nobody to send a DisConn to, and nothing owed.
    if (this.#finished) {
      cb?.();
      return;
    }
    if (this.#closed) {
      cb?.(new SdpSocketError('EPIPE', 'shutdown', 'the connection is closed'));
      return;
    }
    this.#finalCb = cb ?? (() => {});
    this.#flush();
  }

  /** The sink wants data again after data() returned false. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#deliver();
    this.#afterWork();
  }

  /** Sends a credit update as a keepalive probe: a dead peer fails it with RETRY_EXC_ERR. */
  probe(): void {
    if (this.#closed || this.#failed) return;
    if (this.#txMr && this.#credits >= 1 && this.#freeSlots() > 0) this.#sendControl(CREDIT_UPDATE);
  }

  /**
   * Reset: sends AbortConn when it can and waits briefly for it to leave,
   * then releases the QP's buffers. The caller destroys the QP afterwards.
   */
  async abort(): Promise<void> {
    if (this.#closed) return;
    const canSend = !this.#failed && this.#txMr !== undefined && this.#freeSlots() > 0;
    this.#failed = true;
    if (canSend) {
      const sent = this.#sendControl(Mid.AbortConn);
      const deadline = Date.now() + 200;
      while (this.#txTail < sent && Date.now() < deadline && !this.#closed) {
        this.#poll();
        if (this.#txTail >= sent) break;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    this.close();
  }

  /** Releases the buffers; every pending write callback gets `err`. Idempotent. */
  close(err?: Error): void {
    this.#settleAll(false);
    if (this.#closed) return;
    this.#closed = true;
    this.#failed = true;
    const e = err ?? new SdpSocketError('EPIPE', 'write', 'the connection closed before the data was sent');
    for (const c of this.#tx.splice(0)) this.#done(c.cb, e);
    const f = this.#finalCb;
    this.#finalCb = undefined;
    this.#done(f, e);
  }

  /** After the QP is destroyed: its WRs can no longer touch the memory. */
  releaseMemory(): void {
    for (const mr of [this.#rxMr, this.#txMr, this.#window, ...this.#reads.map((r) => r.mr), ...this.#landAll.map((l) => l.mr)]) {
      if (mr && !mr.closed) mr.dereg();
    }
    this.#reads.length = 0;
    this.#landFree.length = 0;
    this.#landAll.length = 0;
  }

  // ---- completions ------------------------------------------------------

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    const { cq, channel } = this.#res;
    try {
      while (!this.#closed) {
        this.#poll();
        if (this.#closed) break;
        cq.reqNotify();
        // Completions that landed between the poll and the arm do not fire.
        if (this.#poll() > 0) continue;
        const fired = await channel.getCqEvent();
        channel.ackCqEvents(fired);
      }
    } catch (err) {
      if (!this.#closed) this.#fail(new SdpSocketError('ECONNRESET', 'read', 'completion channel failed', {}, { cause: err }));
    } finally {
      this.#pumping = false;
    }
  }

  #poll(): number {
    const { cq } = this.#res;
    let total = 0;
    if (cq.closed) return 0;
    let delivered = false;
    for (let wcs = cq.poll(POLL_BATCH); wcs.length > 0; wcs = cq.poll(POLL_BATCH)) {
      total += wcs.length;
      for (const wc of wcs) {
        if (this.#closed) continue;
        if (wc.status !== WcStatus.SUCCESS) {
          this.#wcError(wc.status, wc.wrId);
          continue;
        }
        if (wc.wrId >= READ_WR) {
          this.#readDone(wc.wrId - READ_WR);
          delivered = true;
        } else if (wc.wrId >= RECV_BASE) {
          if (this.#received(wc.wrId - RECV_BASE, wc.byteLen)) delivered = true;
        } else this.#txTail = this.#slotSeq[wc.wrId]! + 1;
      }
      // A short batch emptied the CQ: polling it empty again would only make the soft HCA drain its
      // rings once more here (see #pump), ahead of its own reader.
      if (this.#closed || wcs.length < POLL_BATCH) break;
    }
    if (total === 0) return 0;
    this.lastActivity = Date.now();
    // Handed up once per batch: a burst of completions is one pass over the queue.
    if (delivered) this.#deliver();
    this.#afterWork();
    return total;
  }

  #wcError(status: number, wrId: number): void {
    if (this.#failed) return;
    // Both DisConns were exchanged: the peer may tear down before our last ACK arrives; nothing is lost.
    if (this.#sentDisConn && this.#recvDisConn && this.#rx.length === 0) {
      this.#txTail = this.#txHead;
      this.#maybeFinished();
      return;
    }
    const name = wcStatusName(status);
    const kind = wrId >= READ_WR ? 'RDMA READ' : wrId >= RECV_BASE ? 'receive' : 'send';
    // RETRY_EXC_ERR: the peer stopped answering (it died, or its QP is gone).
    this.#failFromPeer(new SdpSocketError('ECONNRESET', kind === 'receive' ? 'read' : 'write', `${kind} completed with ${name}`));
  }

  /**
   * Fails for what the peer sent or did. What arrived intact before it goes
   * up first, to a reader that takes it: it may have come in the same batch
   * of completions, and would have been handed up a moment later.
   */
  #failFromPeer(err: Error): void {
    if (this.#failed) return;
    this.#deliver(false);
    if (this.#failed || this.#closed) return;
    this.#fail(err);
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    // A socket waiting to close gracefully (an AbortConn came, or a send failed): nothing more will complete.
    this.#settleAll(false);
    try {
      this.#sink.failed(err);
    } catch (e) {
      rethrowLater(e);
    }
  }

  /** Hands bytes to the sink (see rethrowLater); true when it wants more. */
  #give(chunk: Buffer): boolean {
    try {
      return this.#sink.data(chunk);
    } catch (err) {
      rethrowLater(err);
      return true;
    }
  }

  /** Completes a write (or the end) with its callback (see rethrowLater). */
  #done(cb: ((err?: Error | null) => void) | undefined, err?: Error): void {
    if (!cb) return;
    try {
      cb(err);
    } catch (e) {
      rethrowLater(e);
    }
  }

  /** Takes one received message; true when it queued something to hand up. */
  #received(slot: number, byteLen: number): boolean {
    this.#rxPosted--;
    const base = slot * this.#opts.rxBufSize;
    const buf = this.#rxMr.buf;
    const h = this.#bsdh;
    try {
      readBsdh(buf, base, byteLen, h);
    } catch (err) {
      this.#protocolError((err as Error).message);
      return false;
    }
    if (h.mseq !== ((this.#lastRecvMseq + 1) >>> 0)) {
      this.#protocolError(`MSeq ${h.mseq} after ${this.#lastRecvMseq}: a message was lost or repeated`);
      return false;
    }
    this.#lastRecvMseq = h.mseq;
    // Bufs counts the peer's posted buffers when it sent this; the messages
    // we sent after the one it acknowledges will land in some of them.
    this.#credits = ((h.mseqAck - (this.#nextMseq - 1)) | 0) + h.bufs;
    switch (h.mid) {
      case Mid.SinkAvailCancel:
        // A credit update (see CREDIT_UPDATE); its BSDH was all there was to it.
        this.#repost(slot);
        return false;
      case Mid.Data:
        if (this.#recvDisConn && byteLen > BSDH_SIZE) {
          this.#protocolError('Data after DisConn');
          return false;
        }
        if (byteLen > BSDH_SIZE) {
          this.#rx.push({ kind: 'data', slot, offset: base + BSDH_SIZE, length: byteLen - BSDH_SIZE });
          return true;
        }
        this.#repost(slot);
        return false;
      case Mid.SrcAvail: {
        if (this.#recvDisConn) {
          this.#protocolError('SrcAvail after DisConn');
          return false;
        }
        let sa: SrcAvail;
        try {
          sa = readSrcAvail(buf, base, byteLen, this.#sa);
        } catch (err) {
          this.#protocolError((err as Error).message);
          return false;
        }
        // The in-line bytes leave the ring now, so the buffer goes back to the peer at once.
        let inline: Buffer | undefined;
        if (sa.inlineLen > 0) {
          inline = Buffer.allocUnsafe(sa.inlineLen);
          inline.set(buf.subarray(base + SRC_AVAIL_HEADER_SIZE, base + SRC_AVAIL_HEADER_SIZE + sa.inlineLen));
        }
        this.#repost(slot);
        const entry: SrcEntry = { kind: 'src', len: sa.len, rkey: sa.rkey, vaddr: sa.vaddr, inline, inlineLen: sa.inlineLen, next: sa.inlineLen, delivered: 0, ready: [] };
        if (sa.inlineLen === sa.len && inline) {
          entry.inline = undefined;
          entry.ready.push({ buf: inline, land: undefined });
        }
        this.#rx.push(entry);
        return true;
      }
      case Mid.RdmaRdCompl: {
        const n = readRdmaRdCompl(buf, base, byteLen);
        this.#repost(slot);
        const out = this.#srcOut.find((o) => o.srcAvail && o.acked < o.len);
        if (!out || out.acked + n > out.len) {
          this.#protocolError(`RdmaRdCompl for ${n} bytes matches no outstanding SrcAvail`);
          return false;
        }
        out.acked += n;
        if (out.acked === out.len) this.#srcAvails--;
        this.#releaseWindow();
        return false;
      }
      case Mid.DisConn:
        this.#repost(slot);
        if (this.#recvDisConn) {
          this.#protocolError('a second DisConn');
          return false;
        }
        this.#recvDisConn = true;
        this.#rx.push({ kind: 'eof' });
        return true;
      case Mid.AbortConn:
        this.#repost(slot);
        this.#fail(new SdpSocketError('ECONNRESET', 'read', 'the peer aborted the connection (AbortConn)'));
        return false;
      default:
        this.#repost(slot);
        this.#protocolError(`unsupported message ${midName(h.mid) ?? `MID 0x${h.mid.toString(16)}`}`);
        return false;
    }
  }

  #protocolError(msg: string): void {
    this.#failFromPeer(new SdpSocketError('ECONNRESET', 'read', 'SDP protocol error', {}, { cause: new SdpProtocolError(msg) }));
  }

  /** Hands received bytes up in order while the sink takes them, then starts the READs that can start (unless told not to). */
  #deliver(startReads = true): void {
    const rxBuf = this.#rxBuf;
    while (this.#rx.length > 0 && !this.#paused && !this.#failed) {
      const e = this.#rx[0]!;
      if (e.kind === 'data') {
        this.#rx.shift();
        this.bytesRead += e.length;
        let more: boolean;
        if (this.#sink.copies) {
          // The sink's own copy is the second one; the ring buffer goes back to the peer after it, whatever the sink did.
          try {
            more = this.#give(rxBuf.subarray(e.offset, e.offset + e.length));
          } finally {
            this.#repost(e.slot);
          }
        } else {
          // The copy out of the ring is buffer-copy's second copy; then the buffer is the peer's again.
          const chunk = Buffer.allocUnsafe(e.length);
          chunk.set(rxBuf.subarray(e.offset, e.offset + e.length));
          this.#repost(e.slot);
          more = this.#give(chunk);
        }
        if (!more) this.#paused = true;
      } else if (e.kind === 'src') {
        while (e.ready.length > 0 && !this.#paused) {
          const { buf, land } = e.ready.shift()!;
          e.delivered += buf.length;
          this.bytesRead += buf.length;
          // A landing view goes only to a sink that copies (one set after the READ was posted gets its own copy).
          let more: boolean;
          try {
            more = this.#give(land && !this.#sink.copies ? Buffer.from(buf) : buf);
          } finally {
            if (land) this.#landFree.push(land);
          }
          if (!more) this.#paused = true;
        }
        if (e.delivered < e.len) break; // its READs are under way
        this.#rx.shift();
      } else {
        this.#rx.shift();
        try {
          this.#sink.end();
        } catch (err) {
          rethrowLater(err);
        }
        this.#maybeFinished();
      }
    }
    if (startReads) this.#startReads();
  }

  /**
   * Posts READs for the queued SrcAvails, in order, up to the READs the QP
   * allows. A paused reader stops new ones: what is in flight is all the
   * sink holds beyond the stream's own buffer.
   */
  #startReads(): void {
    if (this.#paused || this.#failed || this.#closed) return;
    for (let i = 0; i < this.#rx.length && this.#reads.length < this.#maxReads; i++) {
      const e = this.#rx[i]!;
      if (e.kind !== 'src') continue;
      while (e.next < e.len && this.#reads.length < this.#maxReads) {
        if (!this.#postRead(e)) return;
      }
    }
  }

  #postRead(e: SrcEntry): boolean {
    const rest = e.len - e.next;
    const copies = this.#sink.copies === true;
    const piece = copies ? LANDING_PIECE : READ_PIECE;
    // The last piece takes a short tail with it rather than leave a small READ behind.
    const len = rest <= piece + (piece >> 2) ? rest : piece;
    const head = e.inline ? e.inlineLen : 0;
    let land: Landing | undefined;
    let dest: Buffer;
    let mr: MR;
    try {
      land = copies ? this.#landing(head + len) : undefined;
      if (land) {
        dest = land.buf.subarray(0, head + len);
        mr = land.mr;
      } else {
        dest = Buffer.allocUnsafe(head + len);
        mr = regMr(this.#res.pd, dest.subarray(head), Access.LOCAL_WRITE);
      }
    } catch (err) {
      this.#fail(new SdpSocketError('ECONNRESET', 'read', 'RDMA READ buffer could not be registered', {}, { cause: err }));
      return false;
    }
    if (e.inline) {
      dest.set(e.inline);
      e.inline = undefined;
    }
    const wr = this.#readWrs[this.#readSeq % MAX_READS]!;
    const sge = wr.sgList[0]!;
    // A landing MR covers its whole buffer; a READ's own MR starts after the in-line bytes.
    sge.addr = land ? mr.addr + head : mr.addr;
    sge.length = len;
    sge.lkey = mr.lkey;
    wr.rdma!.remoteAddr = e.vaddr + e.next;
    wr.rdma!.rkey = e.rkey;
    this.#reads.push({ entry: e, dest, mr, len, land });
    this.#readSeq++;
    e.next += len;
    try {
      this.#res.qp.postSend(wr);
    } catch (err) {
      this.#fail(new SdpSocketError('ECONNRESET', 'read', 'RDMA READ could not be posted', {}, { cause: err }));
      return false;
    }
    return true;
  }

  /**
   * A free landing buffer for `bytes` (in-line bytes and a READ piece), made
   * and registered on first need; undefined when more READs are under way or
   * waiting to go up than the pool holds (the READ then gets memory of its own).
   */
  #landing(bytes: number): Landing | undefined {
    const size = LANDING_PIECE + (LANDING_PIECE >> 2) + this.#opts.rxBufSize;
    if (bytes > size) return undefined;
    const free = this.#landFree.pop();
    if (free) return free;
    if (this.#landAll.length >= MAX_READS) return undefined;
    const buf = Buffer.allocUnsafe(size);
    const land = { buf, mr: regMr(this.#res.pd, buf, Access.LOCAL_WRITE) };
    this.#landAll.push(land);
    return land;
  }

  /** A READ finished (they finish in order): its buffer is ready to go up, and the peer is owed an RdmaRdCompl. */
  #readDone(idx: number): void {
    const r = this.#reads.shift();
    if (!r) return;
    if (!r.land) r.mr.dereg();
    if ((this.#readSeq - this.#reads.length - 1) % MAX_READS !== idx) {
      this.#protocolError('RDMA READ completions out of order');
      return;
    }
    const e = r.entry;
    e.ready.push({ buf: r.dest, land: r.land });
    const last = this.#rdOwed[this.#rdOwed.length - 1];
    if (last && last.entry === e) last.n += r.len;
    else this.#rdOwed.push({ entry: e, n: r.len });
  }

  // ---- sending -----------------------------------------------------------

  #freeSlots(): number {
    return this.#opts.txBufs - (this.#txHead - this.#txTail);
  }

  /** After completions or a resume: send what can go, then a credit update if the peer needs one. */
  #afterWork(): void {
    if (this.#closed) return;
    this.#flush();
    this.#maybeCreditUpdate();
    this.#maybeFinished();
  }

  #flush(): void {
    if (this.#flushing || this.#closed || this.#failed || !this.#txMr) return;
    this.#flushing = true;
    try {
      this.#flushLoop();
    } finally {
      this.#flushing = false;
    }
  }

  #flushLoop(): void {
    // Control first: the RdmaRdCompls owed for finished READs free the peer's window.
    while (this.#rdOwed.length > 0) {
      if (this.#credits < 1 || this.#freeSlots() === 0) return;
      const owed = this.#rdOwed.shift()!;
      const slot = this.#takeSlot();
      writeRdmaRdCompl(this.#txMr.buf, slot * this.#txSize, this.#rxPosted, this.#mseq(), this.#lastRecvMseq, owed.n);
      this.#post(slot, RDMA_RD_COMPL_SIZE);
    }
    const max = slotPayload(this.#txSize);
    while (this.#tx.length > 0) {
      const first = this.#tx[0]!;
      const left = first.buf.length - first.offset;
      // Straight into a Data message when the window holds nothing to go first and the peer has credits.
      // The last credit is kept for credit updates, so two senders with full rings cannot both stall.
      if (left < this.#opts.zcopyThreshold && this.#unsent() === 0 && this.#credits >= 2 && this.#freeSlots() > 0) {
        this.#sendQueued(max);
        continue;
      }
      if (!this.#stage(first)) break; // the window is full
    }
    // Then the window's unsent bytes: enough of them in a row make a SrcAvail, fewer a Data message.
    while (this.#unsent() > 0) {
      if (this.#credits < 2 || this.#freeSlots() === 0) return;
      this.#skipGap();
      if (this.#contiguousUnsent() >= this.#opts.zcopyThreshold) {
        if (!this.#advertise(this.#finalCb !== undefined)) break;
      } else this.#sendFromWindow(max);
    }
    // DisConn once every advertised byte was read: the window must outlive the peer's READs.
    if (this.#tx.length === 0 && this.#unsent() === 0 && this.#srcOut.length === 0 && this.#finalCb && !this.#sentDisConn) {
      if (this.#credits < 1 || this.#freeSlots() === 0) return;
      this.#sentDisConn = true;
      this.#sendControl(Mid.DisConn);
      const f = this.#finalCb;
      this.#finalCb = undefined;
      this.#done(f);
    }
  }

  /** Sends the small writes at the head of the queue in one Data message (as Nagle would coalesce, without the wait). */
  #sendQueued(max: number): void {
    let avail = 0;
    for (let i = 0; i < this.#tx.length && avail < max; i++) {
      const c = this.#tx[i]!;
      const rest = c.buf.length - c.offset;
      if (rest >= this.#opts.zcopyThreshold && avail > 0) break;
      avail += rest;
    }
    const want = this.#trimRunt(Math.min(avail, max));
    const slot = this.#takeSlot();
    const base = slot * this.#txSize;
    const out = this.#txMr.buf;
    let n = 0;
    while (n < want) {
      const c = this.#tx[0]!;
      const take = Math.min(c.buf.length - c.offset, want - n);
      out.set(take === c.buf.length ? c.buf : c.buf.subarray(c.offset, c.offset + take), base + BSDH_SIZE + n);
      n += take;
      c.offset += take;
      if (c.offset === c.buf.length) {
        this.#tx.shift();
        this.#done(c.cb);
      }
    }
    writeBsdh(out, base, Mid.Data, 0, this.#rxPosted, BSDH_SIZE + n, this.#mseq(), this.#lastRecvMseq);
    this.bytesWritten += n;
    this.#post(slot, BSDH_SIZE + n);
  }

  /** Sends unsent bytes of the window (fewer in a row than a SrcAvail takes) in one Data message. */
  #sendFromWindow(max: number): void {
    const at = this.#advHead % WINDOW_BYTES;
    const want = this.#trimRunt(Math.min(this.#contiguousUnsent(), max));
    const slot = this.#takeSlot();
    const base = slot * this.#txSize;
    const out = this.#txMr.buf;
    out.set(this.#window!.buf.subarray(at, at + want), base + BSDH_SIZE);
    this.#advHead += want;
    this.#srcOut.push({ srcAvail: false, len: want, acked: want, end: this.#advHead });
    this.#releaseWindow();
    writeBsdh(out, base, Mid.Data, 0, this.#rxPosted, BSDH_SIZE + want, this.#mseq(), this.#lastRecvMseq);
    this.bytesWritten += want;
    this.#post(slot, BSDH_SIZE + want);
  }

  /**
   * A Data payload of up to `n` bytes, trimmed so that the message's last
   * packet is not a runt. Wireshark dissects every packet of an SDP
   * conversation as an SDP message, and one of 16..63 bytes is too short
   * for the header it then expects.
   */
  #trimRunt(n: number): number {
    const total = BSDH_SIZE + n;
    const tail = total % this.#mtu;
    return total > this.#mtu && tail > 0 && tail < RUNT ? n - tail : n;
  }

  /**
   * Copies as much of `c` as the window has room for; the write completes
   * once all of it is copied. False when the window is too full now (an
   * RdmaRdCompl, or credits for a Data message, will make room).
   */
  #stage(c: TxChunk): boolean {
    // Provider-allocated: the soft HCA puts it in a shared region, which a local sink maps once and
    // copies its READs out of itself (the copy then runs in the sink, not here next to this side's
    // own copy into the window); a hardware HCA gets memory it can register. Remote reads only: no
    // HCA writes it (the CPU copies into it), so a local sink's READ need not wait behind messages
    // of its own still in flight (see @ibal/hca, direct READ).
    this.#window ??= regMr(this.#res.pd, WINDOW_BYTES, Access.REMOTE_READ);
    const left = c.buf.length - c.offset;
    const least = Math.min(left, MIN_STAGE);
    let head = this.#winHead;
    let at = head % WINDOW_BYTES;
    if (WINDOW_BYTES - at < least) {
      // Too short a tail: skip it (a SrcAvail never wraps, and never gets that small).
      if (WINDOW_BYTES - (head + WINDOW_BYTES - at - this.#winTail) < least) return false;
      this.#gapAt = head;
      head += WINDOW_BYTES - at;
      this.#gapEnd = head;
      at = 0;
    }
    const n = Math.min(left, WINDOW_BYTES - (head - this.#winTail), WINDOW_BYTES - at);
    if (n < least) return false;
    this.#window.buf.set(c.offset === 0 && n === c.buf.length ? c.buf : c.buf.subarray(c.offset, c.offset + n), at);
    this.#winHead = head + n;
    c.offset += n;
    if (c.offset === c.buf.length) {
      this.#tx.shift();
      this.#done(c.cb);
    }
    return true;
  }

  /** Bytes copied into the window and not yet sent (by SrcAvail or Data). */
  #unsent(): number {
    const gap = this.#gapAt >= this.#advHead ? this.#gapEnd - this.#gapAt : 0;
    return this.#winHead - this.#advHead - gap;
  }

  /** Moves past the window's skipped tail once everything before it went. */
  #skipGap(): void {
    if (this.#advHead === this.#gapAt) {
      this.#advHead = this.#gapEnd;
      this.#gapAt = this.#gapEnd = -1;
    }
  }

  /** Unsent bytes from advHead up to the end of the window or its skipped tail. */
  #contiguousUnsent(): number {
    const at = this.#advHead % WINDOW_BYTES;
    let len = Math.min(this.#winHead - this.#advHead, WINDOW_BYTES - at);
    if (this.#gapAt > this.#advHead) len = Math.min(len, this.#gapAt - this.#advHead);
    return len;
  }

  /**
   * Advertises what the window holds in one SrcAvail (up to SRC_AVAIL_MAX,
   * up to the end of the window or the skipped tail). Unless `now`, waits
   * while SRC_AVAIL_AHEAD SrcAvails are outstanding, so that more bytes
   * travel together; false when nothing was sent.
   */
  #advertise(now: boolean): boolean {
    if (this.#credits < 2 || this.#freeSlots() === 0 || this.#srcAvails >= MAX_SRC_AVAILS) return false;
    this.#skipGap();
    const at = this.#advHead % WINDOW_BYTES;
    const len = Math.min(this.#contiguousUnsent(), SRC_AVAIL_MAX);
    if (len <= 0) return false;
    if (!now && this.#srcAvails >= SRC_AVAIL_AHEAD && len < SRC_AVAIL_MAX) return false;
    const win = this.#window!;
    this.#advHead += len;
    // The READ's last response packet must not be a runt either (see #trimRunt): 256 divides every IB MTU.
    const r = (len - SRC_AVAIL_MIN_INLINE) % 256;
    const inline = Math.min(len, r > 0 && r < RUNT ? SRC_AVAIL_MIN_INLINE + r : SRC_AVAIL_MIN_INLINE);
    // The in-line bytes count as read: RdmaRdCompl covers what the sink READs.
    this.#srcOut.push({ srcAvail: true, len, acked: inline, end: this.#advHead });
    if (inline < len) this.#srcAvails++;
    const slot = this.#takeSlot();
    const base = slot * this.#txSize;
    const sa = this.#sa;
    sa.len = len;
    sa.rkey = win.rkey;
    sa.vaddr = win.addr + at;
    sa.inlineLen = inline;
    writeSrcAvail(this.#txMr.buf, base, this.#rxPosted, this.#mseq(), this.#lastRecvMseq, sa);
    this.#txMr.buf.set(win.buf.subarray(at, at + inline), base + SRC_AVAIL_HEADER_SIZE);
    this.bytesWritten += len;
    // With nothing to READ (the SrcAvail carried it all) the region is free at once.
    this.#releaseWindow();
    this.#post(slot, SRC_AVAIL_HEADER_SIZE + inline);
    return true;
  }

  /** Frees the window behind the SrcAvails the sink has read completely (they finish in order). */
  #releaseWindow(): void {
    const out = this.#srcOut;
    while (out.length > 0 && out[0]!.acked === out[0]!.len) this.#winTail = out.shift()!.end;
  }

  #maybeCreditUpdate(): void {
    // Also after our DisConn: the peer may still be sending, and only we can give it credits (as a
    // half-closed TCP socket still advertises its window).
    if (this.#failed || this.#closed || !this.#txMr) return;
    // What the peer believes it may still send us.
    const estimate = this.#advBufs - ((this.#lastRecvMseq - this.#advMseqAck) | 0);
    const gain = this.#rxPosted - estimate;
    // An update costs the peer one buffer, so one that adds a single credit
    // gains nothing, and answering updates with updates would never stop.
    if (gain < 2) return;
    if (gain < this.#opts.rxBufs >> 1 && estimate > 2) return;
    if (this.#credits < 1 || this.#freeSlots() === 0) return;
    this.#sendControl(CREDIT_UPDATE);
  }

  #onlyEofUnread(): boolean {
    for (const e of this.#rx) if (e.kind !== 'eof') return false;
    return true;
  }

  #sendsDone(): boolean {
    return this.#sentDisConn && this.#txHead === this.#txTail;
  }

  #maybeFinished(): void {
    if (this.#closed || this.#failed) return;
    if (this.#settleWaiters.size > 0 && this.#sendsDone() && this.#onlyEofUnread()) {
      this.#settleAll(true);
    }
    if (this.#sendsDone() && this.#recvDisConn && this.#rx.length === 0) this.#finish();
  }

  #finish(): void {
    this.#closed = true;
    this.#finished = true;
    try {
      this.#sink.finished();
    } catch (err) {
      rethrowLater(err);
    }
    this.#settleAll(true);
  }

  /**
   * The peer's CM disconnected. After its DisConn that is a TCP peer closing
   * after shutdown(): nothing is lost, the end of stream it sent still goes
   * up, and with nothing of ours waiting to be sent the connection finishes
   * without an error (a write after it fails with EPIPE, as TCP's would).
   * Returns false, leaving the connection alone, when it is a reset: no
   * DisConn came first, or bytes of ours are still to go.
   */
  peerClosed(): boolean {
    if (this.#closed || this.#failed) return this.#finished;
    // Messages that arrived before the DREQ are in the CQ: take them first (they may finish the connection, or fail it).
    this.#poll();
    if (this.#closed || this.#failed) return this.#finished;
    if (!this.#recvDisConn || this.#tx.length > 0 || this.#unsent() > 0 || this.#srcOut.length > 0) {
      // A socket waiting to close gracefully waits for nothing now: nobody will acknowledge.
      this.#settleAll(false);
      return false;
    }
    const f = this.#finalCb;
    this.#finalCb = undefined;
    this.#sentDisConn = true;
    this.#finish();
    this.#done(f);
    return true;
  }

  #sendControl(mid: number): number {
    const slot = this.#takeSlot();
    writeBsdh(this.#txMr.buf, slot * this.#txSize, mid, 0, this.#rxPosted, BSDH_SIZE, this.#mseq(), this.#lastRecvMseq);
    // DisConn and AbortConn are waited on: they must complete on their own.
    this.#post(slot, BSDH_SIZE, mid === Mid.DisConn || mid === Mid.AbortConn);
    return this.#txHead;
  }

  #takeSlot(): number {
    return this.#txHead % this.#opts.txBufs;
  }

  #mseq(): number {
    const m = this.#nextMseq;
    this.#nextMseq = (m + 1) >>> 0;
    this.#credits--;
    return m;
  }

  #post(slot: number, length: number, signal = false): void {
    const wr = this.#sendWrs[slot]!;
    wr.sgList[0]!.length = length;
    this.#advBufs = this.#rxPosted;
    this.#advMseqAck = this.#lastRecvMseq;
    this.#slotSeq[slot] = this.#txHead;
    this.#txHead++;
    // Every send signaled would make the HCA ask for an ACK per message. Half
    // the ring may go unsignaled; once fewer slots than that are free, every
    // send is signaled, so the slots in use always end with one that completes.
    // After our DisConn (an RdmaRdCompl may still follow it) each one is: the
    // close waits for the last send to complete, and an unsignaled one never says so.
    const every = this.#opts.txBufs >> 1;
    if (signal || this.#sentDisConn || this.#unsignaled + 1 >= every || this.#freeSlots() < every) {
      wr.sendFlags = SendFlags.SIGNALED;
      this.#unsignaled = 0;
    } else {
      wr.sendFlags = 0;
      this.#unsignaled++;
    }
    this.lastActivity = Date.now();
    try {
      this.#res.qp.postSend(wr);
    } catch (err) {
      this.#fail(new SdpSocketError('ECONNRESET', 'write', 'send could not be posted', {}, { cause: err }));
    }
  }

  #repost(slot: number): void {
    if (this.#closed) return;
    try {
      this.#res.qp.postRecv(this.#recvWrs[slot]!);
      this.#rxPosted++;
    } catch (err) {
      this.#fail(new SdpSocketError('ECONNRESET', 'read', 'receive could not be posted', {}, { cause: err }));
    }
  }
}
