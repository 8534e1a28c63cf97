// The soft HCA's same-host fast path. Two wires on one host (same boot, same
// network namespace) stop paying for UDP: each side owns a shared-memory ring
// it reads, and the other side writes its RoCEv2 packets there, byte for byte
// what it would have sent as a datagram (so captures and ICRC checks are
// unchanged). The switch is negotiated per peer with control datagrams on the
// wire's own UDP socket, so nothing above the wire knows:
//
//   A -> B  HELLO {key, pid, name}  A created ring `name`, which A reads
//   B       opens `name`, starts writing its packets to A there, and
//   B -> A  SWITCH                  sent over UDP after B's last datagram
//   A       unlinks `name` (both have it mapped: no leak even if both die)
//           and only then reads the ring, so no packet overtakes one sent
//           earlier by UDP.
//
// Both directions negotiate independently. A peer whose process dies is
// noticed (its pid stops existing, or it marked the ring closed): its rings
// are dropped and traffic to it falls back to UDP, where the transport's
// timers turn the silence into RETRY_EXC_ERR as for any lost peer. A pid
// that stops existing is also reported up (wire.onPeerExit), so the CM can
// do what the dead process's kernel would have: disconnect its connections.
import { isIPv6 } from 'node:net';
import os from 'node:os';
import { ipv6Text } from '../sys/mmsg.js';
import { ipToBytes } from './gid.js';
import { LoopTurns } from '../sys/loop-turns.js';
import { ShmRing } from '../sys/ring.js';
import { ShmSegment, sweepStaleSegments } from '../sys/shm.js';
import { hostIdentity, processExists, sameHostKey } from '../sys/host.js';
import { sysStatus } from '../sys/status.js';
import { vmCanRead, vmProbe } from '../sys/vm-probe.js';
import { copyBytes } from './copy.js';
import { forgetPeerRegions, mapPeerRegion } from './mr-memory.js';
import { fromRing, isVmRef } from './vm-path.js';
import { PeerDirectory, type DirectoryDesc } from './directory.js';
import { sys } from '../sys/load.js';
import type { Peer } from './wire.js';

// The digit is the ring layout's version: a peer with another layout (the
// first, IBALSHM1, polled the ring's head) never links up and stays on UDP.
const MAGIC = Buffer.from('IBALSHM2');
const HELLO = 1;
const SWITCH = 2;
const BYE = 3;
/** Ring bytes per direction: room for a burst of full-MTU packets. */
const RING_CAPACITY = 4 << 20;
const HELLO_RETRY_MS = 50;
const HELLO_TRIES = 20;
const LIVENESS_MS = 200;
/** Packets handled per turn of the event loop before yielding. */
const DRAIN_BUDGET = 512;
/**
 * Time spent per turn before yielding, so the ACKs the transport schedules
 * for the next turn leave while a batch of large by-reference WRITEs is
 * still being copied (otherwise the requester's pipeline drains).
 */
const DRAIN_MS = 0.25;
/**
 * After traffic, poll the ring on each loop turn for a while before
 * sleeping, adaptively between these bounds. A wake-up is expensive on a
 * virtual machine (~270 µs measured here, each way), so an exchange whose
 * round trip once exceeds the poll window makes both sides sleep, every
 * round trip then costs two wake-ups and stays longer than the window: an
 * SDP ping-pong was seen stuck at ~550 µs per round for a hundred rounds,
 * against ~16 µs. So a sleep that ends soon (the peer answered just after
 * we gave up) doubles the window, and a long one (the peer was idle)
 * halves it again (nextPollMs).
 */
export const POLL_MIN_MS = 0.2;
export const POLL_MAX_MS = 2;

/**
 * The poll window after a sleep that ended with `outcome` after `sleptMs`.
 * Only a sleep shorter than four windows grows it (the peer answered not
 * long after we gave up), so traffic that merely arrives every millisecond
 * or two (a heartbeat, a slow client) keeps the short window and costs
 * little CPU; a sleep sixteen windows long shrinks it.
 */
