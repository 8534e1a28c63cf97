import { Access, EventType, QpState, QpType, SendFlags, WcStatus, WrOpcode, isAtomic } from '../enums.js';
import { Opcode } from '../packet/opcode.js';
import type { ParsedPacket } from '../packet/packet.js';
import { rnrTimerUs } from '../packet/aeth.js';
import { PSN_MASK, psnAdd, psnDiff } from './psn.js';
import { checkSgl, gather, scatter } from './sgl.js';
import type { SoftQp } from './qp.js';
import { Tx } from './tx.js';
import type { SendWqe } from './wqe.js';
import { VM_MIN_BYTES, encodeVmDesc, fromRing, isVmRef, markVmRef, vmCounters, vmDescBytes, vmSourceBytes } from './vm-path.js';
import type { Peer } from './wire.js';
import { vmRead } from '../sys/vm.js';

/**
 * Packets in flight before the requester waits for an ACK. Bounded so a
 * burst fits the receiver's socket buffer; rxe bounds it the same way
 * (RXE_MAX_UNACKED_PSNS).
 */
const WINDOW = 128;
/** Ask for an ACK at least this often inside a long message, so the window keeps moving. */
const ACK_EVERY = 32;
/**
 * Unsignaled messages need no prompt ACK: nobody waits for their completion.
 * Asking for one only every this many messages halves the packets of a
 * ping-pong; a signaled message, a filling send queue, or going idle (the
 * tail probe below) asks at once.
 */
const ACK_EVERY_MSGS = 16;
/** How long an idle requester waits before probing for the ACK of an unsignaled tail. */
const TAIL_PROBE_MS = 1;

const isReadOrAtomic = (op: number) => op === WrOpcode.RDMA_READ || op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD;

// 4.096 µs * 2^timeout, the IBTA local ACK timeout; 0 means wait forever.
// A table: it is read on every post.
const ACK_TIMEOUT_MS = Array.from({ length: 32 }, (_, t) => (t === 0 ? 0 : Math.max(1, (4.096 * 2 ** t) / 1000)));

/** The retransmit timer's tick: a quarter of the timeout, so it fires 1-1.25 timeouts after the last progress. */
function timerTickMs(ms: number): number {
  return Math.max(1, ms / 4);
}

export function ackTimeoutMs(timeout: number): number {
  return ACK_TIMEOUT_MS[timeout & 31]!;
}

/**
 * The send side of a QP: rxe's requester and completer in one. WQEs are
 * segmented into packets with consecutive PSNs; RC keeps them until ACKed,
 * with go-back-N retransmission from the first unacknowledged PSN on a
 * sequence NAK, RNR NAK or timeout.
 */
export class Requester {
  /** Next PSN to send. */
  psn = 0;
  /** Last PSN acknowledged. */
  private acked = 0;
  /** One past the highest PSN ever sent: ACKs up to here are valid even after a rewind. */
  private maxPsn = 0;
  /** Index (in sq counters) of the WQE being sent, and its next packet. */
  private sendIdx = 0;
  private pktIdx = 0;
  private rdAtomicOutstanding = 0;
  private retryLeft = 0;
  private rnrLeft = 0;
  /**
   * Bumped by every sign of progress (an ACK, a post after idle, a retry).
   * The retransmit timer ticks a quarter of the timeout apart and times out
   * after a timeout's worth of ticks without a bump: reading the clock at
   * each ACK and post instead cost a ping-pong ~45 ns a read on this VM.
   */
  private progressSeq = 0;
  private timerSeq = 0;
  private quietTicks = 0;
  /** The retransmit timer runs unreferenced with nothing outstanding (see retire). */
  private timerIdle = false;
  private timer: NodeJS.Timeout | undefined;
  private rnrTimer: NodeJS.Timeout | undefined;
  private rnrWait = false;
  /** A local error stopped the send queue; the failed WQE retires in order. */
  private blocked = false;
  /**
   * The PSN a READ or atomic was last re-requested from because its
   * responses went missing, so that a burst of later responses (all saying
   * the same) re-requests once; reset by progress.
   */
  private retryPsn = -1;
  private sqdNotified = false;
  /** Messages sent since the last one that asked for an ACK. */
  private quietMsgs = 0;
  /** The last packet sent did not ask for an ACK. */
  private tailUnasked = false;
  private probing = false;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Bumped by every packet that does not ask for an ACK; the probe timer's view of "still busy". */
  private unaskedSeq = 0;
  private probeSeq = 0;
  /** A direct READ waits for the ACK of unsignaled messages before it, which nothing asked for yet. */
  private ackWanted = false;
  private readonly tx: Tx;
  /** Scratch for by-reference READ descriptors (QPN, PSN, ranges). */
  private readonly vmDesc = new Uint8Array(8 + vmDescBytes(32));

