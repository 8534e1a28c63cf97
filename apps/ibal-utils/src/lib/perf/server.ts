// The perf server: it accepts one client, sets up for the sizes the client
// asks for, takes its part in each run (receives for SEND, the echo half of
// the latency ping-pongs, nothing at all for WRITE/READ/atomic bandwidth),
// and prints the client's results.
import type { Context, PortAttr } from '@ibal/verbs';
import type { Cleanup } from '../cleanup.js';
import { CliError } from '../cli-error.js';
import { ipOfGid } from '../device.js';
import { IdleTimer } from '../idle-timer.js';
import { acceptOne, closeGracefully, listenTcp } from '../tcp.js';
import { resetPollRegion, sendLat, writeLat } from './lat.js';
import { MAX_SIZE, type PerfOptions } from './options.js';
import { Control, type PerfMessage } from './protocol.js';
import { Receiver } from './receiver.js';
import { banner, jsonDocument, RESULT_LINE, rowLine, runInfo } from './report.js';
import { connectSide, createSide, destOf } from './resources.js';
import type { BwRow, LatRow } from './stats.js';

const WAITING = ['', '************************************', '* Waiting for client to connect... *', '************************************'];

function checkHello(o: PerfOptions, m: Extract<PerfMessage, { type: 'hello' }>): string | undefined {
  if (m.test !== o.test || m.mode !== o.mode) return `the client runs "${m.test} --${m.mode}", this server "${o.test} --${o.mode}"`;
  if (!Array.isArray(m.sizes) || m.sizes.length === 0 || !m.sizes.every((s) => Number.isInteger(s) && s >= 1 && s <= MAX_SIZE)) {
    return 'the client sent no valid sizes';
  }
  if (!Number.isInteger(m.mtu) || m.mtu < 1 || m.mtu > 5) return 'the client sent no valid MTU';
  return undefined;
}

function checkRow(row: unknown): row is BwRow | LatRow {
  return typeof row === 'object' && row !== null && Object.values(row).every((v) => typeof v === 'number' && Number.isFinite(v));
}

export async function perfServer(
  o: PerfOptions,
  base: { ctx: Context; port: PortAttr; gid: Uint8Array },
  cleanup: Cleanup,
  print: (line: string) => void,
  note: (line: string) => void,
): Promise<void> {
  const listener = await listenTcp(o.port, o.bind ?? ipOfGid(base.gid));
  cleanup.add(() => listener.close());
  // With --json, stdout carries only the JSON document.
  for (const line of WAITING) (o.json ? note : print)(line);
  const socket = await acceptOne(listener, o.timeoutMs);
  cleanup.add(() => socket.destroy());
  const control = new Control(socket, `${socket.remoteAddress}:${socket.remotePort}`, o.timeoutMs);
  try {
    const hello = await control.expect('hello');
    const refused = checkHello(o, hello);
    if (refused) throw new CliError(refused);
    const maxSize = Math.max(...hello.sizes);
    const side = createSide(base, o, o.test, o.mode, maxSize, hello.mtu, cleanup);
    connectSide(side, hello.dest, o);
    const local = destOf(side);
    await control.send({ type: 'welcome', dest: local });
    const info = runInfo(o, side, local, hello.dest);
    if (!o.json) for (const line of banner(info)) print(line);
    const rows: (BwRow | LatRow)[] = [];
    for (;;) {
      const m = await control.next();
      if (m.type === 'done') break;
      if (m.type !== 'run') throw new CliError(`expected run or done from the client, got ${m.type}`);
      const { size, iters, warmup } = m;
      if (!Number.isInteger(size) || size < 1 || size > maxSize) throw new CliError(`the client asked for ${size} bytes, beyond the ${maxSize} it announced`);
      if (!Number.isInteger(iters) || iters < 1) throw new CliError(`the client asked for ${iters} iterations`);
      let receiver: Receiver | undefined;
      if (o.test === 'send') receiver = new Receiver(side, size, iters, o.rxDepth);
      if (o.mode === 'lat' && o.test === 'write') resetPollRegion(side, size);
      await control.send({ type: 'ready' });
      const idle = new IdleTimer(o.timeoutMs, () => `waiting for the client's traffic (${o.test} --${o.mode}, ${size} bytes)`);
      try {
        if (o.mode === 'lat' && o.test === 'write') await writeLat(side, hello.dest, size, iters, false, idle);
        else if (o.mode === 'lat' && o.test === 'send') await sendLat(side, hello.dest, receiver!, size, iters, o.cqMod, false, idle);
        else if (receiver) await receiver.all(idle);
      } finally {
        idle.stop();
      }
      const { row } = await control.expect('result');
      if (!checkRow(row)) throw new CliError('the client sent a malformed result row');
      if (!warmup) {
        rows.push(row);
        if (!o.json) print(rowLine(o.mode, row));
      }
      await control.send({ type: 'ack' });
    }
    if (o.json) print(jsonDocument(info, 'server', rows));
    else print(RESULT_LINE);
    await closeGracefully(socket);
  } catch (err) {
    control.post({ type: 'error', message: (err as Error).message });
    throw err;
  }
}
