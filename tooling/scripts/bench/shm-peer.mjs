// The far side of bench-shm.mjs, in its own process.
//   shm-peer.mjs echo SHM RING1      echo every message of ring 0 back on
//                                    ring RING1 (blocking spin-then-futex waits)
//   shm-peer.mjs sink SHM RING1 N    consume N messages of ring 0, copying
//                                    each into a buffer of its own; then
//                                    answer one 8-byte message on ring RING1
//   shm-peer.mjs vm-target SIZE      own a SIZE-byte buffer, print its address
// Exits when its stdin closes; every wait is bounded.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const hca = await import(path.resolve(here, '..', '..', '..', 'packages', 'hca', 'dist', 'index.js'));
const { ShmRing, ShmSegment, addressOf } = hca;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const [mode, ...args] = process.argv.slice(2);
const WAIT_MS = 10_000;
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

function fail(msg) {
  out({ error: msg });
  process.exit(1);
}

if (mode === 'echo' || mode === 'sink') {
  const seg = ShmSegment.open(args[0]);
  const rx = ShmRing.attach(seg.buffer, 0);
  const tx = ShmRing.attach(seg.buffer, Number(args[1]));
  out({ ready: true });
  if (mode === 'echo') {
    for (;;) {
      const len = rx.peek();
      if (len < 0) {
        if (rx.peerClosed) process.exit(0);
        if (rx.waitDataSync(WAIT_MS) === 'timed-out') fail('echo: no message within 10 s');
        continue;
      }
      const at = tx.reserve(len);
      if (at < 0) fail('echo: reply ring full');
      tx.data.set(rx.data.subarray(rx.offset, rx.offset + len), at);
      rx.release();
      tx.commit(rx.tag);
    }
  } else {
    const n = Number(args[2]);
    const dst = new Uint8Array(rx.maxMessage);
    for (let got = 0; got < n; ) {
      const len = rx.peek();
      if (len < 0) {
        if (rx.waitDataSync(WAIT_MS) === 'timed-out') fail('sink: no message within 10 s');
        continue;
      }
      dst.set(rx.data.subarray(rx.offset, rx.offset + len));
      rx.release();
      got++;
    }
    tx.tryWrite(new Uint8Array(8), n);
    out({ sunk: n });
  }
} else if (mode === 'vm-target') {
  const buf = new Uint8Array(Number(args[0]));
  out({ ready: true, pid: process.pid, addr: addressOf(buf).toString() });
  setInterval(() => buf[0]++, 60_000);
} else {
  fail(`unknown mode ${mode}`);
}