  constructor(private readonly qp: SoftQp) {
    this.tx = new Tx(qp.host.wire);
  }

  start(sqPsn: number): void {
    this.psn = sqPsn;
    this.maxPsn = sqPsn;
    this.acked = psnAdd(sqPsn, PSN_MASK); // sqPsn - 1
    this.sendIdx = this.qp.sq.head;
    this.pktIdx = 0;
    this.retryLeft = this.qp.retryCnt;
    this.rnrLeft = this.qp.rnrRetry;
  }

  reset(): void {
    this.stop();
    this.sendIdx = 0;
    this.pktIdx = 0;
    this.rdAtomicOutstanding = 0;
    this.blocked = false;
    this.rnrWait = false;
    this.retryPsn = -1;
    this.sqdNotified = false;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.rnrTimer) clearTimeout(this.rnrTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.timer = this.rnrTimer = this.probeTimer = undefined;
    this.rnrWait = false;
    this.tailUnasked = false;
  }

  /** Send what the window, fences and the read/atomic limit allow. */
  pump(): void {
    const qp = this.qp;
    const state = qp.state;
    if ((state !== QpState.RTS && state !== QpState.SQD) || this.blocked || this.rnrWait) return;
    const sq = qp.sq;
    const rc = qp.qpType === QpType.RC;
    while (this.sendIdx < sq.tail) {
      const w = sq.at(this.sendIdx);
      if (!w.started) {
        if (state === QpState.SQD) break;
        if (!this.startWqe(w)) break;
        if (w.done && !w.direct) {
          // A local error: nothing goes out after it.
          this.sendIdx++;
          this.blocked = true;
          break;
        }
      }
      if (w.direct) {
        // Done when it started: it has no packets to send, now or on a resend.
        // It completes once everything before it is ACKed; a READ request
        // would have asked for that ACK, so ask for it now (below).
        if (this.tailUnasked && sq.head < this.sendIdx) this.ackWanted = true;
        this.sendIdx++;
        continue;
      }
      if (rc && psnDiff(this.psn, this.acked) > WINDOW) break;
      this.sendPacket(w);
      if (this.pktIdx >= w.npkts) {
        this.sendIdx++;
        this.pktIdx = 0;
        if (!rc) w.done = true;
      }
    }
    if (rc) {
      if (this.ackWanted) {
        this.ackWanted = false;
        if (this.tailUnasked) this.askForAck();
      }
      this.armTimer();
      if (this.tailUnasked && this.sendIdx === sq.tail && !this.probeTimer) {
        this.probeSeq = this.unaskedSeq;
        this.probeTimer = setTimeout(this.onProbe, TAIL_PROBE_MS);
      }
    }
    this.retire();
  }

  /**
   * The requester went idle with packets whose ACK it never asked for
   * (unsignaled messages): resend the last one with AckReq set. The
   * responder treats it as a duplicate and ACKs everything, or NAKs what it
   * is missing. It is not a retry: nothing was lost.
   */
  private readonly onProbe = (): void => {
    this.probeTimer = undefined;
    const qp = this.qp;
    if (qp.state !== QpState.RTS && qp.state !== QpState.SQD) return;
    if (!this.tailUnasked || this.drained() || this.rnrWait || this.blocked) return;
    if (this.sendIdx !== qp.sq.tail) return;
    if (this.unaskedSeq !== this.probeSeq) {
      // Sent since the timer was set: the tail is not idle yet. Look again a
      // probe interval later (the timer is not moved on every post: that
      // cost each message of a ping-pong a clearTimeout and a setTimeout).
      this.probeSeq = this.unaskedSeq;
      this.probeTimer = setTimeout(this.onProbe, TAIL_PROBE_MS);
      return;
    }
    this.askForAck();
  };

  /** Sends the last packet again with AckReq set; the responder ACKs everything (or NAKs what it is missing). */
  private askForAck(): void {
    const lastPsn = psnAdd(this.psn, PSN_MASK);
    const index = this.findWqe(lastPsn);
    if (index < 0) return;
    this.goBack(index, lastPsn);
    this.probing = true;
    this.pump();
    this.probing = false;
  }

