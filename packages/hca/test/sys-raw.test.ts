import { afterEach, describe, expect, it } from 'vitest';
import { BatchUdpSocket } from '../src/sys/mmsg.js';
import { RawRoceSocket, rawSocketsAvailable } from '../src/sys/raw.js';

const raw = rawSocketsAvailable();
let open: { close(): void }[] = [];
afterEach(() => {
  open.forEach((s) => s.close());
  open = [];
});

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

function ipChecksumOk(f: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (f[i]! << 8) | f[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

describe('RawRoceSocket (IP_HDRINCL)', () => {
  it.skipIf(!raw.ok)(`sends IPv4 frames with ID 0 and DF and receives them with the IP header${raw.ok ? '' : ` (skipped: ${raw.reason})`}`, async () => {
    const frames: Uint8Array[] = [];
    const sock = new RawRoceSocket({ address: '127.0.0.1', port: 0, onFrames: (b) => {
      for (let i = 0; i < b.count; i++) frames.push(Uint8Array.from(b.datagram(i)));
    } });
    open.push(sock);
    const peer = sock.peer('127.0.0.1');
    const payloads = [1, 12, 300, 1024, 4096 + 28].map((n, k) => Uint8Array.from({ length: n }, (_, j) => (j * 13 + k) & 0xff));
    for (const p of payloads) expect(sock.send(p, peer, sock.port, 49152)).toBe(true);
    sock.flush();
    await until(() => frames.length >= payloads.length, 10_000);
    for (const [k, f] of frames.entries()) {
      expect(f[0]).toBe(0x45);
      expect((f[2]! << 8) | f[3]!).toBe(f.length);
      expect((f[4]! << 8) | f[5]!).toBe(0); // Identification 0
      expect((f[6]! << 8) | f[7]!).toBe(0x4000); // DF, offset 0
      expect(f[9]).toBe(17);
      expect(Array.from(f.subarray(12, 20))).toEqual([127, 0, 0, 1, 127, 0, 0, 1]);
      expect(ipChecksumOk(f)).toBe(true);
      expect((f[20]! << 8) | f[21]!).toBe(49152);
      expect((f[22]! << 8) | f[23]!).toBe(sock.port);
      expect(Buffer.compare(f.subarray(28), payloads[k]!)).toBe(0);
    }
    expect(sock.counters.txDatagrams).toBe(payloads.length);
  });

  it.skipIf(!raw.ok)('receives an ordinary UDP sender\'s datagram with the header the kernel wrote', async () => {
    const frames: Uint8Array[] = [];
    const sock = new RawRoceSocket({ port: 0, onFrames: (b) => frames.push(Uint8Array.from(b.datagram(0))) });
    open.push(sock);
    const udp = new BatchUdpSocket({});
    open.push(udp);
    udp.send(Buffer.from('from udp'), udp.peer('127.0.0.1', sock.port));
    udp.flush();
    await until(() => frames.length === 1, 10_000);
    const f = frames[0]!;
    expect(f[9]).toBe(17);
    expect((f[20]! << 8) | f[21]!).toBe(udp.port);
    expect(Buffer.from(f.subarray(28)).toString()).toBe('from udp');
  });

  it.skipIf(raw.ok)(`reports why raw sockets are unavailable`, () => {
    expect(raw.reason).toMatch(/CAP_NET_RAW|addon/);
  });
});
