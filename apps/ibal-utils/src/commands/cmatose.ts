// ibal cmatose: librdmacm's ucmatose. Many RC connections at once through
// the CM; over each, both sides SEND `count` messages of `size` bytes and
// receive the other's, then the client disconnects. Every connection
// either completes or is reported with the CM's named reason.
import { parseArgs } from 'node:util';
import { cmResources, connect, listen, type Connection, type ConnectRequest } from '@ibal/cm';
import { Access, SendFlags, WrOpcode, regMr, wcStatusName, type CQ, type MR, type WorkCompletion } from '@ibal/verbs';
import { CliError, UsageError } from '../lib/cli-error.js';
import { intOption } from '../lib/numbers.js';

export const cmatoseHelp = `Usage: ibal cmatose -s [-b addr] [-p port] [-c connections] [-C count] [-S size]
       ibal cmatose -c N -a addr [-p port] [--udp-port N] [-C count] [-S size]

  -s              server side
  -a addr         server address (client)
  -b addr         bind address (server, default 0.0.0.0)
  -p port         rdma_cm port (default 7471)
  --udp-port N    the server device's UDP port, when not 4791 (ibal: soft devices on one host)
  -c connections  connections (default 1); the server exits once it has served this many
  -C count        messages each way per connection (default 10)
  -S size         message size (default 100)
  --dev NAME      the RDMA device to use
  --cm-timeout E  CM response timeout exponent, 4.096 us * 2^E (default 20, rdma_cm's)
  --cm-retries N  CM retransmissions before a connection is given up (default 15)
  --ack-timeout E the QPs' local ACK timeout exponent (RDMA_OPTION_ID_ACK_TIMEOUT; default 18,
                  about 1 s, so that many busy QPs on few cores do not take scheduling delay for loss)
  --timeout ms    bound on each connection's set-up, transfer and teardown (default 60000)`;

