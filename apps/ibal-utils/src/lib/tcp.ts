// The out-of-band TCP channel the ping-pong and perf tools exchange
// addresses over. Every wait here is bounded; errors become messages that
// say what failed and where.
import net from 'node:net';
import { CliError } from './cli-error.js';

export async function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CliError(`Couldn't connect to ${host}:${port}: no answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => {}); // reported by the reader that is waiting, if any
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const why = err.code === 'ECONNREFUSED' ? 'connection refused (is the server running on that port?)' : err.message;
      reject(new CliError(`Couldn't connect to ${host}:${port}: ${why}`));
    });
  });
}

export async function listenTcp(port: number, host: string): Promise<net.Server> {
  return new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      server.close();
      reject(new CliError(`Couldn't listen to port ${port} on ${host}: ${err.code ?? err.message}`));
    });
    server.listen({ port, host, exclusive: true }, () => {
      server.removeAllListeners('error');
      server.on('error', () => {});
      resolve(server);
    });
  });
}

/** Accepts one connection and stops listening, as the C servers do. */
export async function acceptOne(server: net.Server, timeoutMs: number): Promise<net.Socket> {
  try {
    return await new Promise<net.Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new CliError(`no client connected within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      server.once('connection', (socket) => {
        clearTimeout(timer);
        socket.on('error', () => {});
        socket.setNoDelay(true);
        resolve(socket);
      });
    });
  } finally {
    server.close();
  }
}

/** Buffered reads of exact lengths or lines from a socket, each with a deadline. */
export class SocketReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(
    readonly socket: net.Socket,
    readonly peer: string,
  ) {
    socket.on('data', (d: Buffer) => {
      this.#chunks.push(d);
      this.#buffered += d.length;
      this.#notify();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('error', (err) => {
      this.#error = err;
      this.#notify();
    });
  }

  /** Exactly `n` bytes. */
  async read(n: number, timeoutMs: number, what: string): Promise<Buffer> {
    await this.#until(() => this.#buffered >= n, timeoutMs, what);
    return this.#take(n);
  }

  /** One '\n'-terminated line, without the terminator. */
  async readLine(timeoutMs: number, what: string): Promise<string> {
    let at = -1;
    await this.#until(() => {
      at = this.#all().indexOf(0x0a);
      return at >= 0;
    }, timeoutMs, what);
    const line = this.#take(at + 1);
    return line.subarray(0, at).toString('utf8');
  }

  #all(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  #take(n: number): Buffer {
    const all = this.#all();
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }

  async #until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (ready()) return;
      if (this.#error) throw new CliError(`${what}: connection to ${this.peer} failed: ${this.#error.message}`);
      if (this.#ended) throw new CliError(`${what}: ${this.peer} closed the connection`);
      const left = deadline - Date.now();
      if (left <= 0) throw new CliError(`${what}: nothing from ${this.peer} within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  #notify(): void {
    this.#wake?.();
  }
}

/** Writes and waits until the bytes are handed to the kernel. */
export async function writeAll(socket: net.Socket, data: Uint8Array | string, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.write(data, (err) => (err ? reject(new CliError(`${what}: ${err.message}`)) : resolve()));
  });
}

/** Half-closes and waits (bounded) for the peer to close its side, so nothing in flight is reset. */
export async function closeGracefully(socket: net.Socket, timeoutMs = 2000): Promise<void> {
  if (socket.destroyed) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      socket.destroy();
      resolve();
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    socket.end();
    socket.resume();
  });
}