export function nextPollMs(pollMs: number, outcome: string, sleptMs: number, ceiling = POLL_MAX_MS): number {
  if (outcome === 'ok' && sleptMs < 4 * pollMs) return Math.min(ceiling, pollMs * 2);
  if (outcome !== 'ok' || sleptMs > 16 * pollMs) return Math.min(ceiling, Math.max(POLL_MIN_MS, pollMs / 2));
  return Math.min(ceiling, pollMs);
}

/** The window when processes outnumber cores: a brief spin, then sleep. */
export const POLL_OVERSUBSCRIBED_MS = 0.05;

/**
 * The poll window's ceiling for a process exchanging with `peers` local
 * processes on `cores` cores. Polling pays only while every polling process
 * has a core. With more processes than cores (three MPI ranks on two), a
 * process polling its window holds a core a peer needs for real work, and
 * the window grows exactly then, since peers that keep sending end each
 * sleep soon: three ranks flooding each other over the same-host path spent
 * 4x the CPU and 3.4x the time of the same exchange over UDP (2 ms
 * windows); 0.2 ms windows took 1.2x UDP's time, 0.05 ms 1.07x. So the
 * window stays that short when this process and the peers it exchanges with
 * outnumber the cores, as Open MPI yields when a node is oversubscribed.
 * (Processes it does not exchange with are not counted: two unrelated pairs
 * on two cores still poll as pairs.)
 */
export function pollCeilingMs(peers: number, cores: number): number {
  return peers + 1 > cores ? POLL_OVERSUBSCRIBED_MS : POLL_MAX_MS;
}
const CORES = os.availableParallelism();
/**
 * Packets queued in this process when a peer's ring is full; beyond it they
 * drop, as datagrams do at a full socket buffer, and RC resends them. Kept
 * small: a deep queue here would only delay ACKs and retransmissions behind
 * data the peer cannot take yet.
 */
const MAX_PENDING = 256;
/** Packets held for a local peer during the negotiation (IBAL_SOFT_SHM=1). */
const MAX_HELD = 16384;
/** Ring tag of a READ descriptor (tag 0: a RoCEv2 packet). */
const TAG_READ_DESC = 1;
const MAX_READ_DESCS = 256;
/** IBAL_SOFT_SHM=1: how long packets to a local peer wait for the negotiation before going by UDP. */
const HOLD_MS = 500;

interface HelloBody {
  key?: string;
  pid?: number;
  name?: string;
  probe?: string;
  magic?: string;
  vm?: boolean;
  /** The token the sender's wire knows us by (Peer.token). */
  you?: number;
  /** The sender's device directory (directory.ts). */
  dir?: DirectoryDesc;
}

/** What the wire lends the links. */
export interface ShmWireHost {
  readonly address: string;
  readonly port: number;
  sendControl(msg: Buffer, peer: Peer): void;
  /** Sends a packet by UDP, bypassing the links (held packets whose negotiation failed). */
  sendUdp(buf: Buffer, peer: Peer): void;
  /** A packet read from a ring: goes through fault injection and on to the device. */
  receiveFromShm(buf: Buffer, peer: Peer): void;
  peer(address: string, port: number): Peer;
  /** The process behind `peer` has exited (its pid is gone). */
  peerExited(peer: Peer): void;
}

/** One peer's shared-memory state. */
export class PeerLink {
  /** Set once we write to the peer's ring; the wire's send path checks it. */
  out: ShmRing | undefined;
  outSeg: ShmSegment | undefined;
  in: ShmRing | undefined;
  inSeg: ShmSegment | undefined;
  inActive = false;
  pid = 0;
  pending: Buffer[] = [];
  pendingHead = 0;
  waitingSpace = false;
  waitingData = false;
  /** IBAL_SOFT_SHM=1: packets wait in `pending` until the peer's ring is known. */
  holding = false;
  holdTimer: NodeJS.Timeout | undefined;
  helloTries = 0;
  helloTimer: NodeJS.Timeout | undefined;
  pollUntil = 0;
  /** Turns since the ring last had packets (pump reads the clock on every 16th). */
  idleTurns = 0;
  /** The current poll window after traffic (up to pollCeilingMs()), and when the reader last went to sleep. */
  pollMs = POLL_MIN_MS;
  sleptAt = 0;
  /** Polls the inbound ring on each loop turn while traffic flows (created on first use). */
  turns: LoopTurns | undefined;
  dead = false;
  /** READ descriptors the peer sent ahead of its by-reference READ requests, by destination QP and PSN. */
  readonly readDescs = new Map<number, Uint8Array>();
  /** The peer showed it can process_vm_readv/writev on us: large RDMA may go by reference (vm-path.ts). */
  vmOk = false;
  /** We can process_vm_* on the peer (told it in our SWITCH). */
  vmGranted = false;
  /** What the peer's wire calls us: its directory's QP entries name their peer by it. */
  remoteToken = 0;
  /** The peer device's directory, as its HELLO described it, and our mapping of it once made (null: it cannot be). */
  dirDesc: DirectoryDesc | undefined;
  dir: PeerDirectory | null | undefined;
  constructor(readonly peer: Peer) {}
}

