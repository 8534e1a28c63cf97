// Sending end of the UDP blast: 4 KiB datagrams to 127.0.0.1:PORT as fast
// as the socket takes them for SECONDS, keeping at most a bounded number of
// sends queued in libuv. Prints {"sent": N} and exits.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

const port = Number(process.argv[2]);
const seconds = Number(process.argv[3] ?? 2);
const size = Number(process.argv[4] ?? 4096);
const MAX_QUEUED = 512;
const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
const payload = Buffer.alloc(size, 0x5a);
let sent = 0;
let queued = 0;
let errors = 0;
const end = performance.now() + seconds * 1000;
const onSent = (err) => {
  queued--;
  if (err) errors++;
};
function burst() {
  while (queued < MAX_QUEUED) {
    queued++;
    sent++;
    socket.send(payload, port, '127.0.0.1', onSent);
  }
  if (performance.now() < end) setImmediate(burst);
  else finish();
}
function finish() {
  const drained = () => {
    if (queued > 0) return setImmediate(drained);
    process.stdout.write(JSON.stringify({ sent, errors }) + '\n');
    socket.close();
  };
  drained();
}
socket.bind(0, '127.0.0.1', burst);
