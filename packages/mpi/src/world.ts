// The world: this process's place in the job, the bootstrap connection, the
// transports to every peer and the progress engine they feed.
//
// Wire-up takes four fences on the rendezvous:
//   1. every rank publishes its host key (boot id, network and PID
//      namespaces, /dev/shm), pid, process_vm_readv probe and the address it
//      reached the rendezvous from; ranks with equal host keys may share
//      memory;
//   2. every rank publishes its shared-memory segment's name (or why it has
//      none) and which local peers' probes it could read: a pair shares
//      memory when both have a segment and each reads the other;
//   3. every rank publishes its verbs card for the other peers: its GID, UDP
//      port and the QP number it made for each;
//   4. after mapping the peers' segments and moving every QP to RTS.
import fs from 'node:fs';
import os from 'node:os';
import { SysCallError, sameHostKey, sysStatus, vmCanRead, vmProbe, type VmProbe } from '@ibal/hca';
import { BootstrapClient } from './bootstrap/client.js';
import { detectLaunch, type LaunchInfo } from './bootstrap/launcher.js';
import { RendezvousServer, type AbortInfo } from './bootstrap/server.js';
import { Comm } from './comm.js';
import { readConfig, type MpiConfig } from './config.js';
import { BootstrapError, JobAbortedError, NotInitializedError, PendingError } from './errors.js';
import { Engine } from './p2p/engine.js';
import { SelfTransport } from './transport/self.js';
import { ShmTransport, type ShmCard } from './transport/shm.js';
import type { Transport } from './transport/transport.js';
import { VerbsTransport, type VerbsCard } from './transport/verbs.js';

/** How long a rank lingers after the job aborted before it exits by itself. */
const ABORT_GRACE_MS = 2000;
/** The ceiling of a blocked wait's adaptive spin (MPILITE_SPIN_NS unset). */
const DEFAULT_SPIN_NS = 50_000;
// With more ranks than CPUs on the host the rank a wait needs is often
// descheduled behind the waiter itself: spinning only delays it. Measured on
// 4 ranks over 2 cores (mpilite bench, 8 B, alternating runs): allreduce
// 194-208 -> 94-103 us, neighbor alltoall 182-242 -> 93-109 us, bcast
// 73-91 -> 36-38 us against the 50 us ceiling; 1 MiB allreduce unchanged.
const OVERSUBSCRIBED_SPIN_NS = 2_000;
// ...and rather than sleep it yields the CPU (as Open MPI's
// mpi_yield_when_idle under --oversubscribe): the rank it waits for is
// likely runnable behind it. 4 ranks on 2 cores, 8 B: allreduce ~100 ->
// ~20 us, bcast ~37 -> ~10 us, neighbor alltoall ~90 -> ~27 us.
const OVERSUBSCRIBED_YIELD_NS = 1_000_000;
/** Finalize's wait, after every rank has handed over its FINs, for those still on the wire. */
const FIN_GRACE_MS = 2000;

interface HostCard {
  host: string;
  pid: number;
  addr: string;
  hostname: string;
  /** Where 8 bytes of this process hold known bytes, for local peers to try process_vm_readv on. */
  probe?: VmProbe;
}

/** The shared-memory round's card: the segment, or why there is none, and the local ranks this one could read. */
type ShmRound = (ShmCard | { failed: string }) & { reads?: number[] };

export class World {
  readonly launch: LaunchInfo;
  readonly rank: number;
  readonly size: number;
  readonly config: MpiConfig;
  readonly engine: Engine;
  /** Transport used to reach each world rank ('self', 'shm' or 'verbs'). */
  readonly transportOf: string[] = [];
  nextContext = 2;
  commWorld!: Comm;
  #client!: BootstrapClient;
  #server: RendezvousServer | undefined;
  #transports: Transport[] = [];
  #finalized = false;
  #abortTimer: NodeJS.Timeout | undefined;
  /** init() has finished: an abort from now on is the application's to notice, or the timer's. */
  #ready = false;

  private constructor(launch: LaunchInfo, config: MpiConfig) {
    this.launch = launch;
    this.rank = launch.rank;
    this.size = launch.size;
    this.config = config;
    this.engine = new Engine(launch.rank);
  }

  static async create(): Promise<World> {
    const w = new World(detectLaunch(), readConfig());
    try {
      await w.#wireUp();
      w.#ready = true;
    } catch (err) {
      await w.#abandon(err as Error);
      throw err;
    }
    return w;
  }