export interface ShmLinkCounters {
  linksUp: number;
  txShm: number;
  rxShm: number;
  txPendingDropped: number;
}

let localAddrs: Set<string> | undefined;
function isLocalAddress(address: string): boolean {
  if (address.startsWith('127.') || address === '::1' || address === '::ffff:127.0.0.1') return true;
  if (!localAddrs) {
    localAddrs = new Set();
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) localAddrs.add(a.address);
  }
  return localAddrs.has(address);
}

/**
 * IBAL_SOFT_SHM=0 turns the fast path off; it is on wherever the primitives
 * work. IBAL_SOFT_SHM=1 also holds the first packets to a local peer until
 * the negotiation ends (at most HOLD_MS), so that every packet of a
 * same-host connection takes shared memory (the test suites' shm mode);
 * by default those first packets go by UDP while it runs.
 */
export function shmPathWanted(): boolean {
  if (process.env.IBAL_SOFT_SHM === '0') return false;
  const s = sysStatus();
  return s.shm.on && s.futex.on && s.sameHostKey !== undefined;
}

let swept = false;
/** Rings this process reads (one per local peer), and their ceiling: past it, peers stay on UDP. */
let inboundRings = 0;
const MAX_INBOUND_RINGS = 256;

/**
 * IBAL_SOFT_SHM=1: the links of this process's wires by "address|port".
 * Between two wires of one process the negotiation is a function call, so
 * it is over before the first packet: nothing is held, no retry is spent.
 */
const localLinks = new Map<string, ShmLinks>();
const endpointKey = (address: string, port: number) => `${address}|${port}`;

export class ShmLinks {
  readonly counters: ShmLinkCounters = { linksUp: 0, txShm: 0, rxShm: 0, txPendingDropped: 0 };
  private readonly key: string;
  private readonly strict = process.env.IBAL_SOFT_SHM === '1';
  private readonly links = new Map<Peer, PeerLink>();
  /** Links whose inbound ring is read (an array: drainNow runs on the poll path). */
  private readonly active: PeerLink[] = [];
  private readonly liveness: NodeJS.Timeout;
  private closed = false;
  /** This wire's device's directory, offered in every HELLO (directory.ts). */
  directory: DirectoryDesc | undefined;

  static create(host: ShmWireHost): ShmLinks | undefined {
    if (!shmPathWanted()) return undefined;
    if (!swept) {
      swept = true;
      sweepStaleSegments(); // what crashed processes left behind
    }
    return new ShmLinks(host);
  }

  private readonly self: string;

  private constructor(private readonly host: ShmWireHost) {
    this.key = sameHostKey()!;
    this.liveness = setInterval(() => this.checkPeers(), LIVENESS_MS);
    this.liveness.unref();
    this.self = endpointKey(isIPv6(host.address) ? ipv6Text(ipToBytes(host.address)) : host.address, host.port);
    if (this.strict) localLinks.set(this.self, this);
  }

