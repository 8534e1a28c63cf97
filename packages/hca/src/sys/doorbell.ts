// A doorbell on a few 32-bit words of shared memory: a sequence number the
// ringer bumps, and counts of sleepers so that ringing costs a system call
// only when someone is actually asleep. Waiting compares the sequence with
// the one the waiter last saw, so a ring between "I saw nothing to do" and
// "I sleep" is never lost: a waiter announces itself, then checks again.
//
// Two kinds of sleeper. waitSync blocks its thread in FUTEX_WAIT. wait (the
// event loop's) watches a pipe of its own with the loop itself and
// publishes where it is (pid, descriptor); a ringer writes one byte to it
// through /proc/<pid>/fd/<fd>. That is one hand-off into the loop, where a
// futex needs a waiting thread, a switch to re-arm it and a second hand-off
// from it to the loop (IBAL_WAKE=futex keeps that older path).
//
// Words: 0 sequence, 1 futex sleepers, 2 "a pipe sleeper waits" (the
// ringer that kicks clears it), 3 that sleeper's pid, 4 its pipe's write
// descriptor. One event-loop waiter per doorbell at a time.
import { InvalidArgumentError, ResourceClosedError } from '../errors.js';
import { SysCallError, fromNative } from './errors.js';
import type { NativeFutexWaiter, NativeWakePipe, SysAddon } from './load.js';
import { sys } from './load.js';

/** How a wait ended: `ok` (rung, or woken: re-check your condition), timed out, or cancelled. */
export type WaitOutcome = 'ok' | 'timed-out' | 'cancelled';

export interface DoorbellOptions {
  /** Upper bound of the adaptive spin of waitSync, in ns (default 50 µs). 0 never spins. */
  maxSpinNs?: number;
  /**
   * After its spin, waitSync gives up the CPU (sched_yield) between looks
   * at the sequence for up to this long, in ns, before it sleeps (default
   * 0). For more processes than CPUs, where the ringer is likely waiting
   * for this very CPU: a yield hands it over at once.
   */
  yieldNs?: number;
}

const DEFAULT_MAX_SPIN_NS = 50_000;

/** The loop's own pipe for asynchronous waits, unless IBAL_WAKE=futex or the addon predates it. */
function pipesWanted(addon: SysAddon): boolean {
  return process.env.IBAL_WAKE !== 'futex' && typeof addon.WakePipe === 'function';
}
const MIN_SPIN_NS = 1_000;
/** How often a wait that could get no pipe looks at the sequence. */
const POLL_MS = 2;

/** The process (or system) is out of file descriptors: EMFILE, ENFILE. */
function outOfDescriptors(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return !!e && (e.code === 'EMFILE' || e.code === 'ENFILE' || e.errno === 24 || e.errno === 23);
}

/**
 * A doorbell at `byteOffset` (4-byte aligned; give it a 64-byte cache line of
 * its own) of a shared buffer. Any process mapping the buffer can ring it or
 * wait on it.
 */
export class Doorbell {
  /** Bytes a doorbell occupies. */
  static readonly BYTES = 20;

  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly byteOffset: number;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #sys: SysAddon;
  readonly #maxSpinNs: number;
  readonly #yieldNs: number;
  #spinNs: number;
  #waiter: NativeFutexWaiter | undefined;
  #pipe: NativeWakePipe | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The pending wait's poll, when no pipe could be made for it. */
  #poll: NodeJS.Timeout | undefined;
  /** Where this side last kicked a pipe sleeper: its pid and descriptor, and ours onto it. */
  #kickPid = 0;
  #kickWfd = -1;
  #kickFd = -1;
  #pending: ((outcome: WaitOutcome | Error) => void) | undefined;
  #closed = false;
  #ref = true;

