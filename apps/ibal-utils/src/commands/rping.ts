// ibal rping: rdma-core's rping over the CM. The client connects; each
// iteration it advertises its "start" buffer (address, rkey, length), the
// server RDMA READs it, the client advertises its "sink" buffer, the server
// RDMA WRITEs the data there, and the client checks sink against start.
import { parseArgs } from 'node:util';
import { connect, listen, type Connection } from '@ibal/cm';
import { Access, SendFlags, WrOpcode, regMr, wcStatusName, type MR, type WorkCompletion } from '@ibal/verbs';
import { CliError, UsageError } from '../lib/cli-error.js';
import { intOption } from '../lib/numbers.js';

export const rpingHelp = `Usage: ibal rping -s [-vVd] [-S size] [-C count] [-a addr] [-p port] [--udp-port N] [-P]
       ibal rping -c [-vVd] [-S size] [-C count] -a addr [-p port] [--udp-port N]

  -s              server side
  -c              client side
  -P              persistent server: serve clients one after another until killed
  -a addr         address (server: bind address, default 0.0.0.0; client: server address)
  -p port         rdma_cm port (default 7174)
  --udp-port N    the server device's UDP port, when not 4791 (ibal: soft devices on one host)
  -C count        ping iterations (default: forever, or until the peer disconnects)
  -S size         ping data size (default 64, at least ${'rdma-ping-%d: '.length + 6})
  -v              display ping data
  -V              validate ping data (client)
  -d              debug printfs
  --dev NAME      the RDMA device to use (default: chosen by address)
  --cm-timeout E  CM response timeout exponent, 4.096 us * 2^E (default 20, rdma_cm's)
  --cm-retries N  CM retransmissions (REQ, REP, DREQ) before giving up (default 15)
  --ack-timeout E the QP's local ACK timeout exponent (default 14)
  --timeout ms    bound on each wait (default 15000)`;

const INFO_SIZE = 16;
const DEFAULT_PORT = 7174;

interface Options {
  server: boolean;
  address: string;
  port: number;
  udpPort: number | undefined;
  count: number;
  size: number;
  verbose: boolean;
  validate: boolean;
  debug: boolean;
  persistent: boolean;
  device: string | undefined;
  timeoutMs: number;
  cm: { cmResponseTimeout?: number; maxCmRetries?: number; ackTimeout?: number };
}

function parse(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      server: { type: 'boolean', short: 's' },
      client: { type: 'boolean', short: 'c' },
      persistent: { type: 'boolean', short: 'P' },
      addr: { type: 'string', short: 'a' },
      port: { type: 'string', short: 'p' },
      'udp-port': { type: 'string' },
      count: { type: 'string', short: 'C' },
      size: { type: 'string', short: 'S' },
      verbose: { type: 'boolean', short: 'v' },
      validate: { type: 'boolean', short: 'V' },
      debug: { type: 'boolean', short: 'd' },
      dev: { type: 'string' },
      timeout: { type: 'string' },
      'cm-timeout': { type: 'string' },
      'cm-retries': { type: 'string' },
      'ack-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  if (values.server === values.client) throw new UsageError('give one of -s (server) or -c (client)');
  if (values.client && values.addr === undefined) throw new UsageError('the client needs -a <server address>');
  return {
    server: values.server === true,
    address: values.addr ?? '0.0.0.0',
    port: intOption('-p', values.port, DEFAULT_PORT, 1, 65535),
    udpPort: values['udp-port'] === undefined ? undefined : intOption('--udp-port', values['udp-port'], 4791, 1, 65535),
    count: intOption('-C', values.count, 0, 0, 2 ** 31 - 1),
    size: intOption('-S', values.size, 64, 'rdma-ping-%d: '.length + 6, 1 << 24),
    verbose: values.verbose === true,
    validate: values.validate === true,
    debug: values.debug === true,
    persistent: values.persistent === true,
    device: values.dev,
    timeoutMs: intOption('--timeout', values.timeout, 15_000, 1, 3_600_000),
    cm: {
      ...(values['cm-timeout'] !== undefined ? { cmResponseTimeout: intOption('--cm-timeout', values['cm-timeout'], 20, 8, 31) } : {}),
      ...(values['cm-retries'] !== undefined ? { maxCmRetries: intOption('--cm-retries', values['cm-retries'], 15, 0, 15) } : {}),
      ...(values['ack-timeout'] !== undefined ? { ackTimeout: intOption('--ack-timeout', values['ack-timeout'], 14, 1, 31) } : {}),
    },
  };
}