  /**
   * init() failed: tells the job why (the ranks waiting at a fence for this
   * one fail with it now, not at their timeout) and lets go of everything
   * init took. Without this, rank 0's rendezvous server, the bootstrap
   * connection and the transports kept the process alive after init()
   * rejected. The caller has the error, so no exit watchdog is left either.
   */
  async #abandon(err: Error): Promise<void> {
    this.#finalized = true;
    const client = this.#client as BootstrapClient | undefined;
    if (client) {
      client.abort(1, `init failed: ${err.message}`);
      // fin is answered after the abort is handled, so an in-process server
      // has told every rank before it closes below.
      await client.finish(1000);
    }
    // A transport init left half made may fail to close: init's own error is the one to report.
    await this.#closeTransports().catch(() => {});
    await this.#closeServer();
    if (this.#abortTimer) clearTimeout(this.#abortTimer);
    this.#abortTimer = undefined;
  }

  check(): void {
    if (this.#finalized) throw new NotInitializedError('MPI has been finalized');
    if (this.engine.failure) throw this.engine.failure;
  }

  async #serve(): Promise<{ host: string; port: number }> {
    const l = this.launch;
    const make = (port: number): RendezvousServer => new RendezvousServer({ size: l.size, jobId: l.jobId, host: l.listenHost, port });
    let server = make(l.rendezvous?.port ?? 0);
    let bound: { host: string; port: number };
    try {
      bound = await server.listen();
    } catch {
      server = make(0);
      bound = await server.listen();
    }
    this.#server = server;
    if (l.addressFile) {
      const tmp = `${l.addressFile}.${process.pid}`;
      fs.writeFileSync(tmp, JSON.stringify({ port: bound.port, jobId: l.jobId }));
      fs.renameSync(tmp, l.addressFile);
    }
    return bound;
  }

