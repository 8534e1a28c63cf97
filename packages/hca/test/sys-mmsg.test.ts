import { afterEach, describe, expect, it } from 'vitest';
import { ResourceClosedError } from '../src/errors.js';
import { BatchUdpSocket, ipv6Text, type DatagramBatch } from '../src/sys/mmsg.js';
import { sysStatus } from '../src/sys/status.js';

const skip = !sysStatus().mmsg.on && process.env.IBAL_NATIVE_REQUIRED !== '1';
let open: BatchUdpSocket[] = [];
afterEach(() => {
  open.forEach((s) => s.close());
  open = [];
});

function socket(opts: ConstructorParameters<typeof BatchUdpSocket>[0]): BatchUdpSocket {
  const s = new BatchUdpSocket(opts);
  open.push(s);
  return s;
}

function pattern(i: number): Uint8Array {
  const len = 1 + ((i * 389) % 1400);
  const b = new Uint8Array(len);
  for (let j = 0; j < len; j++) b[j] = (i * 31 + j) & 0xff;
  b[0] = i & 0xff;
  if (len > 1) b[1] = i >>> 8;
  return b;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe.skipIf(skip)('BatchUdpSocket (sendmmsg/recvmmsg)', () => {
  it('sends and receives hundreds of datagrams in batches, intact and in order', async () => {
    const N = 512;
    const got: { i: number; ok: boolean; port: number; from: string }[] = [];
    let batches = 0;
    const rx = socket({
      batch: 32,
      onMessages: (b: DatagramBatch) => {
        batches++;
        for (let k = 0; k < b.count; k++) {
          const d = b.datagram(k);
          const i = d.length > 1 ? d[0]! | (d[1]! << 8) : d[0]!;
          got.push({ i, ok: !b.truncated(k) && Buffer.compare(d, pattern(i)) === 0, port: b.port(k), from: b.address(k) });
        }
      },
    });
    const tx = socket({ batch: 64 });
    const peer = tx.peer('127.0.0.1', rx.port);
    // 64 at a time (one sendmmsg each), each group drained before the next,
    // so the loopback socket buffer never overflows.
    for (let base = 0; base < N; base += 64) {
      for (let i = base; i < base + 64; i++) expect(tx.send(pattern(i), peer)).toBe(true);
      await until(() => got.length >= base + 64, 20_000);
    }
    expect(got.map((g) => g.i)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(got.every((g) => g.ok && g.port === tx.port && g.from === '127.0.0.1')).toBe(true);
    expect(tx.counters.txDatagrams).toBe(N);
    expect(tx.counters.txBatches).toBe(N / 64);
    expect(rx.counters.rxDatagrams).toBe(N);
    expect(rx.counters.rxBatches).toBe(batches);
    // Several datagrams per wakeup, not one recvmsg each.
    expect(batches).toBeLessThan(N);
  });

  it('reserve() writes straight into the send arena', async () => {
    const got: string[] = [];
    const rx = socket({ onMessages: (b) => got.push(Buffer.from(b.datagram(0)).toString()) });
    const tx = socket({});
    const at = tx.reserve(5, tx.peer('127.0.0.1', rx.port));
    tx.arena.set(Buffer.from('hello'), at);
    expect(tx.flush()).toBe(1);
    await until(() => got.length === 1, 10_000);
    expect(got).toEqual(['hello']);
  });

  it('IPv6: accepts a zero UDP checksum only with noCheck6Rx', async (ctx) => {
    let plain: BatchUdpSocket;
    const plainGot: string[] = [];
    const lenientGot: string[] = [];
    try {
      plain = socket({ family: 6, address: '::1', onMessages: (b) => plainGot.push(Buffer.from(b.datagram(0)).toString()) });
    } catch {
      ctx.skip();
      return;
    }
    const lenient = socket({ family: 6, address: '::1', noCheck6Rx: true, onMessages: (b) => lenientGot.push(Buffer.from(b.datagram(0)).toString()) });
    const zero = socket({ family: 6, address: '::1', noCheck6Tx: true });
    const normal = socket({ family: 6, address: '::1' });
    zero.send(Buffer.from('zero-to-plain'), zero.peer('::1', plain!.port));
    zero.send(Buffer.from('zero-to-lenient'), zero.peer('::1', lenient.port));
    zero.flush();
    normal.send(Buffer.from('marker'), normal.peer('::1', plain!.port));
    normal.flush();
    await until(() => plainGot.length >= 1 && lenientGot.length >= 1, 10_000);
    // Datagrams to one socket arrive in order: the marker came after the
    // zero-checksum datagram, which the kernel dropped.
    expect(plainGot).toEqual(['marker']);
    expect(lenientGot).toEqual(['zero-to-lenient']);
  });

  it('formats IPv6 sources and refuses use after close', () => {
    expect(ipv6Text(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))).toBe('::1');
    expect(ipv6Text(Uint8Array.from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2]))).toBe('fe80::1:0:0:2');
    const s = new BatchUdpSocket({});
    s.close();
    expect(() => s.send(new Uint8Array(1), 0)).toThrow(ResourceClosedError);
  });
});
