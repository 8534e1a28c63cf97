// The TCP address exchange of the rdma-core ping-pongs, step for step: the
// client connects and writes its records, reads the server's and writes
// "done"; the server reads the client's records, brings its QPs up (so they
// are ready to receive before the client can send), writes its own records
// and waits for "done". One record each for rc/uc/ud; srq_pingpong always
// sends 256 (its MAX_QP), the ones past its QPs zero.
import type net from 'node:net';
import { CliError } from '../cli-error.js';
import { SocketReader, acceptOne, closeGracefully, connectTcp, writeAll } from '../tcp.js';
import { DEST_MESSAGE_BYTES, decodeDest, encodeDest, type PingpongDest } from './dest.js';

/** sizeof "done": the C tools send the terminating NUL too. */
const DONE = Buffer.from('done\0', 'latin1');

export async function clientExchange(host: string, port: number, mine: readonly PingpongDest[], timeoutMs: number): Promise<PingpongDest[]> {
  const socket = await connectTcp(host, port, timeoutMs);
  const peer = `${host}:${port}`;
  try {
    const reader = new SocketReader(socket, peer);
    await writeAll(socket, encodeDests(mine), "Couldn't send local address");
    const remote = await readDests(reader, mine.length, timeoutMs);
    await writeAll(socket, DONE, "Couldn't write remote address");
    await closeGracefully(socket);
    return remote;
  } finally {
    socket.destroy();
  }
}

/**
 * `connect` brings the local QP to RTS for the remote record before this
 * side's record is sent back.
 */
export async function serverExchange(
  listener: net.Server,
  mine: readonly PingpongDest[],
  connect: (remote: PingpongDest[]) => void,
  timeoutMs: number,
): Promise<PingpongDest[]> {
  const socket = await acceptOne(listener, timeoutMs);
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  try {
    const reader = new SocketReader(socket, peer);
    const remote = await readDests(reader, mine.length, timeoutMs);
    try {
      connect(remote);
    } catch (err) {
      throw new CliError(`Couldn't connect to remote QP: ${(err as Error).message}`);
    }
    await writeAll(socket, encodeDests(mine), "Couldn't send local address");
    const done = await reader.read(DONE.length, timeoutMs, "Couldn't send/recv local address");
    if (!done.equals(DONE)) throw new CliError(`Couldn't send/recv local address: expected "done", got ${JSON.stringify(done.toString('latin1'))}`);
    await closeGracefully(socket);
    return remote;
  } finally {
    socket.destroy();
  }
}

function encodeDests(list: readonly PingpongDest[]): Buffer {
  return Buffer.concat(list.map(encodeDest));
}

async function readDests(reader: SocketReader, n: number, timeoutMs: number): Promise<PingpongDest[]> {
  const out: PingpongDest[] = [];
  for (let i = 0; i < n; i++) out.push(decodeDest(await reader.read(DEST_MESSAGE_BYTES, timeoutMs, "Couldn't read remote address")));
  return out;
}
