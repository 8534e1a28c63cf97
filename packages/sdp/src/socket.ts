// SdpSocket: a stream.Duplex with the parts of net.Socket that libraries
// use, over an SDP connection (or, in transparent mode, over the TCP socket
// it fell back to when the peer does not speak SDP).

import dns, { type LookupAddress } from 'node:dns';
import net from 'node:net';
import { Duplex, addAbortSignal } from 'node:stream';
import { SdpConnection, type ConnectionSink } from './connection.js';
import { SdpSocketError, argError, checkHostname, checkPort, received } from './errors.js';
import { connectLink, type Link } from './link.js';
import { OnreadDelivery, checkOnread, type SdpOnread } from './onread.js';
import { resolveOptions, type SdpOptions } from './options.js';

export interface SdpSocketOptions extends SdpOptions {
  allowHalfOpen?: boolean;
  /**
   * As net.Socket's: received bytes are copied into this buffer (or the
   * buffers a function returns) and passed to the callback, instead of
   * 'data' events. Over SDP, large writes are then READ into registered
   * memory the connection reuses, not into a new Buffer each.
   */
  onread?: SdpOnread;
  /** As net.Socket's (a stream option): aborting it destroys the socket with an AbortError. */
  signal?: AbortSignal;
  /** As net.Socket's (a stream option): the readable and writable high-water marks. */
  highWaterMark?: number;
}

export interface SdpConnectOptions extends SdpSocketOptions {
  port: number;
  host?: string;
  localAddress?: string;
  /** As net's: the local port to connect from (EADDRINUSE when taken). */
  localPort?: number;
  /** The UDP port of the soft device behind `host` (default 4791, RoCEv2's). */
  udpPort?: number;
  /** Milliseconds for address/route resolution and the CM handshake (default 10 s). */
  connectTimeout?: number;
  /** As net's: resolves a host name that is not an IP address (default dns.lookup). */
  lookup?: net.LookupFunction;
  /** As net's: the address family a host name resolves to (4, 6, or 0 for either). */
  family?: number;
  /** As net's: getaddrinfo hints for the lookup. */
  hints?: number;
  /** Transparent mode: connect over TCP instead when the peer does not speak SDP. */
  fallbackToTcp?: boolean;
  /** Transparent mode: which resolved addresses to try over SDP; TCP takes the connection when none is. */
  sdpAddress?: (address: string) => boolean;
  timeout?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

interface AddressInfo {
  address: string;
  family: string;
  port: number;
}

const familyOf = (a: string): string => (net.isIPv6(a) ? 'IPv6' : 'IPv4');

export class SdpSocket extends Duplex {
  #conn: SdpConnection | undefined;
  #link: Link | undefined;
  #tcp: net.Socket | undefined;
  #local: AddressInfo | undefined;
  #remote: AddressInfo | undefined;
  #connecting = false;
  /** Writes and an end() that arrived before the connection did. */
  #waiting: (() => void)[] = [];
  #timeoutMs = 0;
  #timeoutTimer: NodeJS.Timeout | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #finishedGracefully = false;
  /** Bytes handed to _write/_writev: net's bytesWritten counts them once write() has them. */
  #dispatched = 0;
  /** The peer's end ended this side as well (no allowHalfOpen): writes are EPIPE, as net's. */
  #endedByPeer = false;
  #closing: Promise<void> | undefined;
  readonly #onread: OnreadDelivery | undefined;

  constructor(options: SdpSocketOptions | null = {}) {
    // 'close' is emitted by _destroy, with net's hadError argument (the stream's own carries none).
    // null means no options, as net.Socket takes it.
    super({
      allowHalfOpen: options?.allowHalfOpen ?? false,
      emitClose: false,
      autoDestroy: true,
      decodeStrings: true,
      ...(options?.highWaterMark !== undefined ? { highWaterMark: options.highWaterMark } : {}),
    });
    const onread = checkOnread(options?.onread);
    this.#onread = onread ? new OnreadDelivery(onread) : undefined;
    // Not the stream constructor's own `signal`: an aborted one destroys at once, before these fields exist.
    if (options?.signal) addAbortSignal(options.signal, this);
    this.on('end', () => {
      if (!this.allowHalfOpen) this.#endedByPeer = true;
    });
  }