  private startWqe(w: SendWqe): boolean {
    const qp = this.qp;
    const op = w.opcode;
    if (isReadOrAtomic(op)) {
      if (this.rdAtomicOutstanding >= qp.maxRdAtomic) return false;
    } else if (w.sendFlags & SendFlags.FENCE && this.rdAtomicOutstanding > 0) {
      return false;
    }
    if (op === WrOpcode.BIND_MW || op === WrOpcode.LOCAL_INV) return this.localOp(w);
    if (op === WrOpcode.SEND_WITH_INV && qp.qpType !== QpType.RC) {
      w.started = true;
      return this.failLocal(w, WcStatus.LOC_QP_OP_ERR);
    }
    w.started = true;
    w.psn = this.psn;
    const mtu = qp.qpType === QpType.UD ? qp.host.activeMtu : qp.mtu;
    w.npkts = Math.max(1, Math.ceil(w.length / mtu));
    const needWrite = op === WrOpcode.RDMA_READ || isAtomic(op) ? Access.LOCAL_WRITE : 0;
    if (w.inlineLen < 0 && !checkSgl(qp.host.mrs, qp.pd, w, needWrite)) {
      return this.failLocal(w, WcStatus.LOC_PROT_ERR);
    }
    if (isAtomic(op) && w.length !== 8) return this.failLocal(w, WcStatus.LOC_LEN_ERR);
    if (qp.qpType === QpType.UD && w.length > mtu) return this.failLocal(w, WcStatus.LOC_LEN_ERR);
    if (qp.qpType !== QpType.UD && !qp.peer) return this.failLocal(w, WcStatus.LOC_QP_OP_ERR);
    // A large WRITE/READ to a same-host peer that can reach our memory goes by reference, in one PSN.
    w.vm =
      w.length >= VM_MIN_BYTES &&
      qp.qpType === QpType.RC &&
      w.inlineLen < 0 &&
      (op === WrOpcode.RDMA_WRITE || op === WrOpcode.RDMA_WRITE_WITH_IMM || op === WrOpcode.RDMA_READ) &&
      vmDescBytes(w.numSge) <= mtu &&
      qp.host.wire.vmPeer(qp.peer!);
    if (w.vm) w.npkts = 1;
    if (w.vm && op === WrOpcode.RDMA_READ && this.readDirect(w)) return true;
    if (isReadOrAtomic(op)) this.rdAtomicOutstanding++;
    return true;
  }

  /**
   * A large READ from a same-host peer that publishes what its responder
   * checks (directory.ts): when every check passes, the bytes are copied
   * here and now out of the peer's memory (its mapped region, or with
   * process_vm_readv) and the READ is done; the peer's process does
   * nothing. It takes no PSN and no READ credit (the peer's responder never
   * sees it). Memory the peer's HCA may write
   * (LOCAL_WRITE) may still change under requests of ours it has not
   * executed, which its responder would execute first: from such memory
   * only a READ with nothing before it outstanding goes this way. False
   * when the READ is to go to the responder instead.
   */
  private readDirect(w: SendWqe): boolean {
    const qp = this.qp;
    const link = qp.peer!.link!;
    const dir = qp.host.wire.shm?.directoryOf(link);
    if (!dir) return false;
    if (!dir.check(link.pid, qp.destQpNum, qp.qpNum, link.remoteToken, w.rkey, w.remoteAddr, w.length)) return false;
    if (dir.access & Access.LOCAL_WRITE && qp.sq.head !== this.sendIdx) return false;
    const copied = dir.view ? scatter(qp.host.mrs, qp.pd, w, 0, dir.view, 0, w.length) : this.pullFrom(w, link.pid, dir.address);
    // Entries moved under the copy: the READ goes the usual way and overwrites what landed, or fails (a failed READ's buffer is undefined, as for any HCA).
    if (!copied || !dir.valid()) return false;
    w.direct = true;
    w.done = true;
    w.status = WcStatus.SUCCESS;
    w.npkts = 0;
    vmCounters.direct++;
    vmCounters.bytes += w.length;
    return true;
  }

  /** Reads a direct READ's bytes from `address` in process `pid` into its SGEs; false when that fails (the MR went away under us). */
  private pullFrom(w: SendWqe, pid: number, address: number): boolean {
    const qp = this.qp;
    let at = address;
    for (let i = 0; i < w.numSge; i++) {
      const len = w.sgeLen[i]!;
      if (len === 0) continue;
      const off = qp.host.mrs.resolve(w.sgeKey[i]!, qp.pd, w.sgeAddr[i]!, len, Access.LOCAL_WRITE);
      if (off < 0) return false;
      try {
        vmRead(pid, BigInt(at), qp.host.mrs.bufferOf(w.sgeKey[i]!).subarray(off, off + len));
      } catch {
        return false;
      }
      at += len;
    }
    return true;
  }

