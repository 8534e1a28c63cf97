// The perf client: it connects, tells the server the test, the sizes and
// the iterations, measures each size, and reports every row to the server.
import type { Context, PortAttr } from '@ibal/verbs';
import type { Cleanup } from '../cleanup.js';
import { IdleTimer } from '../idle-timer.js';
import { closeGracefully, connectTcp } from '../tcp.js';
import { runBw } from './bw.js';
import { requestLat, resetPollRegion, sendLat, writeLat } from './lat.js';
import type { PerfOptions } from './options.js';
import { Control, type PerfDest } from './protocol.js';
import { Receiver } from './receiver.js';
import { banner, jsonDocument, RESULT_LINE, rowLine, runInfo } from './report.js';
import { connectSide, createSide, destOf, type PerfSide } from './resources.js';
import type { BwRow, LatRow } from './stats.js';

async function measure(
  o: PerfOptions,
  side: PerfSide,
  remote: PerfDest,
  size: number,
  iters: number,
  receiver: Receiver | undefined,
  idle: IdleTimer,
): Promise<BwRow | LatRow> {
  if (o.mode === 'bw') return runBw(side, remote, { test: o.test, size, iters, txDepth: o.txDepth, cqMod: o.cqMod }, idle);
  if (o.test === 'write') return writeLat(side, remote, size, iters, true, idle);
  if (o.test === 'send') return sendLat(side, remote, receiver!, size, iters, o.cqMod, true, idle);
  return requestLat(o.test, side, remote, size, iters, idle);
}

/** One run of one size, agreed with the server before and reported to it after. */
async function runOnce(
  o: PerfOptions,
  side: PerfSide,
  remote: PerfDest,
  control: Control,
  size: number,
  iters: number,
  warmup: boolean,
): Promise<BwRow | LatRow> {
  let receiver: Receiver | undefined;
  if (o.mode === 'lat' && o.test === 'send') receiver = new Receiver(side, size, iters, o.rxDepth);
  if (o.mode === 'lat' && o.test === 'write') resetPollRegion(side, size);
  await control.send({ type: 'run', size, iters, warmup });
  await control.expect('ready');
  const idle = new IdleTimer(o.timeoutMs, () => `waiting for completions (${o.test} --${o.mode}, ${size} bytes)`);
  // The server may have nothing to do while this side measures: tell it
  // now and then that the run is alive, so its bounded wait does not expire.
  const heartbeat = setInterval(() => control.post({ type: 'progress' }), Math.max(500, o.timeoutMs / 3));
  let row: BwRow | LatRow;
  try {
    row = await measure(o, side, remote, size, iters, receiver, idle);
  } finally {
    clearInterval(heartbeat);
    idle.stop();
  }
  await control.send({ type: 'result', row: { ...row }, warmup });
  await control.expect('ack');
  return row;
}

export async function perfClient(
  o: PerfOptions,
  base: { ctx: Context; port: PortAttr; gid: Uint8Array },
  cleanup: Cleanup,
  print: (line: string) => void,
): Promise<void> {
  const host = o.host!;
  const mtu = o.mtu ?? base.port.activeMtu;
  const side = createSide(base, o, o.test, o.mode, Math.max(...o.sizes), mtu, cleanup);
  const socket = await connectTcp(host, o.port, o.timeoutMs);
  cleanup.add(() => socket.destroy());
  const control = new Control(socket, `${host}:${o.port}`, o.timeoutMs);
  try {
    const local = destOf(side);
    await control.send({ type: 'hello', test: o.test, mode: o.mode, sizes: o.sizes, mtu, dest: local });
    const { dest: remote } = await control.expect('welcome');
    connectSide(side, remote, o);
    const info = runInfo(o, side, local, remote);
    if (!o.json) for (const line of banner(info)) print(line);
    const rows: (BwRow | LatRow)[] = [];
    for (const size of o.sizes) {
      if (o.warmup > 0) await runOnce(o, side, remote, control, size, o.warmup, true);
      const row = await runOnce(o, side, remote, control, size, o.iters, false);
      rows.push(row);
      if (!o.json) print(rowLine(o.mode, row));
    }
    await control.send({ type: 'done' });
    if (o.json) print(jsonDocument(info, 'client', rows));
    else print(RESULT_LINE);
    await closeGracefully(socket);
  } catch (err) {
    // Tell the server why, so it stops at once instead of timing out.
    control.post({ type: 'error', message: (err as Error).message });
    throw err;
  }
}
