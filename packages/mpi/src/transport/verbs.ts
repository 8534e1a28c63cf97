// Verbs RC between ranks, in the manner of Open MPI's openib BTL: one RC QP
// per peer, all on one CQ; eager messages are SENDs through pre-registered
// bounce buffers under credit flow control; rendezvous payloads move with
// one RDMA READ from the sender's registered buffer straight into the
// receiver's (both found in a registration cache). Works over the soft
// RoCEv2 HCA (between hosts, or locally when shared memory is off) or a
// native HCA.
import {
  Access,
  Mtu,
  QpAttrMask as M,
  QpState,
  QpType,
  SendFlags,
  WcOpcode,
  WcStatus,
  WrOpcode,
  addSoftDevice,
  createQp,
  gidFromString,
  gidToString,
  openDevice,
  regMr,
  wcStatusName,
  type CQ,
  type CompChannel,
  type FaultOptions,
  type Context,
  type MR,
  type PD,
  type QP,
  type SoftDevice,
  type WorkCompletion,
} from '@ibal/verbs';
import { TransportError } from '../errors.js';
import { Credits } from '../protocol/credits.js';
import { HDR_BYTES, HDR_WORDS, MsgType, W_CREDITS, W_TYPE } from '../protocol/header.js';
import { RegCache } from '../protocol/regcache.js';
import type { Endpoint, Sink, Transport } from './transport.js';

const KIND_RECV = 1;
const KIND_SEND = 2;
const KIND_RDMA = 3;
const SQ_DEPTH = 128;
const EXTRA_SEND_SLOTS = 4;
const ALL = Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE;
const TWO32 = 2 ** 32;

const wrId = (kind: number, peerIdx: number, slot: number): number => kind * 2 ** 28 + peerIdx * 2 ** 18 + slot;

export interface VerbsCard {
  gid: string;
  udpPort: number;
  mtu: number;
  /** QP number this rank created for each peer world rank. */
  qpns: Record<number, number>;
}

interface Queued {
  header: Int32Array;
  payload: Uint8Array | undefined;
}

/** An RDMA READ into `local` (rendezvous pulls, one-sided Get) or, with `write`, an RDMA WRITE from it (one-sided Put). */
interface PendingRdma {
  local: Uint8Array;
  addr: number;
  key: number;
  write: boolean;
  done: (err?: Error) => void;
}

class VerbsEndpoint implements Endpoint {
  readonly kind = 'verbs';
  readonly peer: number;
  readonly idx: number;
  readonly eagerLimit: number;
  readonly qp: QP;
  readonly recvMr: MR;
  readonly recvWords: Int32Array;
  readonly sendMr: MR;
  readonly sendWords: Int32Array;
  readonly credits: Credits;
  readonly slot: number;
  readonly freeSend: number[] = [];
  readonly #t: VerbsTransport;
  queue: Queued[] = [];
  rdmaQueue: PendingRdma[] = [];
  sqOut = 0;

  constructor(t: VerbsTransport, peer: number, idx: number, qp: QP, pd: PD, eagerLimit: number, window: number) {
    this.#t = t;
    this.peer = peer;
    this.idx = idx;
    this.qp = qp;
    this.eagerLimit = eagerLimit;
    this.slot = (HDR_BYTES + eagerLimit + 63) & ~63;
    this.recvMr = regMr(pd, window * this.slot, Access.LOCAL_WRITE);
    this.recvWords = new Int32Array(this.recvMr.buf.buffer, this.recvMr.buf.byteOffset, this.recvMr.buf.byteLength >> 2);
    const nSend = window + EXTRA_SEND_SLOTS;
    this.sendMr = regMr(pd, nSend * this.slot, Access.LOCAL_WRITE);
    this.sendWords = new Int32Array(this.sendMr.buf.buffer, this.sendMr.buf.byteOffset, this.sendMr.buf.byteLength >> 2);
    for (let i = nSend - 1; i >= 0; i--) this.freeSend.push(i);
    this.credits = new Credits(window);
  }