  /**
   * BIND_MW and LOCAL_INV act on this HCA's own key table, at their turn in
   * the send queue: nothing goes on the wire. Done, they complete in order
   * as a direct READ does; failed, they stop the queue as any local error.
   */
  private localOp(w: SendWqe): true {
    const qp = this.qp;
    w.started = true;
    w.psn = this.psn;
    w.npkts = 0;
    const mws = qp.host.mrs.mws;
    if (w.opcode === WrOpcode.BIND_MW) {
      const status = qp.qpType === QpType.UD || !w.mw ? WcStatus.MW_BIND_ERR : mws.bind(qp, w.mw, w.bindRkey, w.bindInfo!);
      if (status !== WcStatus.SUCCESS) return this.failLocal(w, status);
    } else if (qp.qpType === QpType.UD || !mws.invalidate(w.invRkey, qp.pd, undefined)) {
      return this.failLocal(w, WcStatus.LOC_QP_OP_ERR);
    }
    // Let go of the bind's objects: the WQE slot may sit unused for long.
    w.mw = undefined;
    w.bindInfo = undefined;
    w.direct = true;
    w.done = true;
    w.status = WcStatus.SUCCESS;
    return true;
  }

  private failLocal(w: SendWqe, status: number): true {
    w.done = true;
    w.status = status;
    w.npkts = 0;
    return true;
  }

  private sendPacket(w: SendWqe): void {
    const qp = this.qp;
    const h = this.tx.h;
    const k = this.pktIdx;
    const op = w.opcode;
    const base = qp.qpType === QpType.RC ? 0 : qp.qpType === QpType.UC ? 0x20 : 0x60;
    const first = k === 0;
    const last = k === w.npkts - 1;
    h.psn = psnAdd(w.psn, k);
    h.se = false;
    h.ackReq = false;
    let peer = qp.peer!;
    h.destQp = qp.destQpNum;
    if (op === WrOpcode.RDMA_READ) {
      // One request covers every remaining response PSN; a retry asks only for what is missing.
      const off = k * qp.mtu;
      h.opcode = Opcode.RC_RDMA_READ_REQUEST;
      h.rethVa = w.remoteAddr + off;
      h.rethRkey = w.rkey;
      h.rethDmaLen = w.length - off;
      h.ackReq = true;
      // Its response acknowledges every request before it: the tail is asked for.
      this.tailUnasked = false;
      const out = this.tx.begin();
      if (w.vm && !this.sendReadDesc(w, h.psn, peer)) return;
      if (w.vm) markVmRef(out);
      this.tx.end(peer, 0);
      this.pktIdx = w.npkts;
      this.advance(psnAdd(w.psn, w.npkts));
      return;
    }
    if (isAtomic(op)) {
      h.opcode = op === WrOpcode.ATOMIC_CMP_AND_SWP ? Opcode.RC_COMPARE_SWAP : Opcode.RC_FETCH_ADD;
      h.atomicVa = w.remoteAddr;
      h.atomicRkey = w.rkey;
      h.atomicSwapAdd = op === WrOpcode.ATOMIC_CMP_AND_SWP ? w.swap : w.compareAdd;
      h.atomicCompare = op === WrOpcode.ATOMIC_CMP_AND_SWP ? w.compareAdd : 0n;
      h.ackReq = true;
      this.tailUnasked = false; // as for a READ: its response acknowledges what came before
      this.tx.begin();
      this.tx.end(peer, 0);
      this.pktIdx = 1;
      this.advance(psnAdd(w.psn, 1));
      return;
    }
    const mtu = qp.qpType === QpType.UD ? qp.host.activeMtu : qp.mtu;
    const off = k * mtu;
    const len = Math.min(mtu, w.length - off);
    const imm = op === WrOpcode.SEND_WITH_IMM || op === WrOpcode.RDMA_WRITE_WITH_IMM;
    if (op === WrOpcode.SEND || op === WrOpcode.SEND_WITH_IMM) {
      h.opcode = base | (first && last ? (imm ? 0x05 : 0x04) : first ? 0x00 : last ? (imm ? 0x03 : 0x02) : 0x01);
      if (last) h.se = (w.sendFlags & SendFlags.SOLICITED) !== 0;
    } else if (op === WrOpcode.SEND_WITH_INV) {
      // RC only: the IETH rides on the last packet (Send Last/Only with Invalidate).
      h.opcode = first && last ? 0x17 : first ? 0x00 : last ? 0x16 : 0x01;
      h.iethRkey = w.invRkey;
      if (last) h.se = (w.sendFlags & SendFlags.SOLICITED) !== 0;
    } else {
      h.opcode = base | (first && last ? (imm ? 0x0b : 0x0a) : first ? 0x06 : last ? (imm ? 0x09 : 0x08) : 0x07);
      if (first) {
        h.rethVa = w.remoteAddr;
        h.rethRkey = w.rkey;
        h.rethDmaLen = w.length;
      }
      if (last && imm) h.se = (w.sendFlags & SendFlags.SOLICITED) !== 0;
    }
    h.immDt = w.immData;
    if (qp.qpType === QpType.UD) {
      const ah = w.ah!;
      peer = ah.peer;
      h.destQp = w.remoteQpn;
      // A Q_Key with the high bit set means "use the QP's own", per the IBTA.
      h.dethQkey = w.remoteQkey & 0x80000000 ? qp.qkey : w.remoteQkey;
      h.dethSrcQp = qp.qpNum;
    }
    if (qp.qpType === QpType.RC) {
      const sq = qp.sq;
      const wantAck =
        (last && (w.signaled || this.probing || ++this.quietMsgs >= ACK_EVERY_MSGS || sq.size * 2 > sq.capacity || qp.state === QpState.SQD)) ||
        (k + 1) % ACK_EVERY === 0 ||
        psnDiff(h.psn, this.acked) >= WINDOW / 2;
      h.ackReq = wantAck;
      if (wantAck) this.quietMsgs = 0;
      else this.unaskedSeq++;
      this.tailUnasked = !wantAck;
    }
    const buf = this.tx.begin();
    if (w.vm) {
      // The payload says where the bytes are; the responder fetches them.
      const n = encodeVmDesc(buf, this.tx.hdrLen, qp.host.mrs, qp.pd, w, 0);
      if (n < 0) {
        this.failLocal(w, WcStatus.LOC_PROT_ERR);
        this.pktIdx = w.npkts;
        this.blocked = true;
        return;
      }
      markVmRef(buf);
      this.tx.end(peer, n);
      this.pktIdx = 1;
      this.advance(psnAdd(h.psn, 1));
      return;
    }
    if (len > 0) {
      if (w.inlineLen >= 0) buf.set(w.inline.subarray(off, off + len), this.tx.hdrLen);
      else if (!gather(qp.host.mrs, qp.pd, w, off, buf, this.tx.hdrLen, len)) {
        // The MR went away under an in-flight WR: a local protection error.
        this.failLocal(w, WcStatus.LOC_PROT_ERR);
        this.pktIdx = w.npkts;
        this.blocked = true;
        return;
      }
    }
    this.tx.end(peer, len);
    this.pktIdx = k + 1;
    this.advance(psnAdd(h.psn, 1));
  }