  /** A new peer of the wire: if it may be on this host, offer it a ring. */
  offer(peer: Peer): void {
    if (this.closed || !isLocalAddress(peer.address)) return;
    const link = this.link(peer);
    if (link.in) return;
    // A bound on what this process maps for its readers, whatever happens.
    if (inboundRings >= MAX_INBOUND_RINGS) return;
    try {
      link.inSeg = ShmSegment.create(ShmRing.bytesFor(RING_CAPACITY));
      link.in = ShmRing.create(link.inSeg.buffer, 0, RING_CAPACITY);
      link.in.dataBell.ref = this.refd;
      inboundRings++;
    } catch {
      link.inSeg?.close();
      link.inSeg = link.in = undefined;
      return; // no shared memory now: UDP it is
    }
    link.helloTries = 0;
    if (this.strict && !link.out && !link.holding) {
      link.holding = true;
      link.holdTimer = setTimeout(() => this.releaseHeld(link), HOLD_MS);
      link.holdTimer.unref();
    }
    this.hello(link);
  }

  /** The negotiation did not finish in time: what was held goes by UDP, and so does what follows. */
  private releaseHeld(link: PeerLink): void {
    link.holding = false;
    link.holdTimer = undefined;
    if (link.out) return;
    const held = link.pending.slice(link.pendingHead);
    link.pending = [];
    link.pendingHead = 0;
    if (!this.closed) for (const b of held) this.host.sendUdp(b, link.peer);
  }

  /** IBAL_SOFT_SHM=1: keeps a packet until the peer's ring is known. */
  hold(link: PeerLink, buf: Uint8Array, len: number): void {
    if (link.pending.length - link.pendingHead >= MAX_HELD) {
      this.counters.txPendingDropped++;
      return;
    }
    link.pending.push(Buffer.from(buf.subarray(0, len)));
  }

  /** Sends `buf[0, len)` through the peer's ring; false when the peer has none. */
  send(link: PeerLink, buf: Uint8Array, len: number): boolean {
    const ring = link.out;
    if (!ring) return false;
    if (link.pending.length > link.pendingHead || !this.tryWrite(ring, buf, len)) {
      if (link.pending.length - link.pendingHead >= MAX_PENDING) {
        this.counters.txPendingDropped++;
        return true;
      }
      link.pending.push(Buffer.from(buf.subarray(0, len)));
      this.waitSpace(link);
      return true;
    }
    this.counters.txShm++;
    return true;
  }

  private tryWrite(ring: ShmRing, buf: Uint8Array, len: number, tag = 0): boolean {
    const at = ring.reserve(len);
    if (at < 0) return false;
    copyBytes(ring.data, at, buf, 0, len);
    ring.commit(tag);
    return true;
  }

  /**
   * Sends the descriptor of a by-reference READ (destination QP, PSN, then
   * the ranges) ahead of the request. False when the ring is full now: the
   * request then goes without it and the responder answers it as a normal
   * READ would be lost (the requester times out and resends both).
   */
  sendReadDesc(link: PeerLink, desc: Uint8Array): boolean {
    const ring = link.out;
    if (!ring || link.pending.length > link.pendingHead) return false;
    return this.tryWrite(ring, desc, desc.length, TAG_READ_DESC);
  }

  /** A control datagram from `peer`. */
  onControl(msg: Buffer, peer: Peer): void {
    if (this.closed) return;
    const kind = msg[MAGIC.length];
    let body: HelloBody = {};
    try {
      body = JSON.parse(msg.subarray(MAGIC.length + 1).toString('utf8')) as typeof body;
    } catch {
      return;
    }
    this.onControlBody(kind!, body, peer);
  }

  private onControlBody(kind: number, body: HelloBody, peer: Peer): void {
    if (this.closed) return;
    if (kind === HELLO) this.onHello(peer, body);
    else if (kind === SWITCH) this.onSwitch(peer, body);
    else if (kind === BYE) {
      const link = this.links.get(peer);
      if (link) this.teardown(link);
    }
  }

