// The SDP data path over one connected RC QP (IBTA Annex A4): a ring of
// registered receive buffers whose count the peer learns through BSDH.Bufs
// (credits), buffer-copy Data messages for small writes, SrcAvail / RDMA READ
// / RdmaRdCompl for large ones, DisConn for half-close and AbortConn for
// reset. Who set the QP up (the CM) is not this file's business.

import { Access, SendFlags, WcStatus, WrOpcode, mtuBytes, wcStatusName, regMr, type CQ, type CompChannel, type MR, type PD, type QP, type SendWr } from '@ibal/verbs';
import { SdpProtocolError, SdpSocketError } from './errors.js';
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
  /** Writes of at least this many bytes go zero-copy (SrcAvail + RDMA READ). */
  zcopyThreshold: number;
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = {
  rxBufs: 16,
  rxBufSize: 16 * 1024,
  txBufs: 16,
  zcopyThreshold: 64 * 1024,
};

// wrIds: receives, sends (by slot) and RDMA READs live in separate ranges
// so a completion names its kind whatever its status.
const RECV_BASE = 0x10000;
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
const READ_WR = 0x20000;

/** Room in a send slot after the BSDH, never below what a SrcAvail needs. */
function slotPayload(size: number): number {
  return size - BSDH_SIZE;
}

interface TxChunk {
  buf: Uint8Array;
  offset: number;
  cb: ((err?: Error | null) => void) | undefined;
}

type RxEntry = { kind: 'data'; slot: number; offset: number; length: number } | { kind: 'src'; slot: number; sa: SrcAvail } | { kind: 'eof' };

interface ZcopyTx {
  mr: MR;
  len: number;
  acked: number;
  cb: ((err?: Error | null) => void) | undefined;
}

interface ZcopyRx {
  dest: Buffer;
  mr: MR | undefined;
  remaining: number;
}