  /** Copies a by-reference READ's bytes from the responder's region into the WQE's buffers; false when it failed the WQE. */
  private pullReadSource(w: SendWqe, index: number, buf: Uint8Array, off: number, len: number): boolean {
    const qp = this.qp;
    const link = qp.peer?.link;
    // Only a response that came through the peer's own ring may name its memory.
    const pid = link && link.inActive && fromRing.has(buf) ? link.pid : 0;
    let src: Uint8Array | undefined;
    try {
      src = pid === 0 ? undefined : vmSourceBytes(buf, off, len, pid, w.length);
    } catch {
      // process_vm_readv refused or the peer is gone: as a response that could not be used.
      src = undefined;
    }
    if (!src) {
      this.failAt(index, WcStatus.BAD_RESP_ERR);
      return false;
    }
    if (!scatter(qp.host.mrs, qp.pd, w, 0, src, 0, w.length)) {
      this.failAt(index, WcStatus.LOC_PROT_ERR);
      return false;
    }
    return true;
  }

  /** The descriptor of a by-reference READ, through the ring ahead of its request. */
  private sendReadDesc(w: SendWqe, psn: number, peer: Peer): boolean {
    const qp = this.qp;
    const d = this.vmDesc;
    new DataView(d.buffer).setUint32(0, qp.destQpNum);
    new DataView(d.buffer).setUint32(4, psn);
    const n = encodeVmDesc(d, 8, qp.host.mrs, qp.pd, w, Access.LOCAL_WRITE);
    if (n < 0) {
      this.failLocal(w, WcStatus.LOC_PROT_ERR);
      this.pktIdx = w.npkts;
      this.blocked = true;
      return false;
    }
    // A full ring: the request goes anyway, unanswered, and the ACK timeout resends both.
    qp.host.wire.sendReadDesc(peer, d.subarray(0, 8 + n));
    return true;
  }

  private advance(psn: number): void {
    this.psn = psn;
    if (psnDiff(psn, this.maxPsn) > 0) this.maxPsn = psn;
  }

  // ---- completer ----