/** The ping pattern of iteration `n`: a header, then printable ASCII rotating with n. */
export function rpingPattern(buf: Uint8Array, n: number): void {
  const head = new TextEncoder().encode(`rdma-ping-${n}: `);
  buf.set(head.subarray(0, buf.length), 0);
  let c = 33 + (n % 94);
  for (let i = head.length; i < buf.length - 1; i++) {
    buf[i] = c;
    c = c === 126 ? 33 : c + 1;
  }
  buf[buf.length - 1] = 0;
}

/** Per-connection resources: the info messages, and the buffer the data moves through. */
class Session {
  readonly sendMr: MR;
  readonly recvMr: MR;
  dataMr: MR;
  readonly sinkMr: MR | undefined;
  readonly #timeoutMs: number;

  constructor(
    readonly conn: Connection,
    size: number,
    client: boolean,
    timeoutMs: number,
  ) {
    const all = Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE;
    this.sendMr = regMr(conn.pd, INFO_SIZE, Access.LOCAL_WRITE);
    this.recvMr = regMr(conn.pd, INFO_SIZE, Access.LOCAL_WRITE);
    this.dataMr = regMr(conn.pd, size, all);
    this.sinkMr = client ? regMr(conn.pd, size, all) : undefined;
    this.#timeoutMs = timeoutMs;
  }

  postRecv(): void {
    this.conn.qp.postRecv({ wrId: 1, sgList: [this.recvMr.sge()] });
  }

