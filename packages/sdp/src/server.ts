// SdpServer: net.Server's shape over an SDP listener in the CM.

import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { inspect } from 'node:util';
import type { ConnectionSink } from './connection.js';
import { SdpSocketError, argError, checkHostname, checkPort, received } from './errors.js';
import { listenLink, type Link, type LinkListener } from './link.js';
import type { Hello } from './protocol/hello.js';
import { resolveOptions, type SdpOptions } from './options.js';
import { SdpSocket } from './socket.js';

export interface SdpServerOptions extends SdpOptions {
  allowHalfOpen?: boolean;
  /** Passed to accepted sockets' setKeepAlive. */
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  noDelay?: boolean;
  /** As net's: accepted sockets start paused, reading nothing until resume(). */
  pauseOnConnect?: boolean;
  /** As net's: accepted sockets' readable and writable high-water marks. */
  highWaterMark?: number;
}

/** What 'drop' carries, as net.Server's. */
export interface SdpDropInfo {
  localAddress: string;
  localPort: number;
  localFamily: string;
  remoteAddress: string;
  remotePort: number;
  remoteFamily: string;
}

export interface SdpListenOptions {
  port?: number;
  host?: string;
  backlog?: number;
}

type ConnectionListener = (socket: SdpSocket) => void;

/** The address to listen on: an IP as it is, 'localhost' as 127.0.0.1, another name as dns.lookup finds it first (as net.Server.listen does). */
async function listenHost(host: string | undefined): Promise<string | undefined> {
  if (host === undefined || net.isIP(host)) return host;
  if (host === 'localhost') return '127.0.0.1';
  const { address } = await dns.promises.lookup(host);
  return address;
}

export class SdpServer extends EventEmitter {
  /** Refuse connections beyond this many (the REQ gets a REJ, the client ECONNREFUSED). */
  maxConnections: number | undefined;
  readonly #opts: SdpServerOptions;
  #listener: LinkListener | undefined;
  #listening = false;
  #starting = false;
  readonly #sockets = new Set<SdpSocket>();
  /** Accepted by the CM, not yet handed out: counted against maxConnections. */
  #admitted = 0;
  #closeWaiters: ((err?: Error) => void)[] = [];
  #closing = false;
  #abandoned = false;