  /**
   * As net.Socket's: once the peer's end has ended this side too (no
   * allowHalfOpen), a write is the peer's doing, EPIPE to the callback and
   * as the socket's error, rather than the stream's write-after-end, which
   * blames the caller.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    if (!this.#endedByPeer || !this.writableEnded) return super.write(chunk, encoding as BufferEncoding, cb);
    const done = typeof encoding === 'function' ? encoding : cb;
    const err = new SdpSocketError('EPIPE', 'write', 'This socket has been ended by the other party');
    if (done) process.nextTick(done, err);
    this.destroy(err);
    return false;
  }

  /** @internal The server side: an accepted connection. */
  static accepted(link: Link, opts: SdpSocketOptions): SdpSocket {
    const s = new SdpSocket(opts);
    s.#attach(link);
    return s;
  }

  // ---- net.Socket surface ----------------------------------------------------

  get connecting(): boolean {
    return this.#connecting;
  }

  /**
   * As net.Socket's (undocumented there, but http's server calls it when it
   * finishes a response on a connection it will not keep): end, then destroy
   * once the end is sent.
   */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** As net.Socket's (deprecated there, still read by older libraries): writableLength once connected. */
  get bufferSize(): number | undefined {
    return this.#conn || this.#tcp ? this.writableLength : undefined;
  }

  /** As net.Socket's: true until connected, and again once destroyed. */
  get pending(): boolean {
    return this.#connecting || this.destroyed || (this.#conn === undefined && this.#tcp === undefined);
  }