  private onHello(peer: Peer, body: HelloBody): void {
    if (body.key !== this.key || !Number.isInteger(body.pid) || typeof body.name !== 'string' || !/^\/ibal-\d+-[0-9a-z]+$/.test(body.name)) return;
    let link = this.link(peer);
    if (link.out && link.pid === body.pid) {
      this.control(peer, SWITCH, { vm: link.vmGranted }); // our SWITCH was lost: say it again
      return;
    }
    if (link.dead || (link.pid && link.pid !== body.pid)) {
      // A new process behind the same address and port.
      this.forget(link);
      link = this.link(peer);
      this.offer(peer);
    }
    if (link.out) return;
    let seg: ShmSegment | undefined;
    try {
      seg = ShmSegment.open(body.name);
      link.out = ShmRing.attach(seg.buffer, 0);
      link.out.spaceBell.ref = this.refd;
      link.outSeg = seg;
      link.pid = body.pid!;
    } catch {
      seg?.close();
      return; // another user's segment, or gone: stay on UDP
    }
    this.counters.linksUp++;
    link.vmGranted = vmCanRead(link.pid, body.probe, body.magic);
    link.remoteToken = Number.isInteger(body.you) ? body.you! >>> 0 : 0;
    const d = body.dir;
    link.dirDesc = d && Number.isInteger(d.fd) && d.fd >= 0 && Number.isInteger(d.hi) && Number.isInteger(d.lo) ? { fd: d.fd, hi: d.hi >>> 0, lo: d.lo >>> 0 } : undefined;
    // Everything we sent by UDP so far precedes this datagram on the socket.
    this.control(peer, SWITCH, { vm: link.vmGranted });
    if (link.holding) {
      link.holding = false;
      clearTimeout(link.holdTimer);
      link.holdTimer = undefined;
    }
    if (link.pending.length > link.pendingHead) this.flushPending(link);
    // The peer offered first, or will now (it heard from us): make sure it
    // has a ring to read from us too.
    if (!link.in) this.offer(peer);
  }

  private onSwitch(peer: Peer, body: HelloBody): void {
    const link = this.links.get(peer);
    if (!link?.in || link.inActive) return;
    link.inActive = true;
    this.active.push(link);
    link.vmOk = body.vm === true;
    if (link.helloTimer) clearTimeout(link.helloTimer);
    link.helloTimer = undefined;
    try {
      link.inSeg!.unlink();
    } catch {
      // already unlinked
    }
    this.schedule(link);
  }

  private hello(link: PeerLink): void {
    if (this.closed || link.inActive || !link.inSeg) return;
    if (link.helloTries++ >= HELLO_TRIES) {
      // Not an ibal peer on this host (or not listening): keep nothing.
      link.in?.close('consumer');
      link.inSeg.close();
      link.in = link.inSeg = undefined;
      inboundRings--;
      link.helloTimer = undefined;
      return;
    }
    const id = hostIdentity()!;
    const p = vmProbe();
    this.control(link.peer, HELLO, { key: this.key, pid: id.pid, name: link.inSeg.name, probe: p?.addr, magic: p?.magic, you: link.peer.token, dir: this.directory });
    link.helloTimer = setTimeout(() => this.hello(link), HELLO_RETRY_MS);
    link.helloTimer.unref();
  }

  private control(peer: Peer, kind: number, body: object): void {
    const local = this.strict ? localLinks.get(endpointKey(peer.address, peer.port)) : undefined;
    if (local && !local.closed) {
      local.onControlBody(kind, body as HelloBody, local.host.peer(this.self.slice(0, this.self.lastIndexOf('|')), this.host.port));
      return;
    }
    const json = Buffer.from(JSON.stringify(body), 'utf8');
    const msg = Buffer.allocUnsafe(MAGIC.length + 1 + json.length);
    MAGIC.copy(msg, 0);
    msg[MAGIC.length] = kind;
    json.copy(msg, MAGIC.length + 1);
    this.host.sendControl(msg, peer);
  }

  private link(peer: Peer): PeerLink {
    let l = this.links.get(peer);
    if (!l) {
      l = new PeerLink(peer);
      this.links.set(peer, l);
      peer.link = l;
    }
    return l;
  }

  // ---- receiving ----------------------------------------------------------

  private schedule(link: PeerLink): void {
    if (this.closed || link.dead) return;
    (link.turns ??= new LoopTurns(() => this.pump(link))).start();
  }

