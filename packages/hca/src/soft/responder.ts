import { Access, EventType, QpState, QpType, WcFlags, WcOpcode, WcStatus } from '../enums.js';
import { Opcode } from '../packet/opcode.js';
import type { ParsedPacket } from '../packet/packet.js';
import { psnAdd, psnDiff } from './psn.js';
import { scatter } from './sgl.js';
import type { SoftQp } from './qp.js';
import { Tx } from './tx.js';
import type { RecvWqe } from './wqe.js';
import type { Peer } from './wire.js';
import { VM_MIN_BYTES, VmResult, encodeVmSource, fromRing, isVmRef, markVmRef, vmMove } from './vm-path.js';
import { sharedRegionOf } from './mr-memory.js';

/** NAK codes of the AETH (IBTA 9.7.5.2.2). */
const NAK_PSN_SEQ = 0;
const NAK_INV_REQ = 1;
const NAK_REM_ACCESS = 2;
const NAK_REM_OP = 3;
/** "No credit count": rxe answers with the same. */
const ACK_UNLIMITED = 0x1f;

const enum Kind {
  None,
  Send,
  Write,
}

/** A READ or atomic the responder executed, kept to answer a duplicate request. */
class RdAtomicResource {
  psn = 0;
  npkts = 0;
  atomic = false;
  orig = 0n;
  valid = false;
}

/**
 * The receive side of a QP (rxe_resp.c): PSN checking, duplicate detection,
 * execution of SEND, WRITE, READ and atomics, and ACK generation. ACKs are
 * coalesced: requests asking for one set a flag and a single ACK for the
 * newest PSN goes out once the current batch of datagrams is processed.
 */