  get readyState(): string {
    if (this.#connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** 'sdp' once connected over SDP, 'tcp' after a fallback, undefined before. */
  get transport(): 'sdp' | 'tcp' | undefined {
    return this.#tcp ? 'tcp' : this.#conn ? 'sdp' : undefined;
  }

  get remoteAddress(): string | undefined {
    return this.#tcp ? this.#tcp.remoteAddress : this.#remote?.address;
  }
  get remotePort(): number | undefined {
    return this.#tcp ? this.#tcp.remotePort : this.#remote?.port;
  }
  get remoteFamily(): string | undefined {
    return this.#tcp ? this.#tcp.remoteFamily : this.#remote?.family;
  }
  get localAddress(): string | undefined {
    return this.#tcp ? this.#tcp.localAddress : this.#local?.address;
  }
  get localPort(): number | undefined {
    return this.#tcp ? this.#tcp.localPort : this.#local?.port;
  }
  get localFamily(): string | undefined {
    return this.#tcp ? this.#tcp.localFamily : this.#local?.family;
  }

  address(): AddressInfo | Record<string, never> {
    if (this.#tcp) return this.#tcp.address() as AddressInfo;
    return this.#local ? { ...this.#local } : {};
  }

  get bytesRead(): number {
    return this.#tcp ? this.#tcp.bytesRead : (this.#conn?.bytesRead ?? 0);
  }

  /**
   * As net.Socket's: every byte write() took, sent or not yet (those waiting
   * for the connection, for credits, or in the stream's buffer).
   */
  get bytesWritten(): number {
    let n = this.#dispatched;
    // writableBuffer: the stream's queue behind the chunk in _write (not in Node's typings).
    for (const e of (this as unknown as { writableBuffer: { chunk: Buffer }[] }).writableBuffer) n += e.chunk.length;
    return n;
  }

  get timeout(): number | undefined {
    return this.#timeoutMs || undefined;
  }

  /** SDP sends every write at once (small queued writes share a message), so there is no Nagle delay to turn off. */
  setNoDelay(noDelay = true): this {
    this.#tcp?.setNoDelay(noDelay);
    return this;
  }

  /** Sends an empty Data message after `initialDelay` ms of silence; a dead peer then fails the socket with ECONNRESET. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    if (this.#tcp) {
      this.#tcp.setKeepAlive(enable, initialDelay);
      return this;
    }
    if (this.#keepAliveTimer) clearInterval(this.#keepAliveTimer);
    this.#keepAliveTimer = undefined;
    if (!enable) return this;
    const every = Math.max(initialDelay || 1000, 100);
    this.#keepAliveTimer = setInterval(() => {
      const c = this.#conn;
      if (c && Date.now() - c.lastActivity >= every) c.probe();
    }, every).unref();
    return this;
  }

  /** Emits 'timeout' after `ms` of inactivity, as net.Socket does; 0 turns it off. */
  setTimeout(ms: number, cb?: () => void): this {
    // As net's: a destroyed socket takes any arguments and does nothing.
    if (this.destroyed) return this;
    if (typeof ms !== 'number') throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "msecs" argument must be of type number. Received ${received(ms)}`);
    if (!Number.isFinite(ms) || ms < 0) throw argError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "msecs" is out of range. It must be a non-negative finite number. Received ${ms}`);
    if (cb !== undefined && typeof cb !== 'function') throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "callback" argument must be of type function. Received ${received(cb)}`);
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    this.#timeoutMs = ms;
    if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
    this.#timeoutTimer = undefined;
    // Over TCP the net socket keeps the time (its 'timeout' is forwarded).
    if (this.#tcp) this.#tcp.setTimeout(ms);
    else if (ms > 0) this.#armTimeout(ms);
    return this;
  }

  /** As net.Socket's: the socket keeps the process alive (the default). */
  ref(): this {
    this.#refd = true;
    this.#tcp?.ref();
    this.#link?.setRef(true);
    return this;
  }

  /** As net.Socket's: this socket alone no longer keeps the process alive; it works as usual while something else does. */
  unref(): this {
    this.#refd = false;
    this.#tcp?.unref();
    this.#link?.setRef(false);
    return this;
  }

  #refd = true;

  /**
   * As net.Socket's: resets the connection (AbortConn, the peer gets
   * ECONNRESET) and destroys the socket, with no error here. Before the
   * connection is up, it resets once connected; on a closed socket it
   * destroys with ERR_SOCKET_CLOSED.
   */
  resetAndDestroy(): this {
    if (this.destroyed || (!this.#link && !this.#tcp && !this.#connecting)) {
      const err = Object.assign(new Error('Socket is closed'), { code: 'ERR_SOCKET_CLOSED' });
      return this.destroy(err);
    }
    this.#reset = true;
    if (this.#connecting) {
      this.once('connect', () => this.destroy());
      return this;
    }
    return this.destroy();
  }

  #reset = false;

  connect(options: SdpConnectOptions, cb?: () => void): this;
  connect(port: number, host?: string, cb?: () => void): this;
  connect(a: SdpConnectOptions | number, b?: string | (() => void), c?: () => void): this {
    const [given, cb] = normalizeConnectArgs(a, b, c);
    // As net's: a second connect while the first is under way fails the socket with EALREADY, later.
    if (this.#connecting) {
      process.nextTick(() => this.destroy(new SdpSocketError('EALREADY', 'connect', 'a connect is already under way')));
      return this;
    }
    if (this.#conn || this.#tcp) throw new SdpSocketError('EISCONN', 'connect', 'socket is already connected');
    // Destroyed already (an aborted signal): nothing to connect.
    if (this.destroyed) return this;
    const opts = checkConnectOptions(given);
    if (cb) this.once('connect', cb);
    this.#connecting = true;
    if (opts.timeout !== undefined) this.setTimeout(opts.timeout);
    if (opts.keepAlive) this.setKeepAlive(true, opts.keepAliveInitialDelay);
    void this.#establish(opts);
    return this;
  }

  async #establish(opts: SdpConnectOptions): Promise<void> {
    // As net's `options.host || 'localhost'`.
    const host = opts.host || '127.0.0.1';
    let addresses: LookupAddress[];
    try {
      addresses = await this.#resolve(host, opts);
    } catch (err) {
      if (this.destroyed) return;
      this.#connecting = false;
      this.destroy(err as Error);
      return;
    }
    if (this.destroyed) return;
    const sdpAddrs = opts.sdpAddress ? addresses.filter((a) => opts.sdpAddress!(a.address)) : addresses;
    if (sdpAddrs.length === 0) {
      // Transparent mode: no rule covers any of the host's addresses.
      this.#fallback(opts, host, addresses);
      return;
    }
    // One address after another, as net's autoSelectFamily tries them (but not in parallel: an SDP attempt holds a QP).
    let link: Link | undefined;
    let lastErr: unknown;
    for (const a of sdpAddrs) {
      try {
        link = await connectLink({ ...opts, host: a.address }, this.#sinkFor(), resolveOptions(opts));
        break;
      } catch (err) {
        lastErr = err;
        if (this.destroyed) return;
        if (!unreached(err)) break;
      }
    }
    if (this.destroyed) {
      if (link) void link.teardown(true);
      return;
    }
    if (!link) {
      if (opts.fallbackToTcp && unreached(lastErr)) {
        if (process.env.IBAL_SDP_DEBUG) process.stderr.write(`@ibal/sdp: ${host}:${opts.port} over TCP: ${(lastErr as Error).message}\n`);
        this.#fallback(opts, host, addresses);
        return;
      }
      this.#connecting = false;
      this.destroy(lastErr as Error);
      return;
    }
    this.#attach(link);
    this.#connecting = false;
    this.emit('connect');
    this.emit('ready');
    this.#runWaiting();
  }

  /**
   * The addresses to try for `host`, as net.connect finds them: an IP address
   * as it is, 'localhost' as 127.0.0.1 (where the soft device listens; a
   * custom lookup still decides), any other name through `lookup` (all its
   * addresses, deduplicated, families alternating from the first's, as
   * autoSelectFamily orders them), with a 'lookup' event for each.
   */
  async #resolve(host: string, opts: SdpConnectOptions): Promise<LookupAddress[]> {
    const v = net.isIP(host);
    if (v) return [{ address: host, family: v }];
    if (host === 'localhost' && !opts.lookup) {
      // Still a 'lookup' event, as net's, after connect() has returned.
      await new Promise((r) => process.nextTick(r));
      if (this.destroyed) return [];
      this.emit('lookup', null, '127.0.0.1', 4, host);
      return [{ address: '127.0.0.1', family: 4 }];
    }
    const family = opts.family ?? 0;
    const hints = opts.hints || (family === 0 ? dns.ADDRCONFIG : 0);
    const lookup = opts.lookup ?? (dns.lookup as net.LookupFunction);
    const found = await new Promise<LookupAddress[]>((resolve, reject) => {
      lookup(host, { all: true, family, hints }, (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], fam?: number) => {
        if (err) reject(err);
        // A lookup written for net's single-address form still works.
        else resolve(typeof address === 'string' ? [{ address, family: fam ?? net.isIP(address) }] : address);
      });
    }).catch((err: NodeJS.ErrnoException) => {
      if (!this.destroyed) this.emit('lookup', err, undefined, undefined, host);
      throw err;
    });
    const groups: [LookupAddress[], LookupAddress[]] = [[], []];
    let first: number | undefined;
    for (const a of found) {
      if (this.destroyed) break;
      this.emit('lookup', null, a.address, a.family, host);
      const fam = net.isIP(a.address);
      if (fam === 0) continue;
      first ??= fam;
      const g = groups[fam === first ? 0 : 1];
      if (!g.some((x) => x.address === a.address)) g.push({ address: a.address, family: fam });
    }
    const out: LookupAddress[] = [];
    for (let i = 0; i < Math.max(groups[0].length, groups[1].length); i++) {
      if (groups[0][i]) out.push(groups[0][i]!);
      if (groups[1][i]) out.push(groups[1][i]!);
    }
    if (out.length === 0) throw new SdpSocketError('ENOTFOUND', 'getaddrinfo', `no IP address for ${host}`);
    return out;
  }

  /** As SMC-R does: same socket, TCP underneath (to the addresses already resolved, so no second lookup). */
  #fallback(opts: SdpConnectOptions, host: string, addresses: LookupAddress[]): void {
    // A bare net.Socket: transparent mode patches net.connect itself.
    const resolved = net.isIP(host) ? {} : { lookup: resolvedLookup(addresses) };
    const tcp = new net.Socket().connect({ port: opts.port, host, ...resolved, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}), ...(opts.localPort ? { localPort: opts.localPort } : {}) });
    this.#tcp = tcp;
    if (!this.#refd) tcp.unref();
    tcp.on('connect', () => {
      this.#connecting = false;
      this.emit('connect');
      this.emit('ready');
      this.#runWaiting();
    });
    tcp.on('data', (d: Buffer) => {
      if (!(this.#onread ? this.#onread.deliver(d) : this.push(d))) tcp.pause();
    });
    tcp.on('end', () => this.#pushEnd());
    tcp.on('error', (err) => this.destroy(err));
    tcp.on('close', () => {
      if (!this.destroyed && !this.readableEnded) this.destroy();
    });
    tcp.on('timeout', () => this.emit('timeout'));
    // A timeout set while SDP was tried goes on over TCP, timed by the net socket, which sees its traffic.
    if (this.#timeoutMs > 0) {
      if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
      this.#timeoutTimer = undefined;
      tcp.setTimeout(this.#timeoutMs);
    }
  }

  #sinkFor(): ConnectionSink {
    const onread = this.#onread;
    return {
      copies: onread !== undefined,
      // A destroyed socket hands nothing up and emits no 'end', as net.Socket's
      // closed handle reads no more; what still arrives while its teardown
      // waits for our DisConn to land is dropped.
      data: onread ? (chunk) => this.destroyed || onread.deliver(chunk) : (chunk) => this.destroyed || this.push(chunk),
      end: () => {
        if (!this.destroyed) this.#pushEnd();
      },
      failed: (err) => this.destroy(err),
      finished: () => {
        this.#finishedGracefully = true;
      },
    };
  }

  #attach(link: Link): void {
    this.#link = link;
    if (!this.#refd) link.setRef(false);
    this.#conn = link.conn;
    this.#local = { address: link.local.address, family: familyOf(link.local.address), port: link.local.port };
    this.#remote = { address: link.remote.address, family: familyOf(link.remote.address), port: link.remote.port };
    link.setSink(this.#sinkFor());
    // The CM's DREQ without DisConn before it, or the peer's QP vanishing.
    link.onDisconnected = () => {
      // Also while being destroyed: a close waiting for its last sends stops waiting.
      if (this.#finishedGracefully || link.conn.peerClosed() || this.destroyed) return;
      this.destroy(new SdpSocketError('ECONNRESET', 'read', 'the peer disconnected without DisConn'));
    };
  }

  #runWaiting(): void {
    for (const f of this.#waiting.splice(0)) f();
  }

  /**
   * EOF. The read(0) lets 'end' follow at once when nothing is buffered, even
   * with no reader (no 'data' listener, or onread), as net.Socket does: a
   * client that only wrote and ended then closes when the peer ends too,
   * and its process can exit.
   */
  #pushEnd(): void {
    this.push(null);
    this.read(0);
  }

  /** With onread, pausing stops the callback as well; resume() hands over what a stop held back first. */
  override pause(): this {
    if (this.#onread) this.#onread.stopped = true;
    return super.pause();
  }

  override resume(): this {
    // Delivery goes on only if what a stop held back went without stopping it again.
    if (this.#onread?.resume()) {
      if (this.#tcp) this.#tcp.resume();
      else this.#conn?.resume();
    }
    return super.resume();
  }

  // ---- stream internals --------------------------------------------------------

  override _read(): void {
    if (this.#tcp) this.#tcp.resume();
    else this.#conn?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#dispatched += chunk.length;
    this.#writeNow(chunk, cb);
  }

  #writeNow(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.#tcp && !this.#connecting) {
      this.#tcp.write(chunk, cb);
    } else if (this.#conn) {
      this.#conn.write(chunk, cb);
    } else {
      this.#waiting.push(() => this.#writeNow(chunk, cb));
    }
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.#dispatched += c.chunk.length;
    this.#writevNow(chunks, cb);
  }

  #writevNow(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const sink = this.#tcp && !this.#connecting ? this.#tcp : this.#conn;
    if (!sink) {
      this.#waiting.push(() => this.#writevNow(chunks, cb));
      return;
    }
    if (sink === this.#conn) {
      this.#conn.writev(
        chunks.map((c) => c.chunk),
        cb,
      );
      return;
    }
    for (let i = 0; i < chunks.length - 1; i++) sink.write(chunks[i]!.chunk);
    sink.write(chunks[chunks.length - 1]!.chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#tcp && !this.#connecting) {
      this.#tcp.end(cb);
    } else if (this.#conn) {
      this.#conn.end(cb);
    } else {
      this.#waiting.push(() => this._final(cb));
    }
  }

  override _destroy(err: Error | null, destroyed: (err?: Error | null) => void): void {
    // As net.Socket: 'close' (hadError) after 'error', once everything is released.
    const cb = (e?: Error | null): void => {
      destroyed(e);
      process.nextTick(() => this.emit('close', e != null));
    };
    if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
    if (this.#keepAliveTimer) clearInterval(this.#keepAliveTimer);
    this.#timeoutTimer = this.#keepAliveTimer = undefined;
    this.#connecting = false;
    if (this.#tcp) {
      if (this.#reset) this.#tcp.resetAndDestroy();
      else this.#tcp.destroy();
      cb(err);
      return;
    }
    const link = this.#link;
    if (!link) {
      cb(err);
      return;
    }
    const conn = link.conn;
    // As TCP's close(), which sends FIN, not RST, unless received data is
    // still unread: a DisConn after what was written, and once our last
    // sends landed, a teardown without a reset. net.Socket's destroy() and
    // destroy(err) both close so; resetAndDestroy() and this connection's
    // own failures (an SdpSocketError) reset.
    // Bytes the application never read, still in this stream's buffer,
    // count as unread too (a paused net.Socket leaves them in the kernel).
    const reset = this.#reset || err instanceof SdpSocketError || this.readableLength > 0;
    if (!reset && conn.endable) conn.end();
    this.#closing ??= (async () => {
      const graceful = !reset && (this.#finishedGracefully || (await conn.settle(2000)));
      await link.teardown(!graceful);
    })();
    this.#closing.then(
      () => cb(err),
      () => cb(err),
    );
  }

  #armTimeout(ms: number): void {
    // One 'timeout' per idle period, as net's: after it fires, the next needs
    // activity first (the connection's lastActivity moving on).
    let firedFor = -1;
    const check = (): void => {
      this.#timeoutTimer = undefined;
      if (this.destroyed || this.#timeoutMs !== ms) return;
      const last = this.#conn?.lastActivity ?? 0;
      const idle = Date.now() - last;
      if (this.#conn && idle < ms) {
        this.#timeoutTimer = setTimeout(check, ms - idle).unref();
        return;
      }
      if (last !== firedFor) {
        firedFor = last;
        this.emit('timeout');
      }
      if (!this.destroyed && this.#timeoutMs === ms) this.#timeoutTimer = setTimeout(check, ms).unref();
    };
    this.#timeoutTimer = setTimeout(check, ms).unref();
  }
}

/**
 * The connect errors that mean nobody answered over SDP at that address (try
 * the next one, or TCP), or that no RDMA device has the local address asked
 * for (EADDRNOTAVAIL), which TCP may still have.
 */
function unreached(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT' || code === 'EADDRNOTAVAIL';
}

/** A lookup that answers with addresses already found, in either of the forms net asks for. */
function resolvedLookup(addresses: LookupAddress[]): net.LookupFunction {
  return ((_host: string, o: dns.LookupOptions, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const fam = o.family === 4 || o.family === 6 ? o.family : 0;
    const list = fam ? addresses.filter((a) => a.family === fam) : addresses;
    if (o.all) cb(null, list);
    else if (list[0]) cb(null, list[0].address, list[0].family);
    else cb(Object.assign(new Error(`no IPv${fam} address`), { code: 'ENOTFOUND' }), '', 0);
  }) as net.LookupFunction;
}

export function normalizeConnectArgs(a: SdpConnectOptions | number | string, b?: string | (() => void), c?: () => void): [SdpConnectOptions, (() => void) | undefined] {
  // As net's normalizeArgs: the callback is the last argument that is a function; a host only a string second argument.
  const cb = typeof c === 'function' ? c : typeof b === 'function' ? b : undefined;
  const options: SdpConnectOptions = typeof a === 'object' && a !== null ? a : { port: a as number, ...(typeof b === 'string' ? { host: b } : {}) };
  if (options.port === undefined && (options as { path?: unknown }).path == null) {
    throw argError(TypeError, 'ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified');
  }
  if (options.port === undefined) throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', 'SDP connects to a port: options.path (IPC) is not for it');
  return [options, cb];
}

/** The connect options net checks before it connects, in its order; the port as a number. */
function checkConnectOptions(opts: SdpConnectOptions): SdpConnectOptions {
  if (opts.localPort && typeof opts.localPort !== 'number') {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.localPort" property must be of type number. Received ${received(opts.localPort)}`);
  }
  const port: unknown = opts.port;
  if (typeof port !== 'number' && typeof port !== 'string') {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.port" property must be of type number or string. Received ${received(port)}`);
  }
  const n = checkPort(port, 'Port');
  // As net's: a falsy localPort ('' too) means any port.
  if (opts.localPort) checkPort(opts.localPort, 'options.localPort');
  if (opts.lookup !== undefined && typeof opts.lookup !== 'function') {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.lookup" property must be of type function. Received ${typeof opts.lookup}`);
  }
  if (opts.family !== undefined && opts.family !== 0 && opts.family !== 4 && opts.family !== 6) {
    throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.family' must be one of: 0, 4, 6. Received ${String(opts.family)}`);
  }
  // The host last: net finds it wrong only at its lookup.
  checkHostname(opts.host);
  return n === port ? opts : { ...opts, port: n };
}

/** net.connect for SDP: returns the socket at once; 'connect' follows. */
export function connect(options: SdpConnectOptions, cb?: () => void): SdpSocket;
export function connect(port: number, host?: string, cb?: () => void): SdpSocket;
export function connect(a: SdpConnectOptions | number, b?: string | (() => void), c?: () => void): SdpSocket {
  const [opts, cb] = normalizeConnectArgs(a, b, c);
  const s = new SdpSocket(opts);
  return s.connect(opts, cb);
}

export const createConnection = connect;
