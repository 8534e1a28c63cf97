// The control channel between perf client and server: JSON, one message a
// line, over the TCP connection. perftest's own exchange is a binary
// struct; this one carries the same facts (LID, QPN, PSN, GID, buffer
// address and rkey) plus what the client asks the server to do.
import type net from 'node:net';
import { CliError } from '../cli-error.js';
import { SocketReader, writeAll } from '../tcp.js';
import type { PerfMode, PerfTest } from './options.js';

export interface PerfDest {
  lid: number;
  qpn: number;
  psn: number;
  /** 32 hex digits. */
  gid: string;
  addr: number;
  rkey: number;
  /** Reads/atomics this side issues at once (its max_rd_atomic); the peer must accept as many. */
  rdAtomic: number;
}

export type PerfMessage =
  | { type: 'hello'; test: PerfTest; mode: PerfMode; sizes: number[]; mtu: number; dest: PerfDest }
  | { type: 'welcome'; dest: PerfDest }
  | { type: 'run'; size: number; iters: number; warmup: boolean }
  | { type: 'ready' }
  | { type: 'progress' }
  | { type: 'result'; row: Record<string, number>; warmup: boolean }
  | { type: 'ack' }
  | { type: 'done' }
  | { type: 'error'; message: string };

export class Control {
  readonly #reader: SocketReader;

  constructor(
    readonly socket: net.Socket,
    readonly peer: string,
    readonly timeoutMs: number,
  ) {
    this.#reader = new SocketReader(socket, peer);
  }

  async send(m: PerfMessage): Promise<void> {
    await writeAll(this.socket, JSON.stringify(m) + '\n', `sending ${m.type} to ${this.peer}`);
  }

  /** Sends without waiting, for heartbeats from inside a measurement. */
  post(m: PerfMessage): void {
    if (!this.socket.destroyed) this.socket.write(JSON.stringify(m) + '\n');
  }

  /**
   * The next message of `type`. Heartbeats (progress) restart the wait, so a
   * long measurement on the other side does not count as silence; an error
   * message from the peer becomes this side's error.
   */
  async expect<T extends PerfMessage['type']>(type: T): Promise<Extract<PerfMessage, { type: T }>> {
    const m = await this.next(type);
    if (m.type !== type) throw new CliError(`expected ${type} from the peer, got ${m.type}`);
    return m as Extract<PerfMessage, { type: T }>;
  }

  /** The next message other than a heartbeat. */
  async next(waitingFor = 'a message'): Promise<PerfMessage> {
    for (;;) {
      const line = await this.#reader.readLine(this.timeoutMs, `waiting for ${waitingFor} from the peer`);
      let m: PerfMessage;
      try {
        m = JSON.parse(line) as PerfMessage;
      } catch {
        throw new CliError(`the peer at ${this.peer} sent something that is not an ibal perf message: ${JSON.stringify(line.slice(0, 80))}`);
      }
      if (typeof m !== 'object' || m === null || typeof m.type !== 'string') throw new CliError(`the peer at ${this.peer} sent a message without a type`);
      if (m.type === 'progress') continue;
      if (m.type === 'error') throw new CliError(`the peer reported: ${m.message}`);
      return m;
    }
  }
}