  /** Retire finished WQEs from the head of the send queue, in order. */
  private retire(): void {
    const qp = this.qp;
    const sq = qp.sq;
    while (sq.head < this.sendIdx) {
      const w = sq.at(sq.head);
      if (!w.done) break;
      sq.head++;
      if (isReadOrAtomic(w.opcode) && w.status === WcStatus.SUCCESS && !w.direct) this.rdAtomicOutstanding--;
      qp.completeSend(w, w.status);
      if (w.status !== WcStatus.SUCCESS) {
        qp.toError();
        return;
      }
    }
    if (qp.state === QpState.SQD) this.checkDrained();
    if (sq.head === this.sendIdx && this.pktIdx === 0) {
      // The retransmit timer is left to run out, unreferenced, rather than
      // cleared: in a ping-pong every message would otherwise pay for a
      // clearTimeout and a setTimeout. onTimer finds nothing outstanding.
      if (this.timer && !this.timerIdle) {
        this.timer.unref();
        this.timerIdle = true;
      }
      // The probe timer, too, runs out (onProbe finds the tail asked for).
      this.tailUnasked = false;
    }
  }

  drained(): boolean {
    return this.qp.sq.head === this.sendIdx && this.pktIdx === 0;
  }

  checkDrained(): void {
    const qp = this.qp;
    if (qp.state !== QpState.SQD || !this.drained()) {
      this.sqdNotified = false;
      return;
    }
    if (!this.sqdNotified && qp.enSqdAsyncNotify) {
      this.sqdNotified = true;
      qp.host.raise({ eventType: EventType.SQ_DRAINED, qp });
    }
  }

  /** Index of the started WQE whose PSN range holds `psn`, or -1. */
  private findWqe(psn: number): number {
    const sq = this.qp.sq;
    const end = this.furthest();
    for (let i = sq.head; i < end; i++) {
      const w = sq.at(i);
      const d = psnDiff(psn, w.psn);
      if (d >= 0 && d < w.npkts) return i;
    }
    return -1;
  }

  private progress(): void {
    this.retryLeft = this.qp.retryCnt;
    this.rnrLeft = this.qp.rnrRetry;
    this.progressSeq++;
    this.retryPsn = -1;
  }

  /**
   * Everything up to and including `psn` is acknowledged. Returns false if a
   * READ or atomic in that range has not had its response: the responses
   * were lost, and the request is sent again (an implicit NAK).
   */
  private ackUpTo(psn: number): boolean {
    if (psnDiff(psn, this.acked) <= 0 || psnDiff(psn, this.maxPsn) >= 0) return true;
    const sq = this.qp.sq;
    const end = Math.min(sq.tail, Math.max(this.sendIdx + (this.pktIdx > 0 ? 1 : 0), this.furthest()));
    let i = sq.head;
    for (; i < end; i++) {
      const w = sq.at(i);
      if (w.done) continue;
      const lastPsn = psnAdd(w.psn, w.npkts - 1);
      if (psnDiff(lastPsn, psn) > 0) break;
      if (isReadOrAtomic(w.opcode)) {
        const resume = psnAdd(w.psn, w.respPkts);
        if (psnDiff(resume, psnAdd(this.acked, 1)) > 0) {
          this.acked = psnAdd(resume, PSN_MASK);
          this.progress();
        }
        // Every later response in flight says the same; re-request once, the timer covers a lost retry.
        if (this.retryPsn !== resume) {
          this.retryPsn = resume;
          this.goBack(i, resume);
        }
        return false;
      }
      w.done = true;
    }
    this.acked = psn;
    this.progress();
    if (psnDiff(psn, this.psn) >= 0) {
      // A rewind resent packets the responder had already taken: skip to what it still needs.
      const next = psnAdd(psn, 1);
      const w = i < sq.tail ? sq.at(i) : undefined;
      this.sendIdx = i;
      this.pktIdx = w && w.started && psnDiff(next, w.psn) > 0 ? psnDiff(next, w.psn) : 0;
      this.psn = next;
    }
    return true;
  }

  /** One past the last WQE that has been started (had PSNs assigned). */
  private furthest(): number {
    const sq = this.qp.sq;
    let i = this.sendIdx;
    while (i < sq.tail && sq.at(i).started) i++;
    return i;
  }

  /** Rewind sending to `psn`, inside WQE `index`. */
  private goBack(index: number, psn: number): void {
    const w = this.qp.sq.at(index);
    this.sendIdx = index;
    this.pktIdx = w.opcode === WrOpcode.RDMA_READ ? w.respPkts : psnDiff(psn, w.psn);
    this.psn = psn;
    this.qp.host.counters.txRetransmits++;
  }