  /** Runs on every loop turn while link.turns is started; stops it when the ring goes quiet. */
  private pump(link: PeerLink): void {
    if (this.closed || link.dead || !link.in || !link.inActive) {
      link.turns?.stop();
      return;
    }
    const ring = link.in;
    const n = this.drain(link, DRAIN_BUDGET);
    if (this.closed || link.dead || link.in !== ring) {
      link.turns?.stop();
      return;
    }
    // The clock is read on every 16th empty turn only: performance.now()
    // allocates its result, and an empty turn takes ~2 µs, so the window
    // (0.2-2 ms) still ends within ~30 µs of its time.
    if (n > 0) {
      link.idleTurns = 0;
      link.pollUntil = performance.now() + link.pollMs;
      return;
    }
    if ((++link.idleTurns & 15) !== 0) return;
    const now = performance.now();
    if (now < link.pollUntil) return;
    link.turns!.stop();
    if (ring.peerClosed) {
      this.teardown(link);
      return;
    }
    // Idle: sleep until the peer rings.
    if (link.waitingData) return;
    link.waitingData = true;
    link.sleptAt = now;
    ring
      .waitData(1000)
      .then(
        (outcome) => {
          link.waitingData = false;
          link.pollMs = nextPollMs(link.pollMs, outcome, performance.now() - link.sleptAt, pollCeilingMs(this.active.length, CORES));
          this.schedule(link);
        },
        () => {
          link.waitingData = false;
          this.teardown(link);
        },
      );
  }

  /**
   * Hands up to `budget` packets of the peer's ring to the device, in
   * order, yielding early only for by-reference copies that take long.
   * Returns how many went up.
   */
  private drain(link: PeerLink, budget: number): number {
    const ring = link.in!;
    let n = 0;
    // The clock starts at the first heavy packet or at the 64th light one,
    // not at the first packet: a read costs ~45 ns here, and most drains
    // hand up one light packet.
    let t0 = -1;
    for (let len = ring.peek(); len >= 0; len = ring.peek()) {
      const buf = Buffer.allocUnsafe(len);
      copyBytes(buf, 0, ring.data, ring.offset, len);
      const tag = ring.tag;
      ring.release();
      if (tag === TAG_READ_DESC) {
        this.storeReadDesc(link, buf);
        continue;
      }
      const heavy = isVmRef(buf);
      if (heavy) {
        fromRing.add(buf);
        if (t0 < 0) t0 = performance.now();
      }
      n++;
      this.counters.rxShm++;
      this.host.receiveFromShm(buf, link.peer);
      if (this.closed || link.dead || link.in !== ring) break;
      if (n >= budget) break;
      if (heavy || (n & 63) === 0) {
        const now = performance.now();
        if (t0 < 0) t0 = now;
        else if (now - t0 > DRAIN_MS) break;
      }
    }
    return n;
  }

  /**
   * Manual progress (the poll path): drains every active inbound ring now,
   * synchronously, instead of on the next turn of the event loop. A soft
   * HCA has no engine of its own between calls; a caller spinning on
   * ibv_poll_cq is what moves its packets, as with libfabric's
   * FI_PROGRESS_MANUAL providers. Returns the packets handled.
   */
  drainNow(budget = DRAIN_BUDGET): number {
    if (this.closed) return 0;
    let n = 0;
    const active = this.active;
    for (let i = 0; i < active.length; i++) {
      const link = active[i]!;
      if (link.dead || !link.in || !link.inActive) continue;
      n += this.drain(link, budget);
      if (this.closed) break;
    }
    return n;
  }

  private storeReadDesc(link: PeerLink, buf: Buffer): void {
    if (buf.length < 8) return;
    const key = buf.readUInt32BE(0) * 0x1000000 + (buf.readUInt32BE(4) & 0xffffff);
    link.readDescs.delete(key);
    link.readDescs.set(key, buf.subarray(8));
    // Kept for resent requests; the oldest go first.
    if (link.readDescs.size > MAX_READ_DESCS) link.readDescs.delete(link.readDescs.keys().next().value!);
  }

  // ---- a full ring ----------------------------------------------------------

  private waitSpace(link: PeerLink): void {
    if (link.waitingSpace || !link.out) return;
    link.waitingSpace = true;
    const ring = link.out;
    ring.waitSpace(1000).then(
      () => {
        link.waitingSpace = false;
        this.flushPending(link);
      },
      () => {
        link.waitingSpace = false;
        this.teardown(link);
      },
    );
  }

