// Receiving end of the UDP blast: counts datagrams and bytes as they
// arrive, with an 8 MiB receive buffer. Prints {"port": N} when bound and,
// when a line arrives on stdin, {"result": ...} with the rate over the time
// from the first to the last datagram.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';

const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
let datagrams = 0;
let bytes = 0;
let first = 0;
let last = 0;
socket.on('message', (m) => {
  const now = performance.now();
  if (datagrams === 0) first = now;
  last = now;
  datagrams++;
  bytes += m.length;
});
socket.bind(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: socket.address().port, recvBufferSize: socket.getRecvBufferSize() }) + '\n');
});
readline.createInterface({ input: process.stdin }).once('line', () => {
  const seconds = (last - first) / 1000;
  const result = { datagrams, bytes, seconds, datagramsPerSec: seconds > 0 ? datagrams / seconds : 0, MBps: seconds > 0 ? bytes / seconds / 2 ** 20 : 0 };
  process.stdout.write(JSON.stringify({ result }) + '\n');
  socket.close();
  process.exit(0);
});
setTimeout(() => process.exit(1), 600_000).unref();