  get queued(): number {
    return this.queue.length + this.rdmaQueue.length;
  }

  postRecv(slot: number): void {
    this.qp.postRecv({ wrId: wrId(KIND_RECV, this.idx, slot), sgList: [this.recvMr.sge(slot * this.slot, this.slot)] });
  }

  send(header: Int32Array, payload: Uint8Array | undefined): void {
    if (this.queue.length > 0 || !this.trySend(header, payload, false)) {
      this.queue.push({ header: header.slice(0, HDR_WORDS), payload: payload?.slice() });
    }
  }

  trySend(header: Int32Array, payload: Uint8Array | undefined, creditOnly: boolean): boolean {
    if (creditOnly ? !this.credits.canSendCredit() : !this.credits.canSend()) return false;
    if (this.sqOut >= SQ_DEPTH || this.freeSend.length === 0) return false;
    const slot = this.freeSend.pop()!;
    const at = slot * this.slot;
    const w = at >> 2;
    this.sendWords.set(header.length === HDR_WORDS ? header : header.subarray(0, HDR_WORDS), w);
    this.sendWords[w + W_CREDITS] = this.credits.spend();
    const len = payload ? payload.length : 0;
    if (payload && len > 0) this.sendMr.buf.set(payload, at + HDR_BYTES);
    this.sqOut++;
    this.qp.postSend({ wrId: wrId(KIND_SEND, this.idx, slot), opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [this.sendMr.sge(at, HDR_BYTES + len)] });
    return true;
  }

  flush(): number {
    let n = 0;
    while (this.queue.length > 0) {
      const m = this.queue[0]!;
      if (!this.trySend(m.header, m.payload, false)) break;
      this.queue.shift();
      n++;
    }
    while (this.rdmaQueue.length > 0 && this.sqOut < SQ_DEPTH) {
      this.#postRdma(this.rdmaQueue.shift()!);
      n++;
    }
    // Credits ride on data messages, but a queue stalled for want of credits
    // carries none: when both sides' queues stall so, only CREDIT messages
    // (on the credit kept back for them) free both. Without this, two ranks
    // that each sent a window's worth of eager messages to the other before
    // receiving waited on each other forever.
    if (this.credits.shouldReturn() && (this.queue.length === 0 || !this.credits.canSend())) {
      const h = this.#t.scratch;
      h.fill(0);
      h[W_TYPE] = MsgType.CREDIT;
      if (this.trySend(h, undefined, true)) n++;
    }
    return n;
  }

  expose(buf: Uint8Array, header: Int32Array): () => void {
    const mr = this.#t.cache.acquire(buf);
    const addr = mr.addr + buf.byteOffset;
    header[6] = addr % TWO32 | 0;
    header[7] = Math.floor(addr / TWO32) | 0;
    header[8] = mr.rkey | 0;
    return () => this.#t.cache.release(buf);
  }

  fetch(dst: Uint8Array, lo: number, hi: number, key: number, done: (err?: Error) => void): void {
    if (dst.length === 0) {
      done();
      return;
    }
    this.#rdma({ local: dst, addr: (hi >>> 0) * TWO32 + (lo >>> 0), key: key >>> 0, write: false, done });
  }

  /** One-sided Put: an RDMA WRITE of `src` to memory the peer exposed; `done` once the peer acknowledged it (it is placed). */
  put(src: Uint8Array, lo: number, hi: number, key: number, done: (err?: Error) => void): void {
    if (src.length === 0) {
      done();
      return;
    }
    this.#rdma({ local: src, addr: (hi >>> 0) * TWO32 + (lo >>> 0), key: key >>> 0, write: true, done });
  }

  #rdma(r: PendingRdma): void {
    if (this.sqOut < SQ_DEPTH && this.rdmaQueue.length === 0) this.#postRdma(r);
    else this.rdmaQueue.push(r);
  }

  #postRdma(r: PendingRdma): void {
    const mr = this.#t.cache.acquire(r.local);
    const id = this.#t.addRdma(r);
    this.sqOut++;
    this.qp.postSend({
      wrId: wrId(KIND_RDMA, this.idx, id),
      opcode: r.write ? WrOpcode.RDMA_WRITE : WrOpcode.RDMA_READ,
      sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: mr.addr + r.local.byteOffset, length: r.local.length, lkey: mr.lkey }],
      rdma: { remoteAddr: r.addr, rkey: r.key },
    });
  }
}