  /** An ACK or NAK (AETH) for `psn`. */
  onAck(p: ParsedPacket): void {
    const qp = this.qp;
    const syn = p.aethSyndrome;
    const kind = syn >>> 5;
    if (kind === 0) {
      // ACK
      if (psnDiff(p.psn, this.acked) <= 0) {
        qp.host.counters.rxStaleResponse++;
        return;
      }
      this.ackUpTo(p.psn);
      this.pump();
      return;
    }
    // A NAK names the PSN it refuses; everything before it is acknowledged.
    if (psnDiff(p.psn, this.acked) <= 0 || psnDiff(p.psn, this.maxPsn) >= 0) {
      qp.host.counters.rxStaleResponse++;
      return;
    }
    if (!this.ackUpTo(psnAdd(p.psn, PSN_MASK))) {
      this.pump();
      return;
    }
    const index = this.findWqe(p.psn);
    if (index < 0) {
      qp.host.counters.rxStaleResponse++;
      return;
    }
    if (kind === 1) {
      // RNR NAK: the responder had no receive WQE. Wait its timer, then resend.
      qp.host.counters.rxRnrNaks++;
      if (this.rnrLeft === 0) return this.failAt(index, WcStatus.RNR_RETRY_EXC_ERR);
      if (this.rnrLeft !== 7) this.rnrLeft--;
      this.goBack(index, p.psn);
      this.rnrWait = true;
      if (this.rnrTimer) clearTimeout(this.rnrTimer);
      const delay = Math.max(rnrTimerUs(syn & 0x1f) / 1000, 0.01);
      this.rnrTimer = setTimeout(() => {
        this.rnrTimer = undefined;
        this.rnrWait = false;
        this.progressSeq++;
        this.pump();
      }, delay);
      return;
    }
    if (kind === 3) {
      const code = syn & 0x1f;
      if (code === 0) {
        // PSN sequence error: resend from the PSN the responder expects.
        this.goBack(index, p.psn);
        this.pump();
        return;
      }
      const status =
        code === 1 ? WcStatus.REM_INV_REQ_ERR : code === 2 ? WcStatus.REM_ACCESS_ERR : code === 3 ? WcStatus.REM_OP_ERR : WcStatus.REM_INV_RD_REQ_ERR;
      return this.failAt(index, status);
    }
    qp.host.counters.rxStaleResponse++;
  }

  /** WQE `index` fails with `status`; the ones before it completed, the ones after will be flushed. */
  private failAt(index: number, status: number): void {
    const qp = this.qp;
    const w = qp.sq.at(index);
    w.done = true;
    w.status = status;
    if (isReadOrAtomic(w.opcode)) this.rdAtomicOutstanding--;
    // Everything before it is done; retire() then moves the QP to ERR and flushes the rest.
    this.sendIdx = Math.max(this.sendIdx, index + 1);
    this.pktIdx = 0;
    this.stop();
    this.retire();
  }

  /** An RDMA READ response packet. */
  onReadResponse(p: ParsedPacket, buf: Uint8Array): void {
    const qp = this.qp;
    const index = this.findWqe(p.psn);
    if (index < 0) {
      qp.host.counters.rxStaleResponse++;
      return;
    }
    const w = qp.sq.at(index);
    if (w.opcode !== WrOpcode.RDMA_READ || w.done) {
      qp.host.counters.rxStaleResponse++;
      return;
    }
    // Responses to this READ imply every earlier request was executed.
    if (!this.ackUpTo(psnAdd(w.psn, PSN_MASK))) {
      this.pump();
      return;
    }
    const expected = psnAdd(w.psn, w.respPkts);
    const d = psnDiff(p.psn, expected);
    if (d < 0) {
      qp.host.counters.rxDuplicate++;
      return;
    }
    if (d > 0) {
      qp.host.counters.rxOutOfSequence++;
      if (this.retryPsn !== expected) {
        this.retryPsn = expected;
        this.goBack(index, expected);
        this.pump();
      }
      return;
    }
    const op = p.opcode;
    const last = op === Opcode.RC_RDMA_READ_RESPONSE_LAST || op === Opcode.RC_RDMA_READ_RESPONSE_ONLY;
    if (w.vm) {
      // By reference: the responder has written the bytes into our buffers
      // itself, or (a non-empty payload) says where in its shared region to
      // copy them from.
      if (!isVmRef(buf) || !last) return this.failAt(index, WcStatus.BAD_RESP_ERR);
      if (p.payloadLength !== 0 && !this.pullReadSource(w, index, buf, p.payloadOffset, p.payloadLength)) return;
      w.respPkts = 1;
      this.acked = p.psn;
      this.progress();
      w.done = true;
      this.retire();
      this.pump();
      return;
    }
    const off = w.respPkts * qp.mtu;
    const remaining = w.length - off;
    const len = p.payloadLength;
    // Each response must be MTU-sized except the last, which must end exactly at the requested length.
    // Whether it opens a response stream (FIRST) does not matter: after a re-request, a late or
    // duplicated response to the earlier request carries the same bytes for the same PSN.
    const lenOk = last ? len === remaining : len === qp.mtu && len < remaining;
    if (!lenOk) return this.failAt(index, WcStatus.BAD_RESP_ERR);
    if (len > 0 && !scatter(qp.host.mrs, qp.pd, w, off, buf, p.payloadOffset, len)) {
      return this.failAt(index, WcStatus.LOC_PROT_ERR);
    }
    w.respPkts++;
    this.acked = p.psn;
    this.progress();
    if (last) {
      w.done = true;
      this.retire();
    }
    this.pump();
  }