export class Responder {
  /** Expected PSN. */
  epsn = 0;
  private msn = 0;
  private nakSent = false;
  /** Message in progress. */
  private kind: Kind = Kind.None;
  private rcv: RecvWqe | undefined;
  /** UC: the receive WQE of an abandoned message, first in line for the next one. */
  private spare: RecvWqe | undefined;
  private rcvOff = 0;
  private wrBuf: Uint8Array | undefined;
  private wrOff = 0;
  private wrLeft = 0;
  private wrLen = 0;
  /** UC: a packet of the current message was lost; drop until the next FIRST/ONLY. */
  private ucDropping = false;
  private ackPending = false;
  private ackScheduled: NodeJS.Immediate | undefined;
  /** Handed to the device's manual-progress drain, which sends it when the drain ends. */
  private ackDeferred = false;
  private resources: RdAtomicResource[] = [];
  private resNext = 0;
  private readonly tx: Tx;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);

  constructor(private readonly qp: SoftQp) {
    this.tx = new Tx(qp.host.wire);
  }

  start(rqPsn: number): void {
    this.epsn = rqPsn;
    this.msn = 0;
    this.nakSent = false;
    this.kind = Kind.None;
    const n = Math.max(1, this.qp.maxDestRdAtomic);
    this.resources = Array.from({ length: n }, () => new RdAtomicResource());
    this.resNext = 0;
  }

  reset(): void {
    this.stop();
    this.kind = Kind.None;
    this.rcv = this.spare = undefined;
  }

  /**
   * Sends a coalesced ACK that is still waiting for its setImmediate. On
   * destroy the messages it covers were executed and completed here; the
   * peer must hear so or it retries into RETRY_EXC_ERR.
   */
  flushPendingAck(): void {
    this.ackDeferred = false;
    if (this.ackScheduled) clearImmediate(this.ackScheduled);
    this.flushAck();
  }

  stop(): void {
    if (this.ackScheduled) clearImmediate(this.ackScheduled);
    this.ackScheduled = undefined;
    this.ackPending = false;
  }

  /** The receive WQE of a message cut short by ERR completes first, with WR_FLUSH_ERR. */
  flushInProgress(): void {
    for (const w of [this.rcv, this.spare]) {
      if (w) this.qp.completeRecv(w, WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, 0, 0, 0, false);
    }
    this.rcv = this.spare = undefined;
    this.kind = Kind.None;
  }

  /** A request packet for this QP (any opcode that is not a response). */
  onRequest(p: ParsedPacket, buf: Uint8Array, peer: Peer): void {
    const qp = this.qp;
    if (qp.qpType === QpType.UD) return this.onUd(p, buf, peer);
    if (qp.peer && peer !== qp.peer && !sameAddress(peer, qp.peer)) {
      qp.host.counters.rxWrongTransport++;
      return;
    }
    const d = psnDiff(p.psn, this.epsn);
    if (qp.qpType === QpType.UC) return this.onUc(p, buf, d);
    if (d > 0) {
      // Something before this packet was lost: ask once for a resend from epsn.
      qp.host.counters.rxOutOfSequence++;
      if (!this.nakSent) {
        this.nakSent = true;
        qp.host.counters.txSeqNaks++;
        this.sendNak(NAK_PSN_SEQ, this.epsn);
      }
      return;
    }
    if (d < 0) return this.onDuplicate(p, buf);
    this.nakSent = false;
    this.execute(p, buf);
  }

  private execute(p: ParsedPacket, buf: Uint8Array): void {
    const op = p.opcode & 0x1f;
    if (op <= 0x05) return this.onSend(p, buf, op, false);
    // Send Last / Only with Invalidate: a SEND's last packet that also invalidates the IETH's rkey.
    if (op === 0x16 || op === 0x17) return this.onSend(p, buf, op === 0x16 ? 0x02 : 0x04, true);
    if (op <= 0x0b) return this.onWrite(p, buf, op);
    if (op === 0x0c) return isVmRef(buf) ? this.onVmRead(p, buf, false) : this.onRead(p, false);
    if (op === 0x13 || op === 0x14) return this.onAtomic(p, false);
    this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
  }

  private onSend(p: ParsedPacket, buf: Uint8Array, op: number, inv: boolean): void {
    const qp = this.qp;
    const first = op === 0x00 || op >= 0x04;
    const last = op >= 0x02;
    if (first !== (this.kind === Kind.None)) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    if (first) {
      const w = this.spare ?? qp.takeRecv();
      this.spare = undefined;
      if (!w) return this.rnr(p.psn);
      this.rcv = w;
      this.rcvOff = 0;
      this.kind = Kind.Send;
    } else if (this.kind !== Kind.Send) {
      return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    }
    if (!this.lengthOk(p, first, last)) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    const w = this.rcv!;
    const len = p.payloadLength;
    if (this.rcvOff + len > w.length) return this.recvError(p.psn, WcStatus.LOC_LEN_ERR, NAK_INV_REQ);
    if (len > 0 && !scatter(qp.host.mrs, qp.pd, w, this.rcvOff, buf, p.payloadOffset, len)) {
      return this.recvError(p.psn, WcStatus.LOC_PROT_ERR, NAK_REM_OP);
    }
    this.rcvOff += len;
    this.epsn = psnAdd(this.epsn, 1);
    if (last) {
      const imm = op === 0x03 || op === 0x05;
      // Only a type 2 window tied to this QP, in its PD, may be invalidated by the peer (rxe answers anything else as we do).
      if (inv && !qp.host.mrs.mws.invalidate(p.iethRkey, qp.pd, qp)) return this.recvError(p.psn, WcStatus.REM_INV_REQ_ERR, NAK_INV_REQ);
      this.rcv = undefined;
      this.kind = Kind.None;
      this.msn = (this.msn + 1) & 0xffffff;
      qp.completeRecv(w, WcStatus.SUCCESS, WcOpcode.RECV, this.rcvOff, imm ? p.immDt : inv ? p.iethRkey : 0, imm ? WcFlags.WITH_IMM : inv ? WcFlags.WITH_INV : 0, qp.destQpNum, p.se);
    }
    if (p.ackReq) this.scheduleAck();
  }

  /** Middle packets carry exactly one MTU; first packets of multi-packet messages too; no packet exceeds it. */
  private lengthOk(p: ParsedPacket, _first: boolean, last: boolean): boolean {
    const mtu = this.qp.mtu;
    const len = p.payloadLength;
    return last ? len <= mtu : len === mtu;
  }

  private onWrite(p: ParsedPacket, buf: Uint8Array, op: number): void {
    if (isVmRef(buf)) return this.onVmWrite(p, buf, op);
    const qp = this.qp;
    const first = op === 0x06 || op >= 0x0a;
    const last = op === 0x08 || op === 0x09 || op >= 0x0a;
    const imm = op === 0x09 || op === 0x0b;
    if (first !== (this.kind === Kind.None) || (!first && this.kind !== Kind.Write)) {
      return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    }
    // WRITE with immediate consumes a receive WQE: without one, RNR before touching memory.
    if (imm && !qp.hasRecv()) return this.rnr(p.psn);
    if (first) {
      if (!(qp.accessFlags & Access.REMOTE_WRITE)) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
      const off = qp.host.mrs.resolve(p.rethRkey, qp.pd, p.rethVa, p.rethDmaLen, Access.REMOTE_WRITE, qp);
      if (off < 0) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
      this.wrBuf = p.rethDmaLen > 0 ? qp.host.mrs.bufferOf(p.rethRkey) : undefined;
      this.wrOff = off;
      this.wrLeft = p.rethDmaLen;
      this.wrLen = p.rethDmaLen;
      this.kind = Kind.Write;
    }
    const len = p.payloadLength;
    if (!this.lengthOk(p, first, last) || len > this.wrLeft || (last && len !== this.wrLeft)) {
      return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    }
    if (len > 0) this.wrBuf!.set(buf.subarray(p.payloadOffset, p.payloadOffset + len), this.wrOff);
    this.wrOff += len;
    this.wrLeft -= len;
    this.epsn = psnAdd(this.epsn, 1);
    if (last) {
      this.kind = Kind.None;
      this.wrBuf = undefined;
      this.msn = (this.msn + 1) & 0xffffff;
      if (imm) {
        const w = qp.takeRecv()!;
        qp.completeRecv(w, WcStatus.SUCCESS, WcOpcode.RECV_RDMA_WITH_IMM, this.wrLen, p.immDt, WcFlags.WITH_IMM, qp.destQpNum, p.se);
      }
    }
    if (p.ackReq) this.scheduleAck();
  }

  /**
   * The pid of the same-host peer process whose ring brought `buf`, or 0 if
   * the packet did not come that way: by-reference payloads are honoured
   * only from there (vm-path.ts).
   */
  private vmPeerPid(buf: Uint8Array): number {
    const link = this.qp.peer?.link;
    return link && link.inActive && fromRing.has(buf) ? link.pid : 0;
  }

  /** A by-reference WRITE ONLY: the same checks as for packets, then one copy from the requester's memory. */
  private onVmWrite(p: ParsedPacket, buf: Uint8Array, op: number): void {
    const qp = this.qp;
    const imm = op === 0x0b;
    const pid = this.vmPeerPid(buf);
    if ((op !== 0x0a && op !== 0x0b) || this.kind !== Kind.None || qp.qpType !== QpType.RC || pid === 0) {
      return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    }
    if (imm && !qp.hasRecv()) return this.rnr(p.psn);
    if (!(qp.accessFlags & Access.REMOTE_WRITE)) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    const off = qp.host.mrs.resolve(p.rethRkey, qp.pd, p.rethVa, p.rethDmaLen, Access.REMOTE_WRITE, qp);
    if (off < 0) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    if (p.rethDmaLen > 0) {
      const r = vmMove(true, buf, p.payloadOffset, p.payloadLength, pid, qp.host.mrs.bufferOf(p.rethRkey), off, p.rethDmaLen);
      if (r === VmResult.GONE) return; // the requester died: nobody to answer
      if (r !== VmResult.OK) return this.fail(p.psn, r === VmResult.BAD_DESC ? NAK_INV_REQ : NAK_REM_OP, EventType.QP_REQ_ERR);
    }
    this.epsn = psnAdd(this.epsn, 1);
    this.msn = (this.msn + 1) & 0xffffff;
    if (imm) {
      const w = qp.takeRecv()!;
      qp.completeRecv(w, WcStatus.SUCCESS, WcOpcode.RECV_RDMA_WITH_IMM, p.rethDmaLen, p.immDt, WcFlags.WITH_IMM, qp.destQpNum, p.se);
    }
    if (p.ackReq) this.scheduleAck();
  }

  /**
   * A by-reference READ: the same checks as for a READ, then one copy into
   * the requester's buffers (named by the descriptor it sent ahead through
   * the ring), answered by an empty READ RESPONSE ONLY with the mark. From a
   * shared region, when the requester showed it can reach this process, the
   * response instead says where the bytes are and the requester copies them
   * (vm-path.ts, encodeVmSource).
   */
  private onVmRead(p: ParsedPacket, buf: Uint8Array, duplicate: boolean): void {
    const qp = this.qp;
    const len = p.rethDmaLen;
    const pid = this.vmPeerPid(buf);
    if (pid === 0 || (!duplicate && qp.maxDestRdAtomic === 0)) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    if (!(qp.accessFlags & Access.REMOTE_READ)) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    const off = qp.host.mrs.resolve(p.rethRkey, qp.pd, p.rethVa, len, Access.REMOTE_READ, qp);
    if (off < 0) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    // The descriptor went through the ring ahead of the request; if it was
    // dropped (ring full), stay silent: the requester resends both.
    const link = qp.peer!.link!;
    const desc = link.readDescs.get(qp.qpNum * 0x1000000 + p.psn);
    if (!desc) return;
    const mem = qp.host.mrs.bufferOf(p.rethRkey);
    const offer = len >= VM_MIN_BYTES && link.vmOk && sharedRegionOf(mem) !== undefined;
    if (len > 0 && !offer) {
      const r = vmMove(false, desc, 0, desc.length, pid, mem, off, len);
      if (r === VmResult.GONE) return;
      if (r !== VmResult.OK) return this.fail(p.psn, r === VmResult.BAD_DESC ? NAK_INV_REQ : NAK_REM_OP, EventType.QP_REQ_ERR);
    }
    if (!duplicate) {
      const r = this.resources[this.resNext]!;
      this.resNext = (this.resNext + 1) % this.resources.length;
      r.psn = p.psn;
      r.npkts = 1;
      r.atomic = false;
      r.valid = true;
      this.epsn = psnAdd(this.epsn, 1);
      this.msn = (this.msn + 1) & 0xffffff;
    }
    const h = this.tx.h;
    h.destQp = qp.destQpNum;
    h.se = false;
    h.ackReq = false;
    h.aethSyndrome = ACK_UNLIMITED;
    h.aethMsn = this.msn;
    h.opcode = Opcode.RC_RDMA_READ_RESPONSE_ONLY;
    h.psn = p.psn;
    const out = this.tx.begin();
    markVmRef(out);
    this.tx.end(qp.peer!, offer ? encodeVmSource(out, this.tx.hdrLen, mem, off) : 0);
  }

  private onRead(p: ParsedPacket, duplicate: boolean): void {
    const qp = this.qp;
    const len = p.rethDmaLen;
    const npkts = Math.max(1, Math.ceil(len / qp.mtu));
    if (!duplicate && qp.maxDestRdAtomic === 0) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    if (!(qp.accessFlags & Access.REMOTE_READ)) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    const off = qp.host.mrs.resolve(p.rethRkey, qp.pd, p.rethVa, len, Access.REMOTE_READ, qp);
    if (off < 0) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    if (!duplicate) {
      const r = this.resources[this.resNext]!;
      this.resNext = (this.resNext + 1) % this.resources.length;
      r.psn = p.psn;
      r.npkts = npkts;
      r.atomic = false;
      r.valid = true;
      this.epsn = psnAdd(this.epsn, npkts);
      this.msn = (this.msn + 1) & 0xffffff;
    }
    const mem = len > 0 ? qp.host.mrs.bufferOf(p.rethRkey) : undefined;
    const h = this.tx.h;
    h.destQp = qp.destQpNum;
    h.se = false;
    h.ackReq = false;
    h.aethSyndrome = ACK_UNLIMITED;
    h.aethMsn = this.msn;
    for (let k = 0; k < npkts; k++) {
      const first = k === 0;
      const last = k === npkts - 1;
      h.opcode = first && last
        ? Opcode.RC_RDMA_READ_RESPONSE_ONLY
        : first
          ? Opcode.RC_RDMA_READ_RESPONSE_FIRST
          : last
            ? Opcode.RC_RDMA_READ_RESPONSE_LAST
            : Opcode.RC_RDMA_READ_RESPONSE_MIDDLE;
      h.psn = psnAdd(p.psn, k);
      const n = last ? len - k * qp.mtu : qp.mtu;
      this.tx.sendBytes(qp.peer!, mem, off + k * qp.mtu, n);
    }
  }

  private onAtomic(p: ParsedPacket, duplicate: boolean): void {
    const qp = this.qp;
    if (duplicate) {
      // Never execute an atomic twice: answer from the saved result, or not at all.
      const r = this.findResource(p.psn);
      if (r && r.atomic) this.sendAtomicAck(p.psn, r.orig);
      else qp.host.counters.rxDuplicate++;
      return;
    }
    if (qp.maxDestRdAtomic === 0) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    if (p.atomicVa % 8 !== 0) return this.fail(p.psn, NAK_INV_REQ, EventType.QP_REQ_ERR);
    if (!(qp.accessFlags & Access.REMOTE_ATOMIC)) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    const off = qp.host.mrs.resolve(p.atomicRkey, qp.pd, p.atomicVa, 8, Access.REMOTE_ATOMIC, qp);
    if (off < 0) return this.fail(p.psn, NAK_REM_ACCESS, EventType.QP_ACCESS_ERR);
    const mem = qp.host.mrs.bufferOf(p.atomicRkey);
    // Atomics operate on host-order (little-endian here) 64-bit words, as an HCA does on host memory.
    this.scratch.set(mem.subarray(off, off + 8));
    const orig = this.scratchView.getBigUint64(0, true);
    let next: bigint;
    if ((p.opcode & 0x1f) === 0x13) next = orig === p.atomicCompare ? p.atomicSwapAdd : orig;
    else next = BigInt.asUintN(64, orig + p.atomicSwapAdd);
    this.scratchView.setBigUint64(0, next, true);
    mem.set(this.scratch, off);
    const r = this.resources[this.resNext]!;
    this.resNext = (this.resNext + 1) % this.resources.length;
    r.psn = p.psn;
    r.npkts = 1;
    r.atomic = true;
    r.orig = orig;
    r.valid = true;
    this.epsn = psnAdd(this.epsn, 1);
    this.msn = (this.msn + 1) & 0xffffff;
    this.sendAtomicAck(p.psn, orig);
  }

  private findResource(psn: number): RdAtomicResource | undefined {
    for (const r of this.resources) {
      if (!r.valid) continue;
      const d = psnDiff(psn, r.psn);
      if (d >= 0 && d < r.npkts) return r;
    }
    return undefined;
  }

  private onDuplicate(p: ParsedPacket, _buf: Uint8Array): void {
    const qp = this.qp;
    qp.host.counters.rxDuplicate++;
    const op = p.opcode & 0x1f;
    if (op === 0x0c) {
      // Replay the READ from the PSN asked for, if it is one we executed; memory is read afresh, as the IBTA allows.
      if (this.findResource(p.psn)) {
        if (isVmRef(_buf)) this.onVmRead(p, _buf, true);
        else this.onRead(p, true);
      }
      return;
    }
    if (op === 0x13 || op === 0x14) return this.onAtomic(p, true);
    // A duplicate SEND or WRITE is not executed again; re-ACK so the requester stops resending it.
    this.scheduleAck();
  }

  private onUc(p: ParsedPacket, buf: Uint8Array, d: number): void {
    const op = p.opcode & 0x1f;
    const first = op === 0x00 || op === 0x04 || op === 0x05 || op === 0x06 || op === 0x0a || op === 0x0b;
    if (d !== 0 || this.ucDropping) {
      if (!first) {
        // UC has no retransmission: the rest of a message with a lost packet is dropped.
        this.qp.host.counters.rxOutOfSequence++;
        this.ucDropping = true;
        this.abandonUc();
        return;
      }
      this.abandonUc();
      this.epsn = p.psn;
      this.ucDropping = false;
    }
    if (op <= 0x05) {
      if (first && !this.spare && !this.qp.hasRecv()) {
        this.qp.host.counters.rxNoRecv++;
        this.ucDropping = true;
        this.epsn = psnAdd(p.psn, 1);
        return;
      }
      return this.onSend(p, buf, op, false);
    }
    if (op <= 0x0b) return this.onWrite(p, buf, op);
    this.qp.host.counters.rxWrongTransport++;
  }

  /** Drop a partly received UC message; its receive WQE serves the next one, as the IBTA says. */
  private abandonUc(): void {
    if (this.kind === Kind.Send && this.rcv) this.spare = this.rcv;
    this.rcv = undefined;
    this.kind = Kind.None;
    this.wrBuf = undefined;
  }

  /** A copy of a packet to a multicast group this UD QP is attached to: its GRH names the group as destination. */
  onGroup(p: ParsedPacket, buf: Uint8Array, peer: Peer, group: Uint8Array): void {
    this.onUd(p, buf, peer, group);
  }

  private onUd(p: ParsedPacket, buf: Uint8Array, peer: Peer, dst?: Uint8Array): void {
    const qp = this.qp;
    const op = p.opcode;
    if (op !== Opcode.UD_SEND_ONLY && op !== Opcode.UD_SEND_ONLY_WITH_IMMEDIATE) {
      qp.host.counters.rxWrongTransport++;
      return;
    }
    if (p.dethQkey !== qp.qkey) {
      qp.host.counters.rxBadQkey++;
      return;
    }
    const w = qp.takeRecv();
    if (!w) {
      qp.host.counters.rxNoRecv++;
      return;
    }
    const len = p.payloadLength;
    const imm = op === Opcode.UD_SEND_ONLY_WITH_IMMEDIATE;
    const flags = WcFlags.GRH | (imm ? WcFlags.WITH_IMM : 0);
    if (40 + len > w.length) {
      qp.completeRecv(w, WcStatus.LOC_LEN_ERR, WcOpcode.RECV, 0, 0, flags, p.dethSrcQp, p.se);
      return;
    }
    // The first 40 bytes of a UD receive hold the GRH; for RoCEv2 over IPv4
    // that is the IPv4 header in its last 20 bytes, as rxe lays it out.
    const grh = udGrh(peer, dst ?? qp.host.wire.addr, p.totalLength);
    if (!scatter(qp.host.mrs, qp.pd, w, 0, grh, 0, 40) || (len > 0 && !scatter(qp.host.mrs, qp.pd, w, 40, buf, p.payloadOffset, len))) {
      qp.completeRecv(w, WcStatus.LOC_PROT_ERR, WcOpcode.RECV, 0, 0, flags, p.dethSrcQp, p.se);
      qp.toError();
      return;
    }
    qp.completeRecv(w, WcStatus.SUCCESS, WcOpcode.RECV, 40 + len, imm ? p.immDt : 0, flags, p.dethSrcQp, p.se);
  }

  // ---- responses ----

  private rnr(psn: number): void {
    this.qp.host.counters.txRnrNaks++;
    this.sendAeth(Opcode.RC_ACKNOWLEDGE, psn, (1 << 5) | (this.qp.minRnrTimer & 0x1f));
  }

  private sendNak(code: number, psn: number): void {
    this.sendAeth(Opcode.RC_ACKNOWLEDGE, psn, (3 << 5) | code);
  }

  /**
   * A request the responder must refuse: NAK it and, for RC, enter ERR (an
   * IBTA responder class B/C error), raising `event` since no completion on
   * this side reports it.
   */
  private fail(psn: number, code: number, event: number): void {
    const qp = this.qp;
    if (qp.qpType !== QpType.RC) {
      this.qp.host.counters.rxWrongTransport++;
      this.abandonUc();
      this.ucDropping = true;
      return;
    }
    qp.host.counters.txErrNaks++;
    this.sendNak(code, psn);
    qp.toError(event);
  }

  /** A receive WQE that could not take its message completes with `status`, the requester gets a NAK. */
  private recvError(psn: number, status: number, code: number): void {
    const qp = this.qp;
    const w = this.rcv;
    this.rcv = undefined;
    this.kind = Kind.None;
    if (w) qp.completeRecv(w, status, WcOpcode.RECV, 0, 0, 0, qp.destQpNum, false);
    if (qp.qpType === QpType.RC) {
      qp.host.counters.txErrNaks++;
      this.sendNak(code, psn);
    }
    qp.toError();
  }

  private scheduleAck(): void {
    this.ackPending = true;
    if (this.ackDeferred) return;
    if (this.qp.host.deferAck(this)) {
      this.ackDeferred = true;
      return;
    }
    if (!this.ackScheduled) this.ackScheduled = setImmediate(this.flushAck);
  }

  private readonly flushAck = (): void => {
    this.ackScheduled = undefined;
    if (!this.ackPending) return;
    this.ackPending = false;
    const qp = this.qp;
    if (qp.state === QpState.RESET || qp.state === QpState.ERR || !qp.peer) return;
    this.sendAeth(Opcode.RC_ACKNOWLEDGE, psnAdd(this.epsn, 0xffffff), ACK_UNLIMITED);
  };

  private sendAeth(opcode: number, psn: number, syndrome: number): void {
    const qp = this.qp;
    if (!qp.peer) return;
    const h = this.tx.h;
    h.opcode = opcode;
    h.destQp = qp.destQpNum;
    h.psn = psn;
    h.se = false;
    h.ackReq = false;
    h.aethSyndrome = syndrome;
    h.aethMsn = this.msn;
    this.tx.sendBytes(qp.peer, undefined, 0, 0);
  }

  private sendAtomicAck(psn: number, orig: bigint): void {
    const h = this.tx.h;
    h.atomicAckOrig = orig;
    this.sendAeth(Opcode.RC_ATOMIC_ACKNOWLEDGE, psn, ACK_UNLIMITED);
  }
}

function sameAddress(a: Peer, b: Peer): boolean {
  if (a.port !== b.port || a.addr.length !== b.addr.length) return false;
  for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return false;
  return true;
}

const grhBuf = new Uint8Array(40);

/** The 40-byte GRH area of a UD receive, reconstructed from the datagram's addresses. */
function udGrh(peer: Peer, local: Uint8Array, roceLen: number): Uint8Array {
  grhBuf.fill(0);
  if (peer.family === 4) {
    const ip = grhBuf.subarray(20);
    const total = 20 + 8 + roceLen;
    ip[0] = 0x45;
    ip[2] = total >>> 8;
    ip[3] = total & 0xff;
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip.set(peer.addr, 12);
    ip.set(local, 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (ip[i]! << 8) | ip[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    ip[10] = c >>> 8;
    ip[11] = c & 0xff;
  } else {
    const pl = 8 + roceLen;
    grhBuf[0] = 0x60;
    grhBuf[4] = pl >>> 8;
    grhBuf[5] = pl & 0xff;
    grhBuf[6] = 17;
    grhBuf[7] = 64;
    grhBuf.set(peer.addr, 8);
    grhBuf.set(local, 24);
  }
  return grhBuf;
}