  /** SEND an rping_rdma_info (buf, rkey, size; big-endian as the C struct is sent). */
  sendInfo(mr: MR, size: number): void {
    const v = new DataView(this.sendMr.buf.buffer, this.sendMr.buf.byteOffset, INFO_SIZE);
    v.setBigUint64(0, BigInt(mr.addr));
    v.setUint32(8, mr.rkey);
    v.setUint32(12, size);
    this.conn.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [this.sendMr.sge()] });
  }

  readInfo(): { addr: number; rkey: number; size: number } {
    const v = new DataView(this.recvMr.buf.buffer, this.recvMr.buf.byteOffset, INFO_SIZE);
    return { addr: Number(v.getBigUint64(0)), rkey: v.getUint32(8), size: v.getUint32(12) };
  }

  /** The server takes whatever size the client advertises (rping's sizes are the client's). */
  ensureData(size: number): void {
    if (this.dataMr.length >= size) return;
    const old = this.dataMr;
    this.dataMr = regMr(this.conn.pd, size, Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE);
    old.dereg();
  }

  /** The next completion of `cq`, or a CliError naming what did not come. */
  async next(which: 'send' | 'recv', what: string): Promise<WorkCompletion> {
    const cq = which === 'send' ? this.conn.sendCq : this.conn.recvCq;
    // A completion already there wins over a disconnect that came after it.
    const ready = cq.poll(1)[0];
    if (ready) {
      if (ready.status !== 0) throw new CliError(`rping: ${what} completed with ${wcStatusName(ready.status)}`);
      return ready;
    }
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(new CliError(`rping: no completion for ${what} within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    const gone = this.conn.disconnected.then(() => {
      throw new CliError(`rping: the peer disconnected while waiting for ${what}`);
    });
    try {
      const wc = await Promise.race([cq.next({ signal: ac.signal, throwOnError: true }), gone]);
      return wc;
    } finally {
      clearTimeout(t);
      ac.abort();
      gone.catch(() => undefined);
    }
  }

  close(): void {
    for (const mr of [this.sendMr, this.recvMr, this.dataMr, this.sinkMr]) mr?.dereg();
  }
}

async function serveOne(conn: Connection, o: Options, print: (l: string) => void): Promise<number> {
  const s = new Session(conn, o.size, false, o.timeoutMs);
  let n = 0;
  try {
    for (;;) {
      if (o.count && n >= o.count) break;
      s.postRecv();
      let wc: WorkCompletion;
      try {
        wc = await s.next('recv', 'the client start buffer');
      } catch (err) {
        // A client that has done its count disconnects: that ends the session.
        if (err instanceof CliError && /disconnected/.test(err.message)) break;
        throw err;
      }
      if (wc.byteLen !== INFO_SIZE) throw new CliError(`rping: bogus info message of ${wc.byteLen} bytes`);
      const start = s.readInfo();
      if (o.debug) print(`server: received start addr 0x${start.addr.toString(16)} rkey 0x${start.rkey.toString(16)} len ${start.size}`);
      if (start.size > 1 << 24) throw new CliError(`rping: the client advertises ${start.size} bytes, more than 16 MiB`);
      s.ensureData(start.size);
      const len = start.size;
      conn.qp.postSend({ wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SendFlags.SIGNALED, sgList: [s.dataMr.sge(0, len)], rdma: { remoteAddr: start.addr, rkey: start.rkey } });
      await s.next('send', 'RDMA READ');
      if (o.verbose) print(`server ping data: ${new TextDecoder().decode(s.dataMr.buf.subarray(0, len - 1))}`);
      s.postRecv();
      s.sendInfo(s.dataMr, len);
      await s.next('send', 'the go-ahead SEND');
      await s.next('recv', 'the client sink buffer');
      const sink = s.readInfo();
      conn.qp.postSend({ wrId: 4, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED, sgList: [s.dataMr.sge(0, Math.min(len, sink.size))], rdma: { remoteAddr: sink.addr, rkey: sink.rkey } });
      await s.next('send', 'RDMA WRITE');
      s.sendInfo(s.dataMr, len);
      n++;
      try {
        await s.next('send', 'the done SEND');
      } catch (err) {
        // The client has what it needs and may disconnect before our SEND's ACK is back.
        if (err instanceof CliError && /disconnected/.test(err.message)) break;
        throw err;
      }
    }
  } finally {
    s.close();
    await conn.close();
  }
  return n;
}

async function server(o: Options, print: (l: string) => void): Promise<void> {
  const l = await listen({ address: o.address, port: o.port }, { backlog: 8, device: o.device, ...o.cm });
  try {
    const a = l.address;
    print(`rping: listening on ${a.address}:${a.port} (udp ${a.udpPort ?? 4791})`);
    for await (const req of l) {
      const conn = await req.accept({ cap: { maxSendWr: 4, maxRecvWr: 4 } });
      if (o.debug) print(`server: accepted ${conn.peerAddr?.address}:${conn.peerAddr?.port}`);
      const n = await serveOne(conn, o, print);
      print(`server DISCONNECT EVENT... (${n} pings)`);
      if (!o.persistent) break;
    }
  } finally {
    await l.close();
  }
}

async function client(o: Options, print: (l: string) => void): Promise<void> {
  const conn = await connect({ address: o.address, port: o.port, udpPort: o.udpPort }, { device: o.device, ...o.cm, cap: { maxSendWr: 4, maxRecvWr: 4 } });
  const s = new Session(conn, o.size, true, o.timeoutMs);
  let n = 0;
  let bad = 0;
  try {
    if (o.debug) print(`client: connected to ${o.address}:${o.port} from port ${conn.localAddr?.port}`);
    while (!o.count || n < o.count) {
      rpingPattern(s.dataMr.buf, n);
      s.sinkMr!.buf.fill(0);
      s.postRecv();
      s.sendInfo(s.dataMr, o.size);
      await s.next('send', 'the start SEND');
      await s.next('recv', 'the go-ahead');
      s.postRecv();
      s.sendInfo(s.sinkMr!, o.size);
      await s.next('send', 'the sink SEND');
      await s.next('recv', 'the done message');
      const got = s.sinkMr!.buf;
      if (o.verbose) print(`ping data: ${new TextDecoder().decode(got.subarray(0, o.size - 1))}`);
      if (o.validate && Buffer.compare(Buffer.from(got.buffer, got.byteOffset, o.size), Buffer.from(s.dataMr.buf.buffer, s.dataMr.buf.byteOffset, o.size)) !== 0) {
        bad++;
        print(`data mismatch in ping ${n}!`);
      }
      n++;
    }
  } catch (err) {
    process.stderr.write(`rping: ping ${n} failed: ${(err as Error).message}; disconnecting\n`);
    throw err;
  } finally {
    s.close();
    await conn.close();
  }
  print(`client DISCONNECT EVENT... (${n} pings${o.validate ? `, ${n - bad} validated` : ''})`);
  if (bad > 0) throw new CliError(`rping: ${bad} of ${n} pings did not validate`);
}

export async function rping(args: string[], print: (line: string) => void): Promise<void> {
  const o = parse(args);
  if (!o) {
    print(rpingHelp);
    return;
  }
  try {
    if (o.server) await server(o, print);
    else await client(o, print);
  } catch (err) {
    if (err instanceof CliError) throw err;
    const e = err as { code?: string; message?: string };
    throw new CliError(`rping: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`);
  }
}