export class SdpConnection {
  readonly #res: ConnectionResources;
  #sink: ConnectionSink;
  readonly #opts: ConnectionOptions;
  readonly #rxMr: MR;
  #txMr!: MR;
  /** Size of the peer's receive buffers: the largest message we may send. */
  #txSize = 0;
  /** The path MTU: Data messages are cut so their last packet is not a runt. */
  #mtu = 256;
  readonly #recvWrs: { wrId: number; sgList: { addr: number; length: number; lkey: number }[] }[] = [];
  readonly #sendWrs: SendWr[] = [];
  readonly #readWr: SendWr;
  readonly #bsdh = newBsdh();
  readonly #sa: SrcAvail = { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 };

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
  #zcTx: ZcopyTx | undefined;
  #zcRx: ZcopyRx | undefined;
  readonly #rx: RxEntry[] = [];
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
    this.#rxMr = regMr(res.pd, opts.rxBufs * opts.rxBufSize, Access.LOCAL_WRITE);
    for (let i = 0; i < opts.rxBufs; i++) {
      this.#recvWrs.push({ wrId: RECV_BASE + i, sgList: [this.#rxMr.sge(i * opts.rxBufSize, opts.rxBufSize)] });
    }
    this.#readWr = { wrId: READ_WR, opcode: WrOpcode.RDMA_READ, sendFlags: SendFlags.SIGNALED, sgList: [{ addr: 0, length: 0, lkey: 0 }], rdma: { remoteAddr: 0, rkey: 0 } };
    for (let i = 0; i < opts.rxBufs; i++) this.#repost(i);
    this.#advBufs = this.#rxPosted;
  }

  /** Both DisConns are exchanged: the stream is over in both directions, only sends may be in flight. */
  get disconnected(): boolean {
    return this.#sentDisConn && this.#recvDisConn && !this.#failed;
  }

  /** Resolves true once the last sends completed after both DisConns (at most `ms` later). */
  settle(ms: number): Promise<boolean> {
    if (this.#finished) return Promise.resolve(true);
    if (this.#failed || this.#closed) return Promise.resolve(false);
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
    const pathMtu = this.#res.qp.queryQp().pathMtu;
    if (pathMtu !== undefined) this.#mtu = mtuBytes(pathMtu);
    this.#txMr = regMr(this.#res.pd, this.#opts.txBufs * this.#txSize, Access.LOCAL_WRITE);
    for (let i = 0; i < this.#opts.txBufs; i++) {
      this.#sendWrs.push({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [this.#txMr.sge(i * this.#txSize, 0)] });
    }
    void this.#pump();
    this.#flush();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues stream bytes; `cb` runs once they are copied out or, zero-copy, read by the peer. */
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

  /** Half-close: sends DisConn after everything written so far. */
  end(cb?: (err?: Error | null) => void): void {
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
    if (this.#closed || this.#sentDisConn) return;
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
    for (const w of this.#settleWaiters) w(false);
    this.#settleWaiters.clear();
    if (this.#closed) return;
    this.#closed = true;
    this.#failed = true;
    const e = err ?? new SdpSocketError('EPIPE', 'write', 'the connection closed before the data was sent');
    for (const c of this.#tx.splice(0)) c.cb?.(e);
    if (this.#zcTx) {
      this.#zcTx.cb?.(e);
      this.#zcTx = undefined;
    }
    const f = this.#finalCb;
    this.#finalCb = undefined;
    f?.(e);
  }

  /** After the QP is destroyed: its WRs can no longer touch the memory. */
  releaseMemory(): void {
    for (const mr of [this.#rxMr, this.#txMr, this.#zcTx?.mr, this.#zcRx?.mr]) {
      if (mr && !mr.closed) mr.dereg();
    }
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
    for (let wcs = cq.poll(16); wcs.length > 0; wcs = cq.poll(16)) {
      total += wcs.length;
      for (const wc of wcs) {
        if (this.#closed) continue;
        if (wc.status !== WcStatus.SUCCESS) {
          this.#wcError(wc.status, wc.wrId);
          continue;
        }
        if (wc.wrId >= READ_WR) this.#readDone();
        else if (wc.wrId >= RECV_BASE) this.#received(wc.wrId - RECV_BASE, wc.byteLen);
        else this.#txTail = this.#slotSeq[wc.wrId]! + 1;
      }
      if (this.#closed) break;
    }
    if (total > 0) this.#afterWork();
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
    this.#fail(new SdpSocketError('ECONNRESET', kind === 'receive' ? 'read' : 'write', `${kind} completed with ${name}`));
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#sink.failed(err);
  }

  #received(slot: number, byteLen: number): void {
    this.#rxPosted--;
    this.lastActivity = Date.now();
    const base = slot * this.#opts.rxBufSize;
    const buf = this.#rxMr.buf;
    const h = this.#bsdh;
    try {
      readBsdh(buf, base, byteLen, h);
    } catch (err) {
      this.#protocolError((err as Error).message);
      return;
    }
    if (h.mseq !== ((this.#lastRecvMseq + 1) >>> 0)) {
      this.#protocolError(`MSeq ${h.mseq} after ${this.#lastRecvMseq}: a message was lost or repeated`);
      return;
    }
    this.#lastRecvMseq = h.mseq;
    // Bufs counts the peer's posted buffers when it sent this; the messages
    // we sent after the one it acknowledges will land in some of them.
    this.#credits = ((h.mseqAck - (this.#nextMseq - 1)) | 0) + h.bufs;
    switch (h.mid) {
      case Mid.SinkAvailCancel:
        // A credit update (see CREDIT_UPDATE); its BSDH was all there was to it.
        this.#repost(slot);
        break;
      case Mid.Data:
        if (this.#recvDisConn && byteLen > BSDH_SIZE) return this.#protocolError('Data after DisConn');
        if (byteLen > BSDH_SIZE) this.#rx.push({ kind: 'data', slot, offset: base + BSDH_SIZE, length: byteLen - BSDH_SIZE });
        else this.#repost(slot);
        break;
      case Mid.SrcAvail: {
        if (this.#recvDisConn) return this.#protocolError('SrcAvail after DisConn');
        let sa: SrcAvail;
        try {
          sa = readSrcAvail(buf, base, byteLen, { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 });
        } catch (err) {
          return this.#protocolError((err as Error).message);
        }
        this.#rx.push({ kind: 'src', slot, sa });
        break;
      }
      case Mid.RdmaRdCompl: {
        const n = readRdmaRdCompl(buf, base, byteLen);
        this.#repost(slot);
        const zc = this.#zcTx;
        if (!zc || zc.acked + n > zc.len) return this.#protocolError(`RdmaRdCompl for ${n} bytes matches no outstanding SrcAvail`);
        zc.acked += n;
        if (zc.acked === zc.len) this.#zcopySent();
        break;
      }
      case Mid.DisConn:
        this.#repost(slot);
        if (this.#recvDisConn) return this.#protocolError('a second DisConn');
        this.#recvDisConn = true;
        this.#rx.push({ kind: 'eof' });
        break;
      case Mid.AbortConn:
        this.#repost(slot);
        this.#fail(new SdpSocketError('ECONNRESET', 'read', 'the peer aborted the connection (AbortConn)'));
        return;
      default:
        this.#repost(slot);
        this.#protocolError(`unsupported message ${midName(h.mid) ?? `MID 0x${h.mid.toString(16)}`}`);
        return;
    }
    this.#deliver();
  }

  #protocolError(msg: string): void {
    this.#fail(new SdpSocketError('ECONNRESET', 'read', 'SDP protocol error', {}, { cause: new SdpProtocolError(msg) }));
  }

  /** Hands received bytes up in order while the sink takes them. */
  #deliver(): void {
    const rxBuf = this.#rxMr.buf;
    while (this.#rx.length > 0 && !this.#paused && !this.#failed) {
      const e = this.#rx[0]!;
      if (e.kind === 'data') {
        this.#rx.shift();
        // The copy out of the ring is buffer-copy's second copy; then the buffer is the peer's again.
        const chunk = Buffer.allocUnsafe(e.length);
        chunk.set(rxBuf.subarray(e.offset, e.offset + e.length));
        this.#repost(e.slot);
        this.bytesRead += e.length;
        if (!this.#sink.data(chunk)) this.#paused = true;
      } else if (e.kind === 'src') {
        if (this.#zcRx) return; // its READ is under way
        this.#startRead(e.slot, e.sa);
        if (this.#zcRx) return;
      } else {
        this.#rx.shift();
        this.#sink.end();
        this.#maybeFinished();
      }
    }
  }

  #startRead(slot: number, sa: SrcAvail): void {
    const base = slot * this.#opts.rxBufSize + SRC_AVAIL_HEADER_SIZE;
    const dest = Buffer.allocUnsafe(sa.len);
    dest.set(this.#rxMr.buf.subarray(base, base + sa.inlineLen));
    this.#repost(slot);
    const remaining = sa.len - sa.inlineLen;
    if (remaining === 0) {
      this.#rx.shift();
      this.bytesRead += sa.len;
      if (!this.#sink.data(dest)) this.#paused = true;
      return;
    }
    const mr = regMr(this.#res.pd, dest.subarray(sa.inlineLen), Access.LOCAL_WRITE);
    this.#zcRx = { dest, mr, remaining };
    const wr = this.#readWr;
    const sge = wr.sgList[0]!;
    sge.addr = mr.addr;
    sge.length = remaining;
    sge.lkey = mr.lkey;
    wr.rdma!.remoteAddr = sa.vaddr + sa.inlineLen;
    wr.rdma!.rkey = sa.rkey;
    try {
      this.#res.qp.postSend(wr);
    } catch (err) {
      this.#fail(new SdpSocketError('ECONNRESET', 'read', 'RDMA READ could not be posted', {}, { cause: err }));
    }
  }

  #readDone(): void {
    const zc = this.#zcRx;
    if (!zc) return;
    this.#zcRx = undefined;
    zc.mr?.dereg();
    this.#rx.shift();
    this.lastActivity = Date.now();
    this.#pendingRdCompl += zc.remaining;
    this.bytesRead += zc.dest.length;
    if (!this.#sink.data(zc.dest)) this.#paused = true;
    this.#deliver();
  }

  #pendingRdCompl = 0;

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
    // Control first: the RdmaRdCompl owed for a finished READ frees the peer's writer.
    if (this.#pendingRdCompl > 0) {
      if (this.#credits < 1 || this.#freeSlots() === 0) return;
      const slot = this.#takeSlot();
      writeRdmaRdCompl(this.#txMr.buf, slot * this.#txSize, this.#rxPosted, this.#mseq(), this.#lastRecvMseq, this.#pendingRdCompl);
      this.#pendingRdCompl = 0;
      this.#post(slot, RDMA_RD_COMPL_SIZE);
    }
    const max = slotPayload(this.#txSize);
    while (this.#tx.length > 0 && !this.#zcTx) {
      // The last credit is kept for credit updates, so two senders with full rings cannot both stall.
      if (this.#credits < 2 || this.#freeSlots() === 0) return;
      const first = this.#tx[0]!;
      const left = first.buf.length - first.offset;
      if (left >= this.#opts.zcopyThreshold) {
        this.#sendSrcAvail(first);
        return;
      }
      const want = this.#messagePayload(max);
      const slot = this.#takeSlot();
      const base = slot * this.#txSize;
      const out = this.#txMr.buf;
      let n = 0;
      // Small writes queued together share one message (as Nagle would coalesce, without the wait).
      while (n < want) {
        const c = this.#tx[0]!;
        const take = Math.min(c.buf.length - c.offset, want - n);
        out.set(take === c.buf.length ? c.buf : c.buf.subarray(c.offset, c.offset + take), base + BSDH_SIZE + n);
        n += take;
        c.offset += take;
        if (c.offset === c.buf.length) {
          this.#tx.shift();
          c.cb?.();
        }
      }
      writeBsdh(out, base, Mid.Data, 0, this.#rxPosted, BSDH_SIZE + n, this.#mseq(), this.#lastRecvMseq);
      this.bytesWritten += n;
      this.#post(slot, BSDH_SIZE + n);
    }
    if (this.#tx.length === 0 && !this.#zcTx && this.#finalCb && !this.#sentDisConn) {
      if (this.#credits < 1 || this.#freeSlots() === 0) return;
      this.#sentDisConn = true;
      this.#sendControl(Mid.DisConn);
      const f = this.#finalCb;
      this.#finalCb = undefined;
      f();
    }
  }

  /**
   * Payload bytes for the next Data message: what is queued up to `max`,
   * stopping at a zero-copy write, and trimmed so that the message's last
   * packet is not a runt. Wireshark dissects every packet of an SDP
   * conversation as an SDP message, and one of 16..63 bytes is too short
   * for the header it then expects.
   */
  #messagePayload(max: number): number {
    let avail = 0;
    for (let i = 0; i < this.#tx.length && avail < max; i++) {
      const c = this.#tx[i]!;
      const rest = c.buf.length - c.offset;
      if (rest >= this.#opts.zcopyThreshold && avail > 0) break;
      avail += rest;
    }
    avail = Math.min(avail, max);
    const total = BSDH_SIZE + avail;
    const tail = total % this.#mtu;
    if (total > this.#mtu && tail > 0 && tail < RUNT) avail -= tail;
    return avail;
  }

  #sendSrcAvail(c: TxChunk): void {
    const view = c.buf.subarray(c.offset);
    // The READ's last response packet must not be a runt either (see #messagePayload): 256 divides every IB MTU.
    const r = (view.length - SRC_AVAIL_MIN_INLINE) % 256;
    const inline = Math.min(view.length, r > 0 && r < RUNT ? SRC_AVAIL_MIN_INLINE + r : SRC_AVAIL_MIN_INLINE);
    // Registered in place: the peer reads the writer's own bytes.
    const mr = regMr(this.#res.pd, view, Access.REMOTE_READ);
    this.#tx.shift();
    this.#zcTx = { mr, len: view.length, acked: inline, cb: c.cb };
    const slot = this.#takeSlot();
    const base = slot * this.#txSize;
    const sa = this.#sa;
    sa.len = view.length;
    sa.rkey = mr.rkey;
    sa.vaddr = mr.addr;
    sa.inlineLen = inline;
    writeSrcAvail(this.#txMr.buf, base, this.#rxPosted, this.#mseq(), this.#lastRecvMseq, sa);
    this.#txMr.buf.set(view.subarray(0, inline), base + SRC_AVAIL_HEADER_SIZE);
    this.#post(slot, SRC_AVAIL_HEADER_SIZE + inline);
  }

  #zcopySent(): void {
    const zc = this.#zcTx!;
    this.#zcTx = undefined;
    zc.mr.dereg();
    this.bytesWritten += zc.len;
    zc.cb?.();
  }

  #maybeCreditUpdate(): void {
    if (this.#failed || this.#sentDisConn || !this.#txMr) return;
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

  #maybeFinished(): void {
    if (this.#closed || this.#failed) return;
    if (this.#sentDisConn && this.#recvDisConn && this.#rx.length === 0 && this.#txHead === this.#txTail) {
      this.#closed = true;
      this.#finished = true;
      this.#sink.finished();
      for (const w of this.#settleWaiters) w(true);
      this.#settleWaiters.clear();
    }
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
    const every = this.#opts.txBufs >> 1;
    if (signal || this.#unsignaled + 1 >= every || this.#freeSlots() < every) {
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