  /** An ATOMIC ACKNOWLEDGE: the original value goes to the WQE's 8-byte SGE, in host (little-endian) order. */
  onAtomicAck(p: ParsedPacket): void {
    const qp = this.qp;
    const index = this.findWqe(p.psn);
    const w = index < 0 ? undefined : qp.sq.at(index);
    if (!w || !isAtomic(w.opcode) || w.done) {
      qp.host.counters.rxStaleResponse++;
      return;
    }
    if (!this.ackUpTo(psnAdd(w.psn, PSN_MASK))) {
      this.pump();
      return;
    }
    const tmp = atomicScratch;
    new DataView(tmp.buffer).setBigUint64(0, p.atomicAckOrig, true);
    if (!scatter(qp.host.mrs, qp.pd, w, 0, tmp, 0, 8)) return this.failAt(index, WcStatus.LOC_PROT_ERR);
    w.respPkts = 1;
    w.done = true;
    this.acked = p.psn;
    this.progress();
    this.retire();
    this.pump();
  }

  // ---- timers ----

  private armTimer(): void {
    if (this.drained()) return;
    if (this.timer) {
      if (this.timerIdle) {
        // Idle until this post: the timeout runs from now.
        this.timerIdle = false;
        this.timer.ref();
        this.progressSeq++;
      }
      return;
    }
    this.timerIdle = false;
    const ms = ackTimeoutMs(this.qp.timeout);
    if (ms === 0) return;
    this.timerSeq = this.progressSeq;
    this.quietTicks = 0;
    this.timer = setTimeout(this.onTimer, timerTickMs(ms));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const qp = this.qp;
    if (qp.state !== QpState.RTS && qp.state !== QpState.SQD) return;
    if (this.drained()) return;
    const ms = ackTimeoutMs(qp.timeout);
    const tick = timerTickMs(ms);
    if (this.rnrWait || this.progressSeq !== this.timerSeq) {
      // Progress in this tick (or an RNR wait): the timeout runs from here.
      this.timerSeq = this.progressSeq;
      this.quietTicks = 0;
      this.timer = setTimeout(this.onTimer, tick);
      return;
    }
    if (++this.quietTicks * tick < ms) {
      this.timer = setTimeout(this.onTimer, tick);
      return;
    }
    qp.host.counters.txTimeouts++;
    const sq = qp.sq;
    let index = sq.head;
    while (index < this.sendIdx && sq.at(index).done) index++;
    if (index >= sq.tail) return;
    if (this.retryLeft === 0) return this.failAt(index, WcStatus.RETRY_EXC_ERR);
    this.retryLeft--;
    const w = sq.at(index);
    const from = w.opcode === WrOpcode.RDMA_READ ? psnAdd(w.psn, w.respPkts) : psnDiff(psnAdd(this.acked, 1), w.psn) > 0 ? psnAdd(this.acked, 1) : w.psn;
    this.progressSeq++;
    this.goBack(index, from);
    this.pump();
  };

  /** On ERR: every WQE not yet retired completes with WR_FLUSH_ERR, in order. */
  flush(): void {
    const qp = this.qp;
    const sq = qp.sq;
    this.stop();
    while (sq.head < sq.tail) {
      const w = sq.shift();
      qp.completeSend(w, w.done && w.status !== WcStatus.SUCCESS ? w.status : WcStatus.WR_FLUSH_ERR);
    }
    this.sendIdx = sq.tail;
    this.pktIdx = 0;
    this.rdAtomicOutstanding = 0;
    this.blocked = false;
  }
}

const atomicScratch = new Uint8Array(8);