interface Options {
  server: boolean;
  address: string;
  port: number;
  udpPort: number | undefined;
  connections: number;
  count: number;
  size: number;
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
      addr: { type: 'string', short: 'a' },
      bind: { type: 'string', short: 'b' },
      port: { type: 'string', short: 'p' },
      'udp-port': { type: 'string' },
      connections: { type: 'string', short: 'c' },
      count: { type: 'string', short: 'C' },
      size: { type: 'string', short: 'S' },
      dev: { type: 'string' },
      timeout: { type: 'string' },
      'cm-timeout': { type: 'string' },
      'cm-retries': { type: 'string' },
      'ack-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const server = values.server === true;
  if (!server && values.addr === undefined) throw new UsageError('the client needs -a <server address> (or -s for the server)');
  return {
    server,
    address: (server ? values.bind : values.addr) ?? '0.0.0.0',
    port: intOption('-p', values.port, 7471, 1, 65535),
    udpPort: values['udp-port'] === undefined ? undefined : intOption('--udp-port', values['udp-port'], 4791, 1, 65535),
    connections: intOption('-c', values.connections, 1, 1, 65536),
    count: intOption('-C', values.count, 10, 0, 1 << 20),
    size: intOption('-S', values.size, 100, 1, 1 << 20),
    device: values.dev,
    timeoutMs: intOption('--timeout', values.timeout, 60_000, 1, 3_600_000),
    cm: {
      ...(values['cm-timeout'] !== undefined ? { cmResponseTimeout: intOption('--cm-timeout', values['cm-timeout'], 20, 8, 31) } : {}),
      ...(values['cm-retries'] !== undefined ? { maxCmRetries: intOption('--cm-retries', values['cm-retries'], 15, 0, 15) } : {}),
      ackTimeout: intOption('--ack-timeout', values['ack-timeout'], 18, 1, 31),
    },
  };
}

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new CliError(`${what}: nothing within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * SEND `count` messages and receive as many; throws with the first failed
 * completion's status. The server then sends one more, "done", and the
 * client waits for it before it disconnects: a client that left on its own
 * last completion could take the QP down while the server still waits for
 * an ACK that was lost.
 */
async function transfer(conn: Connection, o: Options, client: boolean, mr: MR): Promise<void> {
  const recvs = o.count + (client ? 1 : 0);
  {
    for (let i = 0; i < recvs; i++) conn.qp.postRecv({ wrId: i, sgList: [mr.sge(o.size, o.size)] });
    mr.buf.fill(0x5a, 0, o.size);
    let sent = 0;
    let got = 0;
    let inFlight = 0;
    const depth = Math.max(1, Math.min(conn.qp.cap.maxSendWr, o.count));
    const cqs = conn.sendCq === conn.recvCq ? [conn.sendCq] : [conn.sendCq, conn.recvCq];
    const handle = (wc: WorkCompletion): void => {
      if (wc.status !== 0) throw new CliError(`completion error: ${wcStatusName(wc.status)}`);
      if (wc.opcode >= 128) got++;
      else inFlight--;
    };
    const needs = (cq: CQ): boolean => (cq === conn.sendCq && inFlight > 0) || (cq === conn.recvCq && got < recvs);
    // One armed next() per CQ; a CQ is polled only while none is armed on it, so each completion is counted once.
    const armed = new Map<CQ, Promise<void>>();
    while (sent < o.count || got < recvs || inFlight > 0) {
      while (sent < o.count && inFlight < depth) {
        conn.qp.postSend({ wrId: sent, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [mr.sge(0, o.size)] });
        sent++;
        inFlight++;
      }
      for (const cq of cqs) {
        if (armed.has(cq)) continue;
        for (const wc of cq.poll(64)) handle(wc);
        if (!armed.has(cq) && needs(cq)) {
          const p = cq.next().then((wc) => {
            armed.delete(cq);
            handle(wc);
          });
          p.catch(() => undefined);
          armed.set(cq, p);
        }
      }
      if (armed.size > 0) await Promise.race(armed.values());
    }
    // Its completion is not waited for: the client's disconnect says it arrived.
    if (!client) conn.qp.postSend({ wrId: o.count, opcode: WrOpcode.SEND, sendFlags: 0, sgList: [mr.sge(0, 1)] });
  }
}

function reasonOf(err: unknown): string {
  const e = err as { reasonName?: string; code?: string; message?: string };
  return e.reasonName ?? e.code ?? e.message ?? String(err);
}

function summary(print: (l: string) => void, ok: number, failures: Map<string, number>, t: { setup: number; all: number }): void {
  print(`connections: ${ok} completed, ${[...failures.values()].reduce((a, b) => a + b, 0)} failed${failures.size ? ` (${[...failures].map(([r, n]) => `${r}: ${n}`).join(', ')})` : ''}`);
  print(`set-up of all connections ${t.setup.toFixed(1)} ms, whole test ${t.all.toFixed(1)} ms`);
}

/** What is left once every connection is closed: the CM's own tables and the process's handles. */
async function leftovers(print: (l: string) => void): Promise<void> {
  // Devices close with their last id; give the final timewait a moment to end.
  const end = Date.now() + 10_000;
  while (cmResources().devices > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  const r = cmResources();
  print(`cm resources: devices ${r.devices}, ids ${r.ids}, connections ${r.connections}, listeners ${r.listeners}, timers ${r.timers}`);
  // Let callbacks already queued (an Immediate from the last completion, say) run first.
  await new Promise((r) => setTimeout(r, 50));
  const handles = process.getActiveResourcesInfo().filter((h) => h !== 'TTYWrap' && h !== 'PipeWrap');
  const counts = new Map<string, number>();
  for (const h of handles) counts.set(h, (counts.get(h) ?? 0) + 1);
  print(`process handles: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
}