export interface VerbsOptions {
  /** The address to bind the soft device to (one the other hosts can reach). */
  address: string;
  eagerLimit: number;
  credits: number;
  sink: Sink;
  /** A work completion failed: the job cannot go on. */
  onFatal: (err: Error) => void;
}

export class VerbsTransport implements Transport {
  readonly name = 'verbs';
  readonly endpoints: VerbsEndpoint[] = [];
  readonly scratch = new Int32Array(HDR_WORDS);
  cache!: RegCache;
  readonly #opts: VerbsOptions;
  #dev: SoftDevice | undefined;
  #ctx!: Context;
  #pd!: PD;
  #channel!: CompChannel;
  #cq!: CQ;
  readonly #rdmas = new Map<number, PendingRdma>();
  #nextRdma = 0;
  #armed = false;
  #abort = new AbortController();
  #closed = false;

  constructor(opts: VerbsOptions) {
    this.#opts = opts;
  }

  /** Opens the device (MPILITE_VERBS_DEVICE, or a soft device of this rank's own) and a QP per peer. */
  async open(peers: readonly number[]): Promise<VerbsCard> {
    const named = process.env.MPILITE_VERBS_DEVICE;
    if (named) this.#ctx = await openDevice(named);
    else {
      // MPILITE_SOFT_FAULTS: the soft HCA's seeded fault injection (JSON FaultOptions, e.g. {"drop":0.02}).
      const faults = process.env.MPILITE_SOFT_FAULTS ? (JSON.parse(process.env.MPILITE_SOFT_FAULTS) as FaultOptions) : undefined;
      this.#dev = addSoftDevice({ name: `mpilite${process.pid}`, address: this.#opts.address, port: 0, faults });
      this.#ctx = await openDevice(this.#dev.name);
    }
    this.#pd = this.#ctx.allocPd();
    this.cache = new RegCache(this.#pd, 64 << 20);
    this.#channel = this.#ctx.createCompChannel();
    const window = this.#opts.credits;
    const cqe = Math.min(this.#ctx.queryDevice().maxCqe, Math.max(256, peers.length * (window + SQ_DEPTH + EXTRA_SEND_SLOTS) + 16));
    this.#cq = this.#ctx.createCq(cqe, { channel: this.#channel });
    const qpns: Record<number, number> = {};
    peers.forEach((peer, idx) => {
      const qp = createQp(this.#pd, { qpType: QpType.RC, sendCq: this.#cq, recvCq: this.#cq, cap: { maxSendWr: SQ_DEPTH + EXTRA_SEND_SLOTS, maxRecvWr: window, maxSendSge: 1, maxRecvSge: 1 } });
      this.endpoints.push(new VerbsEndpoint(this, peer, idx, qp, this.#pd, this.#opts.eagerLimit, window));
      qpns[peer] = qp.qpNum;
    });
    const port = this.#ctx.queryPort(1);
    return { gid: gidToString(this.#ctx.queryGid(1, 0)), udpPort: port.udpPort, mtu: port.activeMtu, qpns };
  }

  /** Brings every QP to RTS against the peer's card, with its receive buffers posted. */
  connect(myRank: number, cards: Map<number, VerbsCard>): void {
    const mine = this.#ctx.queryPort(1).activeMtu;
    for (const ep of this.endpoints) {
      const card = cards.get(ep.peer)!;
      const qp = ep.qp;
      qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: ALL }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
      for (let s = 0; s < ep.credits.window; s++) ep.postRecv(s);
      const psn = (myRank * 7919 + ep.peer) & 0xffffff;
      const rpsn = (ep.peer * 7919 + myRank) & 0xffffff;
      qp.modifyQp(
        {
          qpState: QpState.RTR,
          pathMtu: Math.min(mine, card.mtu, Mtu.MTU_4096),
          destQpNum: card.qpns[myRank]!,
          rqPsn: rpsn,
          maxDestRdAtomic: 16,
          minRnrTimer: 1,
          ahAttr: { dgid: gidFromString(card.gid), portNum: 1, udpPort: card.udpPort },
        },
        M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER,
      );
      qp.modifyQp({ qpState: QpState.RTS, sqPsn: psn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 }, M.STATE | M.SQ_PSN | M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC);
    }
  }

  addRdma(r: PendingRdma): number {
    const id = this.#nextRdma;
    this.#nextRdma = (id + 1) & 0x3ffff;
    this.#rdmas.set(id, r);
    return id;
  }

  progress(): number {
    if (this.#closed) return 0;
    let n = 0;
    for (;;) {
      const wcs = this.#cq.poll(32);
      if (wcs.length === 0) break;
      for (const wc of wcs) this.#complete(wc);
      n += wcs.length;
    }
    for (const ep of this.endpoints) if (ep.queue.length > 0 || ep.rdmaQueue.length > 0 || ep.credits.shouldReturn()) n += ep.flush();
    return n;
  }

  #complete(wc: WorkCompletion): void {
    const id = wc.wrId;
    const kind = Math.floor(id / 2 ** 28);
    const ep = this.endpoints[Math.floor(id / 2 ** 18) & 0x3ff]!;
    const slot = id & 0x3ffff;
    if (wc.status !== WcStatus.SUCCESS) {
      if (this.#closed) return;
      const err = new TransportError(`verbs: ${wcStatusName(wc.status)} on the QP to rank ${ep.peer}`);
      if (kind === KIND_RDMA) this.#rdmas.get(slot)?.done(err);
      this.#opts.onFatal(err);
      return;
    }
    if (kind === KIND_RECV || wc.opcode === WcOpcode.RECV) {
      const at = slot * ep.slot;
      const w = at >> 2;
      ep.credits.granted(ep.recvWords[w + W_CREDITS]!);
      if ((ep.recvWords[w + W_TYPE]! & 0xff) !== MsgType.CREDIT) this.#opts.sink(ep.peer, ep.recvWords, w, ep.recvMr.buf, at + HDR_BYTES);
      ep.postRecv(slot);
      ep.credits.reposted();
      return;
    }
    ep.sqOut--;
    if (kind === KIND_SEND) {
      ep.freeSend.push(slot);
      return;
    }
    const r = this.#rdmas.get(slot);
    this.#rdmas.delete(slot);
    if (r) {
      this.cache.release(r.local);
      r.done();
    }
  }

  armWake(kick: () => void): void {
    if (this.#armed || this.#closed) return;
    this.#armed = true;
    this.#cq.reqNotify();
    this.#channel.getCqEvent({ signal: this.#abort.signal }).then(
      (cq) => {
        this.#channel.ackCqEvents(cq);
        this.#armed = false;
        kick();
      },
      () => {
        this.#armed = false;
      },
    );
    // A completion that landed before the arm would not fire: look once more.
    if (this.progress() > 0) queueMicrotask(kick);
  }

  disarm(): void {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    await new Promise((r) => setImmediate(r));
    for (const ep of this.endpoints) {
      try {
        ep.qp.destroy();
      } catch {
        /* already gone */
      }
    }
    for (const ep of this.endpoints) {
      ep.recvMr.dereg();
      ep.sendMr.dereg();
    }
    this.cache.clear();
    try {
      this.#cq.destroy();
      this.#channel.destroy();
    } catch {
      /* events still unacknowledged: the context close below reports nothing more useful */
    }
    this.#pd.dealloc();
    this.#ctx.close();
    if (this.#dev) {
      this.#dev.remove();
      // The soft device's same-host rings end their waiter threads
      // asynchronously; give their last reports a moment to arrive before
      // this process may exit.
      await new Promise((r) => setTimeout(r, 60));
    }
  }
}