  private flushPending(link: PeerLink): void {
    const ring = link.out;
    if (!ring || this.closed) return;
    while (link.pendingHead < link.pending.length) {
      const b = link.pending[link.pendingHead]!;
      if (!this.tryWrite(ring, b, b.length)) break;
      this.counters.txShm++;
      link.pendingHead++;
    }
    if (link.pendingHead === link.pending.length) {
      link.pending = [];
      link.pendingHead = 0;
    } else {
      this.waitSpace(link);
    }
  }

  // ---- peers going away -----------------------------------------------------

  private checkPeers(): void {
    for (const link of this.links.values()) {
      if (link.dead || !link.pid) continue;
      if (!processExists(link.pid)) {
        this.teardown(link);
        this.host.peerExited(link.peer);
      } else if (link.out?.peerClosed) this.teardown(link);
    }
  }

  /** Drops both rings of a peer; its traffic falls back to UDP. */
  private teardown(link: PeerLink): void {
    if (link.dead) return;
    link.dead = true;
    if (link.helloTimer) clearTimeout(link.helloTimer);
    link.helloTimer = undefined;
    if (link.holdTimer) clearTimeout(link.holdTimer);
    link.holdTimer = undefined;
    link.holding = false;
    if (link.out) this.counters.linksUp--;
    link.out?.close('producer');
    link.in?.close('consumer');
    link.outSeg?.close();
    if (link.inSeg) inboundRings--;
    link.inSeg?.close();
    link.out = link.in = undefined;
    link.outSeg = link.inSeg = undefined;
    if (link.inActive) this.active.splice(this.active.indexOf(link), 1);
    if (link.pid) forgetPeerRegions(link.pid);
    if (link.dir) sys().detach(link.dir.mapping.buffer as ArrayBuffer);
    link.dir = link.dirDesc = undefined;
    link.turns?.close();
    link.turns = undefined;
    link.inActive = false;
    link.pending = [];
    link.pendingHead = 0;
  }

  /** The wire dropped `peer` from its cache: drop its link too (a failed or never-started negotiation's). */
  forgetPeer(peer: Peer): void {
    const l = this.links.get(peer);
    if (l) this.forget(l);
  }

  private forget(link: PeerLink): void {
    this.teardown(link);
    this.links.delete(link.peer);
    if (link.peer.link === link) link.peer.link = undefined;
  }

  private refd = true;

  /**
   * Whether the links' sleeping waits keep the event loop alive (the
   * device's ref()/unref()): when not, they still wake while the process
   * runs for something else.
   */
  setRef(on: boolean): void {
    this.refd = on;
    for (const link of this.links.values()) {
      if (link.in) link.in.dataBell.ref = on;
      if (link.out) link.out.spaceBell.ref = on;
    }
  }

  /**
   * The directory of the device behind `link`, mapped on first use; only
   * for a peer whose memory we showed we may reach (the mapping goes
   * through /proc/<pid>/fd, which asks the kernel for the same access).
   */
  directoryOf(link: PeerLink): PeerDirectory | undefined {
    if (link.dir === undefined) {
      const d = link.dirDesc;
      const m = d && link.vmGranted && link.out && !link.dead ? mapPeerRegion(link.pid, d.fd, d.hi, d.lo) : undefined;
      link.dir = (m && PeerDirectory.of(m)) ?? null;
      if (m && !link.dir) sys().detach(m.buffer as ArrayBuffer);
    }
    return link.dir ?? undefined;
  }

  /** Whether packets to `peer` currently go through shared memory. */
  usesShm(peer: Peer): boolean {
    return !!this.links.get(peer)?.out;
  }

  close(): void {
    if (this.closed) return;
    for (const link of this.links.values()) {
      if (link.out) this.control(link.peer, BYE, {});
      this.teardown(link);
    }
    this.closed = true;
    if (localLinks.get(this.self) === this) localLinks.delete(this.self);
    clearInterval(this.liveness);
    this.links.clear();
  }
}

/** True for the wire's control datagrams (never a RoCEv2 packet we accept: opcode 0x49 is RD). */
export function isShmControl(msg: Uint8Array): boolean {
  if (msg.length < MAGIC.length + 1) return false;
  for (let i = 0; i < MAGIC.length; i++) if (msg[i] !== MAGIC[i]) return false;
  return true;
}