async function serverSide(o: Options, print: (l: string) => void): Promise<void> {
  print('cmatose: starting server');
  const l = await listen({ address: o.address, port: o.port }, { backlog: Math.max(o.connections, 16), device: o.device, ...o.cm });
  const a = l.address;
  print(`cmatose: listening on ${a.address}:${a.port} (udp ${a.udpPort ?? 4791})`);
  const t0 = performance.now();
  let setupDone = 0;
  let ok = 0;
  const failures = new Map<string, number>();
  const one = async (req: ConnectRequest): Promise<void> => {
    const conn = await bounded(req.accept({ cap: { maxSendWr: Math.min(o.count, 63) + 1, maxRecvWr: o.count + 1 } }), o.timeoutMs, 'accept');
    // The MR outlives the transfer: the "done" SEND may still be reading it until the client leaves.
    const mr = regMr(conn.pd, o.size * 2, Access.LOCAL_WRITE);
    try {
      await bounded(transfer(conn, o, false, mr), o.timeoutMs, 'transfer');
      await bounded(conn.disconnected, o.timeoutMs, 'disconnect');
    } finally {
      mr.dereg();
      await conn.close();
    }
  };
  const running: Promise<void>[] = [];
  let seen = 0;
  try {
    for await (const req of l) {
      running.push(
        one(req).then(
          () => void ok++,
          (err: unknown) => void failures.set(reasonOf(err), (failures.get(reasonOf(err)) ?? 0) + 1),
        ),
      );
      if (++seen === o.connections) {
        setupDone = performance.now();
        break;
      }
    }
    print('receiving data transfers');
    await Promise.all(running);
    print('data transfers complete');
  } finally {
    await l.close();
  }
  summary(print, ok, failures, { setup: setupDone - t0, all: performance.now() - t0 });
  await leftovers(print);
  print(`return status ${failures.size ? 1 : 0}`);
  if (failures.size) throw new CliError(`${[...failures.values()].reduce((x, y) => x + y, 0)} connection(s) failed`);
}

async function clientSide(o: Options, print: (l: string) => void): Promise<void> {
  print('cmatose: connecting');
  const t0 = performance.now();
  const failures = new Map<string, number>();
  const fail = (err: unknown): void => void failures.set(reasonOf(err), (failures.get(reasonOf(err)) ?? 0) + 1);
  const conns = await Promise.all(
    Array.from({ length: o.connections }, () =>
      bounded(connect({ address: o.address, port: o.port, udpPort: o.udpPort }, { device: o.device, ...o.cm, cap: { maxSendWr: Math.min(o.count, 63) + 1, maxRecvWr: o.count + 1 } }), o.timeoutMs, 'connect').catch((err: unknown) => {
        fail(err);
        return undefined;
      }),
    ),
  );
  const setup = performance.now() - t0;
  const live = conns.filter((c): c is Connection => c !== undefined);
  print('initiating data transfers');
  let ok = 0;
  await Promise.all(
    live.map(async (c) => {
      const mr = regMr(c.pd, o.size * 2, Access.LOCAL_WRITE);
      try {
        await bounded(transfer(c, o, true, mr), o.timeoutMs, 'transfer');
        ok++;
      } catch (err) {
        fail(err);
      } finally {
        // The QP may still own the buffers of a failed transfer: take it to ERR first.
        await c.disconnect().catch(() => undefined);
        mr.dereg();
      }
    }),
  );
  print('data transfers complete');
  print('cmatose: disconnecting');
  await Promise.all(live.map((c) => bounded(c.close(), o.timeoutMs, 'close').catch(fail)));
  print('disconnected');
  summary(print, ok, failures, { setup, all: performance.now() - t0 });
  await leftovers(print);
  print('test complete');
  print(`return status ${failures.size ? 1 : 0}`);
  if (failures.size) throw new CliError(`${[...failures.values()].reduce((x, y) => x + y, 0)} connection(s) failed`);
}

export async function cmatose(args: string[], print: (line: string) => void): Promise<void> {
  const o = parse(args);
  if (!o) {
    print(cmatoseHelp);
    return;
  }
  if (o.server) await serverSide(o, print);
  else await clientSide(o, print);
}