  constructor(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, options: DoorbellOptions = {}) {
    checkMemory(buffer, 'a doorbell');
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0 || byteOffset + Doorbell.BYTES > buffer.byteLength) {
      throw new InvalidArgumentError(`doorbell offset ${byteOffset} must be 4-byte aligned and inside the buffer`);
    }
    this.#sys = sys();
    this.buffer = buffer;
    this.byteOffset = byteOffset;
    this.#words = new Int32Array(buffer, byteOffset, 5);
    // The addon takes a view, which may be of a SharedArrayBuffer (worker
    // threads ringing each other); N-API takes no SharedArrayBuffer itself.
    this.#bytes = new Uint8Array(buffer);
    this.#maxSpinNs = Math.max(0, options.maxSpinNs ?? DEFAULT_MAX_SPIN_NS);
    this.#yieldNs = Math.max(0, options.yieldNs ?? 0);
    this.#spinNs = this.#maxSpinNs;
  }

  /** The current sequence number: read it before checking for work, wait with it after. */
  seq(): number {
    return Atomics.load(this.#words, 0);
  }

  /** Rings: bumps the sequence and wakes the sleepers, if any. */
  ring(): void {
    const w = this.#words;
    Atomics.add(w, 0, 1);
    if (Atomics.load(w, 1) > 0) this.#sys.futexWake(this.#bytes, this.byteOffset, 0x7fffffff);
    // The first ringer to see the pipe sleeper takes the flag and kicks; the
    // rest cost nothing until the waiter sleeps again (its loop may be busy
    // spinning on other work for a long time before it reads the pipe).
    if (Atomics.load(w, 2) !== 0 && Atomics.compareExchange(w, 2, 1, 0) === 1) this.#kick();
  }

  #kick(): void {
    const w = this.#words;
    const pid = Atomics.load(w, 3);
    const wfd = Atomics.load(w, 4);
    if (pid !== this.#kickPid || wfd !== this.#kickWfd || this.#kickFd < 0) {
      this.#dropKick();
      this.#kickPid = pid;
      this.#kickWfd = wfd;
      try {
        this.#kickFd = this.#sys.wakeOpen(pid, wfd);
      } catch {
        // Gone, or not ours to open: the sleeper's timeout wakes it.
        return;
      }
    }
    if (!this.#sys.wakeKick(this.#kickFd)) this.#dropKick();
  }

  #dropKick(): void {
    if (this.#kickFd >= 0) this.#sys.fdClose(this.#kickFd);
    this.#kickFd = -1;
  }

  /**
   * Waits until the sequence differs from `seen`, without blocking the event
   * loop: a native thread sleeps in the kernel and reports back. One
   * asynchronous wait at a time per doorbell.
   */
  wait(seen: number, timeoutMs: number): Promise<WaitOutcome> {
    this.#check();
    if (this.#pending) throw new InvalidArgumentError('this doorbell already has an asynchronous waiter');
    if (Atomics.load(this.#words, 0) !== seen) return Promise.resolve('ok');
    if (pipesWanted(this.#sys)) return this.#waitPipe(seen, timeoutMs);
    // The waiting thread counts itself a sleeper only while it sleeps.
    this.#waiter ??= new this.#sys.FutexWaiter(this.#bytes, this.byteOffset, (code) => this.#onResult(code), this.byteOffset + 4);
    const p = new Promise<WaitOutcome>((resolve, reject) => {
      this.#pending = (o) => (o instanceof Error ? reject(o) : resolve(o));
    });
    this.#waiter.arm(seen >>> 0, timeoutMs < 0 ? -1 : timeoutMs, this.#ref);
    return p;
  }

  #waitPipe(seen: number, timeoutMs: number): Promise<WaitOutcome> {
    const w = this.#words;
    let pipe = this.#pipe;
    if (!pipe) {
      try {
        pipe = this.#pipe = new this.#sys.WakePipe(() => this.#settleLoopWait('ok'));
      } catch (err) {
        // A process out of descriptors still makes progress, polling, and
        // tries for a pipe again at its next wait. (The exception escaped
        // from the loop's turn and ended the process: a server whose peers
        // took its last descriptors.)
        if (!outOfDescriptors(err)) throw fromNative(err);
        return this.#waitPoll(seen, timeoutMs);
      }
    }
    Atomics.store(w, 3, process.pid);
    Atomics.store(w, 4, pipe.writeFd());
    Atomics.store(w, 2, 1);
    if (Atomics.load(w, 0) !== seen) {
      Atomics.store(w, 2, 0);
      return Promise.resolve('ok');
    }
    const p = new Promise<WaitOutcome>((resolve) => {
      this.#pending = (o) => resolve(o instanceof Error ? 'cancelled' : o);
    });
    pipe.start();
    if (timeoutMs >= 0) this.#timer = setTimeout(() => this.#settleLoopWait('timed-out'), timeoutMs);
    this.#applyRef();
    return p;
  }

  #waitPoll(seen: number, timeoutMs: number): Promise<WaitOutcome> {
    const p = new Promise<WaitOutcome>((resolve) => {
      this.#pending = (o) => resolve(o instanceof Error ? 'cancelled' : o);
    });
    const t0 = performance.now();
    this.#poll = setInterval(() => {
      if (Atomics.load(this.#words, 0) !== seen) this.#settleLoopWait('ok');
      else if (timeoutMs >= 0 && performance.now() - t0 >= timeoutMs) this.#settleLoopWait('timed-out');
    }, POLL_MS);
    this.#applyRef();
    return p;
  }

  /** Ends the pending wait on the event loop (its pipe's or its poll's): clears its timers, stops the pipe. */
  #settleLoopWait(outcome: WaitOutcome): void {
    const done = this.#pending;
    if (!done) return;
    this.#pending = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = undefined;
    this.#pipe?.stop();
    if (this.buffer.byteLength > 0) Atomics.store(this.#words, 2, 0);
    done(outcome);
  }

  /**
   * Waits on this thread (blocking it): spins for an adaptive time, then
   * sleeps in the kernel. For latency loops in workers or dedicated
   * processes. The spin budget grows while rings arrive during (or soon
   * after) the spin and shrinks when the peer stays idle long after it, so
   * an idle peer costs little CPU.
   */
  waitSync(seen: number, timeoutMs: number): WaitOutcome {
    this.#check();
    let code: number;
    const t0 = performance.now();
    try {
      code = this.#sys.futexWaitSync(this.#bytes, this.byteOffset, seen >>> 0, this.#spinNs, timeoutMs < 0 ? -1 : timeoutMs, this.byteOffset + 4, this.#yieldNs);
    } catch (err) {
      throw fromNative(err);
    }
    if (code === 4) {
      // Woken after sleeping. Soon after the spin gave up: a longer spin
      // would have caught it. Long after: the peer was idle, spin less.
      const waitedNs = (performance.now() - t0) * 1e6;
      code = waitedNs < 2 * this.#maxSpinNs ? 0 : 4;
    }
    if (code === 0) this.#spinNs = Math.min(this.#maxSpinNs, Math.max(MIN_SPIN_NS, this.#spinNs * 2));
    else if (code === 4) this.#spinNs = this.#spinNs >>> 1 < MIN_SPIN_NS ? 0 : this.#spinNs >>> 1;
    return code === 1 ? 'timed-out' : 'ok';
  }

  /**
   * Whether an asynchronous wait keeps the event loop alive (default true),
   * as a socket's ref()/unref(). An unref'd wait still ends when rung, as
   * long as something else keeps the process running. Applies to the
   * pending wait at once.
   */
  get ref(): boolean {
    return this.#ref;
  }

  set ref(on: boolean) {
    this.#ref = on;
    // A futex wait takes its setting when armed; the next wait follows this one.
    if (this.#pending) this.#applyRef();
  }

  /** The pipe wait's handles (its watch and its timeout) follow `ref`. */
  #applyRef(): void {
    this.#pipe?.setRef?.(this.#ref);
    if (this.#ref) {
      this.#timer?.ref();
      this.#poll?.ref();
    } else {
      this.#timer?.unref();
      this.#poll?.unref();
    }
  }

  /** Ends the pending asynchronous wait with `cancelled`. */
  cancel(): void {
    if (!this.#pending) return;
    if (this.#pipe || this.#poll) this.#settleLoopWait('cancelled');
    else this.#waiter?.cancel();
  }

  #onResult(code: number): void {
    const done = this.#pending;
    if (!done) return;
    this.#pending = undefined;
    if (code === 3) done(new SysCallError('EFAULT', 'futex', 'the doorbell word is no longer mapped'));
    else done(code === 0 ? 'ok' : code === 1 ? 'timed-out' : 'cancelled');
  }

  #check(): void {
    if (this.#closed) throw new ResourceClosedError('doorbell');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Cancels a pending wait and stops the waiting thread. Close before unmapping the buffer. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) this.#settleLoopWait('cancelled');
    if (this.#pipe) {
      this.#settleLoopWait('cancelled');
      this.#pipe.close();
      this.#pipe = undefined;
    }
    this.#dropKick();
    const done = this.#pending;
    this.#waiter?.close();
    this.#waiter = undefined;
    if (done && this.#pending === done) {
      this.#pending = undefined;
      done('cancelled');
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Rings and doorbells live in an ArrayBuffer (a mapping) or a SharedArrayBuffer (threads); nothing else. */
export function checkMemory(buffer: unknown, what: string): void {
  if (!(buffer instanceof ArrayBuffer) && !(buffer instanceof SharedArrayBuffer)) {
    throw new InvalidArgumentError(`${what} needs an ArrayBuffer or a SharedArrayBuffer, got ${buffer === null ? 'null' : typeof buffer}`);
  }
}
