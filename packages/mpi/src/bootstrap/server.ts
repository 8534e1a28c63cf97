// The rendezvous server: a PMI-like key-value space with fences, and the
// job's failure detector. `mpilite run` hosts it in the launcher; under
// mpirun or srun, world rank 0 hosts it in-process. Every rank keeps one
// TCP connection to it for the life of the job: a connection that closes
// before the rank said `fin` means the rank died, and the server tells every
// other rank at once (so no rank waits forever on a dead peer).
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { readLines, writeLine, type Message } from './lines.js';

/** How long close() lets a peer read what is left before it drops the connection. */
const CLOSE_GRACE_MS = 1000;

export interface RendezvousServerOptions {
  /** Ranks in the job. */
  size: number;
  /** An identifier clients must present (guards against a stray server on a derived port). */
  jobId: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (ephemeral). */
  port?: number;
}

export interface AbortInfo {
  rank: number;
  reason: string;
  errorCode: number;
}

interface Client {
  socket: net.Socket;
  rank: number;
  finished: boolean;
}

/**
 * Events: `abort` (AbortInfo) once, when the first rank fails or aborts;
 * `done` when every rank has finalized and disconnected.
 */
export class RendezvousServer extends EventEmitter {
  readonly size: number;
  readonly jobId: string;
  readonly #server: net.Server;
  readonly #host: string;
  readonly #port: number;
  readonly #clients = new Map<number, Client>();
  readonly #kv = new Map<string, string>();
  readonly #fences = new Map<string, Set<number>>();
  #finished = 0;
  #aborted: AbortInfo | undefined;
  #closed = false;
  /** Every accepted connection, introduced or not, for close(). */
  readonly #sockets = new Set<net.Socket>();

  constructor(options: RendezvousServerOptions) {
    super();
    this.size = options.size;
    this.jobId = options.jobId;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    this.#server = net.createServer((s) => this.#accept(s));
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#port, this.#host, () => {
        this.#server.off('error', onError);
        const a = this.#server.address() as net.AddressInfo;
        resolve({ host: this.#host, port: a.port });
      });
    });
  }

  get aborted(): AbortInfo | undefined {
    return this.#aborted;
  }

  /** Ends the job: every connected rank is told `rank` failed with `reason`. */
  abortJob(rank: number, reason: string, errorCode = 1): void {
    if (this.#aborted) return;
    this.#aborted = { rank, reason, errorCode };
    for (const c of this.#clients.values()) writeLine(c.socket, { op: 'abort', rank, reason, errorCode });
    this.emit('abort', this.#aborted);
  }

  #accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    let client: Client | undefined;
    socket.on('error', () => {});
    readLines(socket, (m) => {
      if (m.op === 'hello') {
        const rank = Number(m.rank);
        if (m.jobId !== this.jobId || !Number.isInteger(rank) || rank < 0 || rank >= this.size || this.#clients.has(rank)) {
          writeLine(socket, { op: 'reject', reason: m.jobId !== this.jobId ? 'wrong job' : `bad or duplicate rank ${String(m.rank)}` });
          socket.end();
          return;
        }
        client = { socket, rank, finished: false };
        this.#clients.set(rank, client);
        writeLine(socket, { op: 'welcome', jobId: this.jobId });
        if (this.#aborted) writeLine(socket, { op: 'abort', ...this.#aborted });
        return;
      }
      if (!client) {
        socket.destroy();
        return;
      }
      this.#handle(client, m);
    });
    socket.on('close', () => {
      if (!client) return;
      this.#clients.delete(client.rank);
      if (!client.finished) this.abortJob(client.rank, 'exited or lost its connection before finalize');
      else if (this.#finished === this.size && this.#clients.size === 0) this.emit('done');
    });
  }

  #handle(c: Client, m: Message): void {
    switch (m.op) {
      case 'put':
        this.#kv.set(String(m.key), String(m.value));
        break;
      case 'fence': {
        const id = String(m.id);
        let set = this.#fences.get(id);
        if (!set) this.#fences.set(id, (set = new Set()));
        set.add(c.rank);
        if (set.size === this.size) {
          this.#fences.delete(id);
          const kv = Object.fromEntries(this.#kv);
          for (const other of this.#clients.values()) writeLine(other.socket, { op: 'fence', id, kv });
        }
        break;
      }
      case 'abort':
        this.abortJob(c.rank, typeof m.reason === 'string' ? m.reason : 'called abort', Number(m.errorCode) || 1);
        break;
      case 'fin':
        if (!c.finished) {
          c.finished = true;
          this.#finished++;
        }
        writeLine(c.socket, { op: 'fin' });
        break;
      default:
        break;
    }
  }

  /** Stops listening and closes every connection, within CLOSE_GRACE_MS. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    // end(), not destroy(): a socket closed with input it has not read sends
    // a reset, and the reset discards what its peer has not read yet, such
    // as the abort just written to it (an in-process server closing after
    // its rank's init failed).
    for (const s of this.#sockets) s.end();
    const force = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, CLOSE_GRACE_MS);
    return new Promise((resolve) =>
      this.#server.close(() => {
        clearTimeout(force);
        resolve();
      }),
    );
  }
}
