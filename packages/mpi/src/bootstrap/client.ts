// A rank's side of the rendezvous: connect (retrying while the server comes
// up), publish keys, fence, and hear about the job's failure.
import net from 'node:net';
import { BootstrapError, JobAbortedError } from '../errors.js';
import { readLines, writeLine, type Message } from './lines.js';
import type { AbortInfo } from './server.js';

export interface ConnectOptions {
  rank: number;
  jobId: string;
  /** Tried in turn until one answers with our job id. */
  addresses: () => { host: string; port: number }[];
  timeoutMs: number;
}

export class BootstrapClient {
  readonly rank: number;
  readonly #socket: net.Socket;
  readonly #waiting = new Map<string, { resolve: (kv: Record<string, string>) => void; reject: (err: Error) => void }>();
  #fenceSeq = 0;
  #finResolve: (() => void) | undefined;
  #finished = false;
  #onAbort: ((info: AbortInfo) => void) | undefined;
  #abortInfo: AbortInfo | undefined;

  private constructor(rank: number, socket: net.Socket, backlog: Message[]) {
    this.rank = rank;
    this.#socket = socket;
    for (const m of backlog) this.#handle(m);
    readLines(socket, (m) => this.#handle(m));
    socket.on('close', () => {
      // Nothing will answer a fin now: do not make finish() wait it out.
      this.#finResolve?.();
      if (!this.#finished) this.#raise({ rank: -1, reason: 'the rendezvous server went away (launcher or rank 0 died)', errorCode: 1 });
    });
  }

  /** The local address this host reaches the rendezvous from: also routable from the other hosts. */
  get localAddress(): string {
    return this.#socket.localAddress ?? '127.0.0.1';
  }

  static async connect(opts: ConnectOptions): Promise<BootstrapClient> {
    const deadline = Date.now() + opts.timeoutMs;
    let lastError = 'no address to try';
    let delay = 5;
    while (Date.now() < deadline) {
      for (const a of opts.addresses()) {
        try {
          const { socket, backlog } = await tryOne(a.host, a.port, opts.rank, opts.jobId, Math.max(100, Math.min(2000, deadline - Date.now())));
          return new BootstrapClient(opts.rank, socket, backlog);
        } catch (err) {
          lastError = `${a.host}:${a.port}: ${(err as Error).message}`;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(200, delay * 2);
    }
    throw new BootstrapError(`rank ${opts.rank} could not reach the rendezvous within ${opts.timeoutMs} ms (${lastError})`);
  }

  /** Called once if the job aborts (a rank failed, called abort, or the server went away). */
  onAbort(cb: (info: AbortInfo) => void): void {
    this.#onAbort = cb;
    if (this.#abortInfo) cb(this.#abortInfo);
  }

  put(key: string, value: string): void {
    writeLine(this.#socket, { op: 'put', key, value });
  }

  /**
   * Waits for every rank to reach this fence; resolves with every key
   * published before it. Without `timeoutMs` it waits until the job aborts.
   */
  fence(timeoutMs: number | undefined): Promise<Record<string, string>> {
    const id = String(this.#fenceSeq++);
    // Entered after the job aborted (the abort came while this rank was busy
    // between fences): it can never complete, and waited for its timeout.
    const a = this.#abortInfo;
    if (a) return Promise.reject(new JobAbortedError(a.rank, a.reason, a.errorCode));
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.#waiting.delete(id);
              reject(new BootstrapError(`rank ${this.rank}: fence ${id} not reached by every rank within ${timeoutMs} ms`));
            }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (kv) => {
          clearTimeout(timer);
          resolve(kv);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      writeLine(this.#socket, { op: 'fence', id });
    });
  }

  /** Tells the server to end the job (MPI_Abort). */
  abort(errorCode: number, reason: string): void {
    writeLine(this.#socket, { op: 'abort', errorCode, reason });
  }

  /** Says goodbye so that closing is not taken for a crash. */
  async finish(timeoutMs = 5000): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    if (!this.#socket.destroyed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#finResolve = () => {
          clearTimeout(timer);
          resolve();
        };
        writeLine(this.#socket, { op: 'fin' });
      });
    }
    this.#socket.end();
    this.#socket.destroy();
  }

  /** Drops the connection without finalizing (the server takes it for a failure). */
  destroy(): void {
    this.#finished = true;
    this.#socket.destroy();
  }

  #handle(m: Message): void {
    if (m.op === 'fence') {
      const w = this.#waiting.get(String(m.id));
      this.#waiting.delete(String(m.id));
      w?.resolve(m.kv as Record<string, string>);
    } else if (m.op === 'abort') {
      this.#raise({ rank: Number(m.rank), reason: String(m.reason), errorCode: Number(m.errorCode) || 1 });
    } else if (m.op === 'fin') {
      this.#finResolve?.();
    }
  }

  #raise(info: AbortInfo): void {
    if (this.#abortInfo) return;
    this.#abortInfo = info;
    // A fence can never complete once a rank is gone.
    for (const w of this.#waiting.values()) w.reject(new JobAbortedError(info.rank, info.reason, info.errorCode));
    this.#waiting.clear();
    this.#onAbort?.(info);
  }
}

// One attempt: connect, say hello, wait for welcome (or reject). Lines that
// arrive right behind the welcome are handed back so none is lost.
function tryOne(host: string, port: number, rank: number, jobId: string, timeoutMs: number): Promise<{ socket: net.Socket; backlog: Message[] }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    let buf = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error('no answer')), timeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on('error', fail);
    socket.on('connect', () => writeLine(socket, { op: 'hello', rank, jobId, pid: process.pid }));
    socket.setEncoding('utf8');
    const onData = (chunk: string): void => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      const msgs: Message[] = [];
      for (const l of lines) if (l) msgs.push(JSON.parse(l) as Message);
      if (msgs.length === 0) return;
      const first = msgs[0]!;
      if (first.op !== 'welcome') return fail(new Error(String(first.reason ?? 'rejected')));
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.on('error', () => {});
      if (buf) socket.unshift(Buffer.from(buf));
      resolve({ socket, backlog: msgs.slice(1) });
    };
    socket.on('data', onData);
  });
}
