// Baseline TCP server on 127.0.0.1: for each connection, a header line
// "lat SIZE ITERS" or "bw SIZE ITERS", then either an echo of ITERS
// messages of SIZE bytes (ping-pong) or a sink for SIZE*ITERS bytes that
// answers one byte when all has arrived. Prints {"port": N} when listening;
// exits when its stdin closes (or after an hour, a bound for a lost parent).
import net from 'node:net';

function serve(socket) {
  socket.setNoDelay(true);
  let header;
  let chunks = [];
  let buffered = 0;
  let remaining = 0;
  let echoed = 0;
  socket.on('data', (d) => {
    if (header === undefined) {
      chunks.push(d);
      buffered += d.length;
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      if (nl < 0) return;
      const [mode, size, iters] = all.subarray(0, nl).toString().split(' ');
      header = { mode, size: Number(size), iters: Number(iters) };
      remaining = header.size * header.iters;
      d = all.subarray(nl + 1);
      chunks = [];
      buffered = 0;
      if (d.length === 0) return;
    }
    if (header.mode === 'bw') {
      remaining -= d.length;
      if (remaining <= 0) socket.end(Buffer.from([1]));
      return;
    }
    // Echo each full message as it completes.
    chunks.push(d);
    buffered += d.length;
    while (buffered >= header.size && echoed < header.iters) {
      const all = Buffer.concat(chunks);
      socket.write(all.subarray(0, header.size));
      const rest = all.subarray(header.size);
      chunks = rest.length ? [rest] : [];
      buffered = rest.length;
      echoed++;
    }
    if (echoed === header.iters) socket.end();
  });
  socket.on('error', () => {});
}

const server = net.createServer(serve);
server.listen({ port: 0, host: '127.0.0.1' }, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(1), 3600_000).unref();