  #addresses(): { host: string; port: number }[] {
    const l = this.launch;
    const out: { host: string; port: number }[] = [];
    if (l.addressFile) {
      try {
        const f = JSON.parse(fs.readFileSync(l.addressFile, 'utf8')) as { port: number; jobId: string };
        if (f.jobId === l.jobId) out.push({ host: l.rendezvous!.host, port: f.port });
      } catch {
        /* not written yet */
      }
    }
    if (l.rendezvous) out.push(l.rendezvous);
    return out;
  }

  async #wireUp(): Promise<void> {
    const l = this.launch;
    const timeoutMs = this.config.bootstrapTimeoutS * 1000;
    let served: { host: string; port: number } | undefined;
    if (l.serve) served = await this.#serve();
    this.#client = await BootstrapClient.connect({
      rank: l.rank,
      jobId: l.jobId,
      addresses: () => (served && l.launcher === 'singleton' ? [served] : served ? [{ host: '127.0.0.1', port: served.port }] : this.#addresses()),
      timeoutMs,
    });
    this.#client.onAbort((info) => this.#aborted(info));

    const addr = this.#client.localAddress.replace(/^::ffff:/, '');
    const me: HostCard = { host: sameHostKey() ?? `${os.hostname()}/${process.pid}`, pid: process.pid, addr, hostname: os.hostname(), probe: vmProbe() };
    this.#client.put(`host.${l.rank}`, JSON.stringify(me));
    const kv1 = await this.#client.fence(timeoutMs);
    const hosts = new Map<number, HostCard>();
    for (let r = 0; r < l.size; r++) {
      const v = kv1[`host.${r}`];
      if (!v) throw new BootstrapError(`rank ${r} published no host card`);
      hosts.set(r, JSON.parse(v) as HostCard);
    }
    const local: number[] = [];
    for (let r = 0; r < l.size; r++) if (hosts.get(r)!.host === me.host) local.push(r);

    const want = this.config.transports;
    const st = sysStatus();
    const shmOk = want.includes('shm') && local.length > 1 && st.shm.on && st.futex.on && st.vm.on;

    const self = new SelfTransport(l.rank, this.engine.sink);
    this.#transports.push(self);
    this.engine.endpoints[l.rank] = self;
    this.transportOf[l.rank] = 'self';
    let shm: ShmTransport | undefined;
    let verbs: VerbsTransport | undefined;
    // Shared memory first, and everyone told who got it: a rank that could
    // not (a full or small /dev/shm: a container's is 64 MiB) reaches its
    // local peers over verbs, as Open MPI's sm BTL steps aside for the
    // network's. Its init used to fail, and the job with it.
    let shmFailure: string | undefined;
    if (shmOk) {
      try {
        // The host's CPUs, not this process's: a rank bound to one core (mpilite
        // and mpirun bind when the ranks fit) sees one in availableParallelism().
        const crowded = local.length > os.cpus().length;
        const spinNs = this.config.spinNs ?? (crowded ? OVERSUBSCRIBED_SPIN_NS : DEFAULT_SPIN_NS);
        const yieldNs = this.config.yieldNs ?? (crowded ? OVERSUBSCRIBED_YIELD_NS : 0);
        shm = new ShmTransport(local, l.rank, this.config.shmRingBytes, this.config.shmEagerLimit, this.engine.sink, spinNs, yieldNs);
        shm.longSpin = !crowded && this.config.spinNs === undefined;
        this.#transports.push(shm);
      } catch (err) {
        if (!(err instanceof SysCallError)) throw err;
        shmFailure = err.message;
        process.stderr.write(`mpilite: rank ${l.rank}: no shared memory for the local transport (${err.message}); its local peers use verbs\n`);
      }
    }
    // A large message is pulled by its receiver with process_vm_readv, which
    // Yama (ptrace_scope 1, Ubuntu's default) refuses between sibling
    // processes, as the kernel does for a peer that is not dumpable: the
    // receive failed with VmPermissionError. Each rank tries every local
    // peer's probe now; a pair shares memory only if each can read the other.
    const readable = (r: number): boolean => {
      const h = hosts.get(r)!;
      return vmCanRead(h.pid, h.probe?.addr, h.probe?.magic);
    };
    const reads = shm ? local.filter((r) => r !== l.rank && readable(r)) : [];
    const round: ShmRound = shm ? { ...shm.card(), reads } : { failed: shmFailure ?? 'not used' };
    this.#client.put(`shm.${l.rank}`, JSON.stringify(round));
    const kvShm = await this.#client.fence(timeoutMs);
    const shmCards = new Map<number, ShmCard>();
    for (const r of local) {
      const c = JSON.parse(kvShm[`shm.${r}`] ?? '{}') as ShmRound;
      if (shm && r !== l.rank && 'segment' in c && reads.includes(r) && c.reads?.includes(l.rank)) shmCards.set(r, { segment: c.segment, pid: c.pid });
    }
    const unreadable = shm ? local.filter((r) => r !== l.rank && !shmCards.has(r) && !reads.includes(r)) : [];
    if (unreadable.length > 0) {
      process.stderr.write(`mpilite: rank ${l.rank}: process_vm_readv may not read local rank(s) ${unreadable.join(',')} (Yama ptrace_scope, or a process that is not dumpable); they are reached over verbs\n`);
    }
    const verbsPeers: number[] = [];
    for (let r = 0; r < l.size; r++) if (r !== l.rank && !shmCards.has(r)) verbsPeers.push(r);
    if (verbsPeers.length > 0 && !want.includes('verbs')) {
      const why = shmFailure ? ` (no shared memory here: ${shmFailure})` : '';
      throw new BootstrapError(`rank ${l.rank}: ranks ${verbsPeers.join(',')} need the verbs transport${why}, but MPILITE_TRANSPORTS=${want.join(',')}`);
    }
    const card: { verbs?: VerbsCard } = {};
    if (verbsPeers.length > 0) {
      verbs = new VerbsTransport({
        address: addr,
        eagerLimit: this.config.verbsEagerLimit,
        credits: this.config.verbsCredits,
        sink: this.engine.sink,
        onFatal: (err) => {
          this.engine.fail(err);
          this.#client.abort(1, err.message);
        },
      });
      this.#transports.push(verbs);
      card.verbs = await verbs.open(verbsPeers);
    }
    this.#client.put(`xport.${l.rank}`, JSON.stringify(card));
    const kv2 = await this.#client.fence(timeoutMs);
    const cards = new Map<number, { verbs?: VerbsCard }>();
    for (let r = 0; r < l.size; r++) cards.set(r, JSON.parse(kv2[`xport.${r}`] ?? '{}') as { verbs?: VerbsCard });
    if (shm) {
      shm.connect(local, l.rank, shmCards);
      for (const ep of shm.endpoints) {
        this.engine.endpoints[ep.peer] = ep;
        this.transportOf[ep.peer] = 'shm';
      }
    }
    if (verbs) {
      const vc = new Map<number, VerbsCard>();
      for (const r of verbsPeers) vc.set(r, cards.get(r)!.verbs!);
      verbs.connect(l.rank, vc);
      for (const ep of verbs.endpoints) {
        this.engine.endpoints[ep.peer] = ep;
        this.transportOf[ep.peer] = 'verbs';
      }
    }
    await this.#client.fence(timeoutMs);
    shm?.unlink();
    for (const t of this.#transports) this.engine.transports.push(t);
    this.engine.setSyncTransport(shm);
    this.engine.syncOk = shm !== undefined && verbs === undefined;
    this.engine.syncWaitUs = this.config.syncWaitUs;
    const group: number[] = [];
    for (let r = 0; r < l.size; r++) group.push(r);
    this.commWorld = new Comm(this, 0, group);
  }

  #aborted(info: AbortInfo): void {
    const err = new JobAbortedError(info.rank, info.reason, info.errorCode);
    this.engine.fail(err);
    // During init, its rejection tells the caller (init waits on fences, which fail at once now).
    if (this.#finalized || this.#abortTimer || !this.#ready) return;
    // The job is over: a rank that does not exit by itself soon is made to.
    this.#abortTimer = setTimeout(() => {
      process.stderr.write(`mpilite: rank ${this.rank}: ${err.message}; exiting\n`);
      process.exit(info.errorCode || 1);
    }, ABORT_GRACE_MS);
  }

  /** MPI_Abort: tells every rank, then exits with `errorCode`. */
  async abort(errorCode = 1, reason?: string): Promise<never> {
    const why = reason ?? `called abort(${errorCode})`;
    this.#client.abort(errorCode, why);
    this.engine.fail(new JobAbortedError(this.rank, why, errorCode));
    await new Promise((r) => setTimeout(r, 50));
    process.exit(errorCode);
  }

  /** A bootstrap fence with no timeout, making progress while it waits. */
  async #fence(): Promise<void> {
    const engine = this.engine;
    let fenced = false;
    let fenceErr: unknown;
    void this.#client.fence(undefined).then(
      () => (fenced = true),
      (err: unknown) => ((fenceErr = err), (fenced = true)),
    ).finally(() => engine.kick());
    await engine.until(() => fenced);
    if (fenceErr) throw fenceErr;
  }

  /** MPI_Finalize: waits for every rank, then releases every resource. */
  async finalize(): Promise<void> {
    if (this.#finalized) return;
    const timeoutMs = this.config.bootstrapTimeoutS * 1000;
    let failed: Error | undefined = this.engine.failure;
    if (!failed) {
      try {
        // MPI_Finalize waits for every rank however long the others take
        // (no timeout: a rank that dies or aborts ends the wait through the
        // job's abort). All along this rank keeps making progress: a peer
        // may still match and pull this rank's rendezvous sends, or need it
        // to drain messages queued toward it.
        const engine = this.engine;
        await this.#fence();
        // Every rank is here: no receive will be posted any more. Finish the
        // pulls of messages that did match, hand over what is still queued
        // (FINs among it), and agree that every rank has.
        if (engine.pulling > 0 || engine.unsent > 0) await engine.until(() => engine.pulling === 0 && engine.unsent === 0);
        await this.#fence();
        // The last FINs are on their way (and a pull or two that matched
        // while the second fence drained queues); a send still open after
        // them was never matched (an erroneous program). It is failed, not
        // waited for forever.
        const settled = (): boolean => engine.pendingSends === 0 && engine.pulling === 0 && engine.unsent === 0;
        if (!settled()) {
          const until = performance.now() + FIN_GRACE_MS;
          await engine.until(() => settled() || performance.now() > until);
        }
        const unmatched = engine.pendingSends;
        if (unmatched > 0) {
          process.stderr.write(`mpilite: rank ${this.rank}: finalize: ${unmatched} send(s) never matched by a receive; their requests fail\n`);
          engine.abandonSends(new PendingError('finalize: the send was never matched by a receive'));
        }
      } catch (err) {
        failed = err as Error;
      }
    }
    this.#finalized = true;
    await this.#client.finish();
    await this.#closeTransports();
    const server = this.#server;
    if (server && !failed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        server.once('done', () => {
          clearTimeout(timer);
          resolve();
        });
        server.once('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.#closeServer();
    // After an abort the exit watchdog stays: the job is over either way.
    if (failed) throw failed;
    if (this.#abortTimer) clearTimeout(this.#abortTimer);
  }

  get finalized(): boolean {
    return this.#finalized;
  }

  /** The engine and every transport, newest first; one that fails to close does not keep the others open, and its error comes after. */
  async #closeTransports(): Promise<void> {
    this.engine.close();
    let first: unknown;
    for (const t of this.#transports.reverse()) {
      try {
        await t.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** The rendezvous this rank served (rank 0 under mpirun and srun), and the file that said where. */
  async #closeServer(): Promise<void> {
    if (!this.#server) return;
    await this.#server.close();
    if (this.launch.addressFile) fs.rmSync(this.launch.addressFile, { force: true });
  }
}