  constructor(options?: SdpServerOptions | ConnectionListener, listener?: ConnectionListener) {
    super();
    if (typeof options === 'function') {
      listener = options;
      options = {};
    }
    this.#opts = options ?? {};
    resolveOptions(this.#opts); // bad options throw here, not at the first connection
    if (listener) this.on('connection', listener);
  }

  get listening(): boolean {
    return this.#listening;
  }

  address(): { address: string; family: string; port: number } | null {
    const l = this.#listener;
    if (!l || !this.#listening) return null;
    return { address: l.address, family: net.isIPv6(l.address) ? 'IPv6' : 'IPv4', port: l.port };
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    // A callback that is not one would throw later, from the tick, where nothing can catch it.
    if (typeof cb !== 'function') throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "callback" argument must be of type function. Received ${received(cb)}`);
    const n = this.#sockets.size;
    process.nextTick(() => cb(null, n));
    return this;
  }

  listen(port?: number, host?: string, backlog?: number, cb?: () => void): this;
  listen(port?: number, host?: string, cb?: () => void): this;
  listen(port?: number, cb?: () => void): this;
  listen(options: SdpListenOptions, cb?: () => void): this;
  listen(...args: unknown[]): this {
    const cb = typeof args[args.length - 1] === 'function' ? (args.pop() as () => void) : undefined;
    let o: SdpListenOptions;
    if (typeof args[0] === 'object' && args[0] !== null) {
      o = args[0] as SdpListenOptions;
      if (!('port' in o) && !('path' in o)) throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' must have the property "port" or "path". Received ${inspect(o)}`);
    } else {
      // As net's: a host only as a string second argument; a backlog as the first number after the port.
      const backlog = [args[1], args[2]].find((v) => typeof v === 'number') as number | undefined;
      o = { port: args[0] as number | undefined, ...(typeof args[1] === 'string' ? { host: args[1] } : {}), ...(backlog !== undefined ? { backlog } : {}) };
    }
    // listen(cb) and listen(fn, ...) as net reads them: a leading function means no port given.
    const given: unknown = typeof args[0] === 'function' ? undefined : o.port;
    if (given !== undefined && given !== null && typeof given !== 'number' && typeof given !== 'string') {
      throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' is invalid. Received ${inspect(o)}`);
    }
    const port = given === undefined || given === null ? 0 : checkPort(given as number | string, 'options.port');
    // After the port's checks, as net's order has it.
    checkHostname(o.host);
    if (this.#listening || this.#starting) throw new SdpSocketError('ERR_SERVER_ALREADY_LISTEN', 'listen', 'listen method has been called more than once without closing.');
    if (cb) this.once('listening', cb);
    this.#starting = true;
    const opts = resolveOptions(this.#opts);
    const listening = listenHost(o.host).then((host) =>
      listenLink(
        { port, ...(host !== undefined ? { host } : {}), ...(o.backlog !== undefined ? { backlog: o.backlog } : {}) },
        opts,
        (hello) => this.#admit(hello),
        (link) => this.#onLink(link),
        () => this.#placeholderSink(),
        () => {
          this.#admitted = Math.max(0, this.#admitted - 1);
          this.#maybeClosed();
        },
      ),
    );
    listening.then(
      (l) => {
        this.#starting = false;
        if (this.#abandoned) {
          // close() came while the listener was being set up.
          this.#abandoned = false;
          l.close();
          return;
        }
        this.#listener = l;
        if (!this.#refd) l.setRef(false);
        this.#listening = true;
        this.emit('listening');
      },
      (err: Error) => {
        this.#starting = false;
        if (this.#abandoned) {
          this.#abandoned = false;
          return;
        }
        this.emit('error', err);
      },
    );
    return this;
  }

  /** Stops accepting; 'close' (and `cb`) come once every accepted socket has closed, as with net.Server. */
  close(cb?: (err?: Error) => void): this {
    // As net's: a callback that is not a function is ignored.
    if (typeof cb !== 'function') cb = undefined;
    if (!this.#listening && !this.#starting) {
      const err = new SdpSocketError('ERR_SERVER_NOT_RUNNING', 'close', 'Server is not running.');
      if (cb) process.nextTick(() => cb(err));
      return this;
    }
    if (cb) this.#closeWaiters.push(cb);
    if (this.#starting) this.#abandoned = true;
    this.#closing = true;
    this.#listener?.close();
    this.#listener = undefined;
    this.#listening = false;
    this.#maybeClosed();
    return this;
  }

  /** As net.Server's: the listener keeps the process alive (the default). */
  ref(): this {
    this.#refd = true;
    this.#listener?.setRef(true);
    return this;
  }

  /** As net.Server's: a listening server alone no longer keeps the process alive (accepted sockets still do, until closed or unref'd). */
  unref(): this {
    this.#refd = false;
    this.#listener?.setRef(false);
    return this;
  }

  #refd = true;

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#listening && !this.#starting) return;
    await new Promise<void>((resolve) => this.close(() => resolve()));
  }

  #admit(hello: Hello): boolean {
    if (this.#closing) return false;
    const max = this.maxConnections;
    if (max !== undefined && this.#sockets.size + this.#admitted >= max) {
      // net emits 'drop' for a connection refused at maxConnections too.
      const family = (a: string): string => (net.isIPv6(a) ? 'IPv6' : 'IPv4');
      const l = this.#listener;
      const info: SdpDropInfo = {
        localAddress: hello.dstAddress,
        localPort: l?.port ?? 0,
        localFamily: family(hello.dstAddress),
        remoteAddress: hello.srcAddress,
        remotePort: hello.localPort,
        remoteFamily: family(hello.srcAddress),
      };
      process.nextTick(() => this.emit('drop', info));
      return false;
    }
    this.#admitted++;
    return true;
  }

  // Between accept and ESTABLISHED nothing can arrive (the engine is not started), so this only holds the place.
  #placeholderSink(): ConnectionSink {
    return { data: () => true, end: () => {}, failed: () => {}, finished: () => {} };
  }

  #onLink(link: Link): void {
    // Admitted before close() (the REP was sent): the peer holds a connection, so it is served.
    this.#admitted = Math.max(0, this.#admitted - 1);
    const hwm = this.#opts.highWaterMark;
    const s = SdpSocket.accepted(link, { allowHalfOpen: this.#opts.allowHalfOpen ?? false, ...(hwm !== undefined ? { highWaterMark: hwm } : {}) });
    if (this.#opts.keepAlive) s.setKeepAlive(true, this.#opts.keepAliveInitialDelay);
    if (this.#opts.pauseOnConnect) s.pause();
    this.#sockets.add(s);
    s.once('close', () => {
      this.#sockets.delete(s);
      this.#maybeClosed();
    });
    this.emit('connection', s);
  }

  #maybeClosed(): void {
    if (!this.#closing || this.#sockets.size > 0 || this.#admitted > 0 || this.#listening) return;
    this.#closing = false;
    const waiters = this.#closeWaiters.splice(0);
    process.nextTick(() => {
      this.emit('close');
      for (const w of waiters) w();
    });
  }
}

export function createServer(options?: SdpServerOptions | ConnectionListener, listener?: ConnectionListener): SdpServer {
  return new SdpServer(options, listener);
}
