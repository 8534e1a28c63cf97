import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SendFlags, WcStatus, WrOpcode } from '../src/enums.js';
import { decodePacket, DecodeResult, newParsedPacket } from '../src/packet/packet.js';
import { checkIcrc, computeIcrcFromFrame, readIcrc, writeIcrc } from '../src/packet/icrc.js';
import { ipFromLinkFrame, readCapture } from '../src/pcap-reader.js';
import { locateUdp } from '../src/packet/ip-frame.js';
import { close, completions, connect, pair, side, type Side } from './helpers/pair.js';
import { MAX_HEARD_PEERS } from '../src/soft/wire.js';

const SIG = SendFlags.SIGNALED;
let live: Side[] = [];
afterEach(() => {
  close(...live);
  live = [];
});

function hasTshark(): boolean {
  return spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function traffic(a: Side, b: Side) {
  for (let i = 0; i < 20_000; i++) a.mr.buf[i] = i & 0xff;
  b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 20_000, lkey: b.mr.lkey }] }]);
  a.qp.postSend([
    { wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 5, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 10_000, lkey: a.mr.lkey }] },
    { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 9000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 30_000, rkey: b.mr.rkey } },
    { wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 50_000, length: 9000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 30_000, rkey: b.mr.rkey } },
    { wrId: 4, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 60_000, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 0n, swap: 9n } },
  ]);
  const w = await completions(a, 4);
  expect(w.map((x) => x.status)).toEqual([0, 0, 0, 0]);
  await completions(b, 1);
}

/**
 * traffic() between two new devices, `who` of them capturing into `file`
 * (IBAL_PCAP is read when a device opens); returns the capture, at least
 * ten records, and the devices' UDP ports.
 */
async function captureTraffic(file: string, who: 'both' | 'b'): Promise<{ recs: ReturnType<typeof readCapture>; ports: number[] }> {
  const early = who === 'b' ? await side({}) : undefined;
  if (early) live.push(early);
  process.env.IBAL_PCAP = file;
  let ports: number[];
  try {
    const a = early ?? (await side({}));
    if (!early) live.push(a);
    const b = await side({});
    live.push(b);
    connect(a, b, {});
    ports = [a.ctx.queryPort(1).udpPort, b.ctx.queryPort(1).udpPort];
    await traffic(a, b);
  } finally {
    delete process.env.IBAL_PCAP;
  }
  close(...live);
  live = [];
  const recs = readCapture(fs.readFileSync(file));
  expect(recs.length).toBeGreaterThan(10);
  return { recs, ports };
}

describe('the UDP wire', () => {
  it('runs over IPv6 (::1)', async () => {
    const [x, y] = await pair({ address: '::1' });
    live.push(x, y);
    expect(x.ctx.queryPort(1).wire).toMatch(/^udp6( \(sendmmsg\))?$/);
    await traffic(x, y);
  });

  it('IBAL_PCAP writes a capture whose every packet carries its ICRC (over a ring too, which sends none)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-cap-'));
    const file = path.join(dir, 'icrc.pcap');
    // Only b captures: over a ring, a sends no ICRC, and b's capture fills it in.
    const { recs } = await captureTraffic(file, 'b');
    for (const rec of recs) {
      // The devices listen on ephemeral ports, not 4791: find the UDP payload by hand.
      const ip = ipFromLinkFrame(rec.linkType, rec.data)!;
      const udp = locateUdp(ip)!;
      const roce = ip.subarray(udp.payloadOffset, udp.payloadOffset + udp.payloadLength);
      expect(computeIcrcFromFrame(ip)).toBe(readIcrc(roce, roce.length));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasTshark())('IBAL_PCAP writes a capture that tshark decodes as RoCEv2 with no malformed packet', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-cap-'));
    const file = path.join(dir, 'session.pcap');
    const { recs, ports } = await captureTraffic(file, 'both');
    const decodeAs = ports.flatMap((p) => ['-d', `udp.port==${p},infiniband`]);
    const out = spawnSync('tshark', ['-n', '-r', file, ...decodeAs, '-T', 'fields', '-e', 'infiniband.bth.opcode', '-e', '_ws.malformed', '-e', '_ws.expert.severity'], {
      encoding: 'utf8',
    });
    expect(out.status).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines).toHaveLength(recs.length);
    for (const l of lines) {
      const [opcode, malformed, severity] = l.split('\t');
      expect(opcode).toMatch(/^\d+$/);
      expect(malformed ?? '').toBe('');
      // Expert "error" severity is 8388608 (0x800000) in Wireshark.
      expect(severity ?? '').not.toMatch(/8388608/);
    }
    const opcodes = new Set(lines.map((l) => Number(l.split('\t')[0])));
    expect([...opcodes].sort((x, y) => x - y)).toEqual(expect.arrayContaining([0x00, 0x01, 0x03, 0x06, 0x07, 0x08, 0x0c, 0x0d, 0x0f, 0x11, 0x12, 0x13]));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('the ICRC by path', () => {
  it('is on every wire packet and on no ring packet; a ring packet that a fault corrupts is refused as a wire bit error is', async () => {
    const [a, b] = await pair();
    live.push(a, b);
    const wire = b.dev.wire;
    const orig = wire.onPacket;
    const seen: { icrc: boolean | undefined; valid: boolean; zero: boolean }[] = [];
    wire.onPacket = (buf, peer, icrc) => {
      seen.push({ icrc, valid: checkIcrc(buf, buf.length, peer.rx), zero: readIcrc(buf, buf.length) === 0 });
      orig(buf, peer, icrc);
    };
    await traffic(a, b);
    wire.onPacket = orig;
    expect(seen.length).toBeGreaterThan(5);
    if (process.env.IBAL_SOFT_SHM === '1') {
      // Memory of this host: no ICRC computed, none checked (marked true).
      expect(seen.every((p) => p.icrc === true && p.zero && !p.valid)).toBe(true);
    } else {
      expect(seen.every((p) => p.icrc === undefined && p.valid)).toBe(true);
    }
    // A flipped bit is caught either way: by the ICRC, or on a ring by the injector's own account.
    const c = b.dev.counters;
    const refusedBefore = c.rxBadIcrc + c.rxMalformed;
    b.dev.setFaults({ seed: 5, corrupt: 1 });
    b.qp.postRecv([{ wrId: 7, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 8, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    const deadline = Date.now() + 5000;
    while (b.dev.faults!.counters.corrupted === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    b.dev.setFaults(undefined);
    expect(c.rxBadIcrc + c.rxMalformed).toBeGreaterThan(refusedBefore);
    // The requester's retry gets the message through once the faults stop.
    expect((await completions(a, 1))[0]!.status).toBe(WcStatus.SUCCESS);
    expect((await completions(b, 1))[0]!.status).toBe(WcStatus.SUCCESS);
  });
});

describe('the receive path under garbage', () => {
  it('drops and counts random and mutated datagrams without throwing, and keeps working', async () => {
    const [a, b] = await pair();
    live.push(a, b);
    // Capture real packets to mutate: send traffic with a pcap-free tap on the wire.
    const samples: Buffer[] = [];
    const wire = b.dev.wire;
    const orig = wire.onPacket;
    wire.onPacket = (buf, peer, icrc) => {
      if (samples.length < 64) {
        // A ring's packet has no ICRC (icrc true): give the sample the one a wire needs.
        const copy = Buffer.from(buf);
        if (icrc === true) writeIcrc(copy, copy.length, peer.rx);
        samples.push(copy);
      }
      orig(buf, peer, icrc);
    };
    await traffic(a, b);
    wire.onPacket = orig;
    expect(samples.length).toBeGreaterThan(4);

    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = b.ctx.queryPort(1).udpPort;
    const before = b.dev.counters.rxPackets;
    const droppedBefore = b.dev.counters.rxDropped;
    // Where the datagrams came from, for the message should the count be off
    // (once in CI: 2008 for 2000 sent, under load; not reproduced alone).
    const sources = new Map<string, number>();
    wire.onPacket = (buf, peer, icrc) => {
      const k = `${peer.address}:${peer.port}`;
      sources.set(k, (sources.get(k) ?? 0) + 1);
      orig(buf, peer, icrc);
    };
    const shmBefore = wire.shm?.counters.rxShm ?? 0;
    const emptyBefore = wire.counters.rxEmpty;
    let count = 0;
    let empty = 0;
    const send = (buf: Uint8Array) =>
      new Promise<void>((r) => {
        // An empty datagram is no packet: the wire drops it under rxEmpty (a reachability probe).
        if (buf.length === 0) empty++;
        else count++;
        sock.send(buf, port, '127.0.0.1', () => r());
      });
    await send(new Uint8Array(0));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 300 }), async (bytes) => {
        await send(bytes);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(fc.nat(samples.length - 1), fc.nat(), fc.integer({ min: 0, max: 3 }), async (i, bit, kind) => {
        const s = Buffer.from(samples[i]!);
        if (kind === 0) s[bit % s.length]! ^= 1 << (bit % 8);
        else if (kind === 1) await send(s.subarray(0, bit % s.length));
        else if (kind === 2) s.writeUInt32BE((bit * 2654435761) >>> 0, 4 + ((bit % 3) * 4));
        if (kind !== 1) await send(s);
      }),
      { numRuns: 1500 },
    );
    // Wait until the device has seen them all (bounded).
    const deadline = Date.now() + 5000;
    while ((b.dev.counters.rxPackets - before < count || wire.counters.rxEmpty - emptyBefore < empty) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    wire.onPacket = orig;
    const fuzzFrom = `127.0.0.1:${sock.address().port}`;
    sock.close();
    const seen = b.dev.counters.rxPackets - before;
    const from = `fuzz socket ${fuzzFrom}; UDP by source ${JSON.stringify(Object.fromEntries(sources))}; shm ring ${(wire.shm?.counters.rxShm ?? 0) - shmBefore}`;
    expect(seen, from).toBe(count);
    expect(wire.counters.rxEmpty - emptyBefore).toBe(empty);
    // Every datagram was either dropped under a named counter or was a (stale) duplicate that the QP handled.
    const dropped = b.dev.counters.rxDropped - droppedBefore;
    expect(dropped).toBeGreaterThan(count * 0.9);
    expect(b.dev.counters.rxMalformed + b.dev.counters.rxBadIcrc).toBeGreaterThan(0);
    // The data path still works afterwards, unless a mutated packet with a valid ICRC
    // legitimately moved the QP to ERR (only possible if the CRC collided: never, here).
    expect(b.qp.state).not.toBe(6);
    const p = newParsedPacket();
    expect(decodePacket(samples[0]!, samples[0]!.length, p)).toBe(DecodeResult.OK);
    b.qp.postRecv([{ wrId: 2, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 9, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    expect((await completions(a, 1))[0]!.status).toBe(WcStatus.SUCCESS);
  });
});

describe('empty datagrams', () => {
  it('are counted as rxEmpty and leave no peer behind (a reachability probe comes from a one-off port)', async () => {
    const [a, b] = await pair();
    live.push(a, b);
    const wire = b.dev.wire;
    const peers = () => [...(wire as unknown as { peers: Map<string, Map<number, unknown>> }).peers.values()].reduce((n, m) => n + m.size, 0);
    const before = { peers: peers(), empty: wire.counters.rxEmpty, rx: b.dev.counters.rxPackets };
    const port = b.ctx.queryPort(1).udpPort;
    for (let i = 0; i < 20; i++) {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      await new Promise<void>((r) => sock.send(Buffer.alloc(0), port, '127.0.0.1', () => r()));
      sock.close();
    }
    const deadline = Date.now() + 5000;
    while (wire.counters.rxEmpty - before.empty < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(wire.counters.rxEmpty - before.empty).toBe(20);
    expect(b.dev.counters.rxPackets).toBe(before.rx);
    expect(peers()).toBe(before.peers);
  });
});

describe('the peer cache', () => {
  it('stays bounded under datagrams from ever new ports, and never drops a peer something sends to', async () => {
    const [a, b] = await pair();
    live.push(a, b);
    const wire = b.dev.wire;
    const cache = (wire as unknown as { peers: Map<string, Map<number, unknown>> }).peers;
    const peers = () => [...cache.values()].reduce((n, m) => n + m.size, 0);
    const before = { peers: peers(), rx: b.dev.counters.rxPackets, evicted: wire.counters.peersEvicted };
    const port = b.ctx.queryPort(1).udpPort;
    // b's QP looked a up when it was connected: that peer is pinned.
    const aPeer = cache.get('127.0.0.1')?.get(a.ctx.queryPort(1).udpPort);
    expect(aPeer).toBeDefined();
    const N = MAX_HEARD_PEERS + 300;
    // Junk from a new port each: a BTH's worth of zeros, dropped as malformed once its peer is made.
    const junk = Buffer.alloc(16);
    // The kernel may hand a closed socket's port out again: count the distinct ones.
    const used = new Set<number>();
    for (let i = 0; i < N; i++) {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      used.add(sock.address().port);
      await new Promise<void>((r) => sock.send(junk, port, '127.0.0.1', () => r()));
      sock.close();
    }
    expect(used.size).toBeGreaterThan(MAX_HEARD_PEERS + 100);
    const deadline = Date.now() + 10_000;
    while (b.dev.counters.rxPackets - before.rx < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(b.dev.counters.rxPackets - before.rx).toBe(N);
    // Over shared memory, peers on this host still negotiating a link are kept too (at most 256 rings).
    const slack = process.env.IBAL_SOFT_SHM === '1' ? 256 : 0;
    expect(peers()).toBeLessThanOrEqual(before.peers + MAX_HEARD_PEERS + slack);
    expect(wire.counters.peersEvicted - before.evicted).toBeGreaterThanOrEqual(used.size - MAX_HEARD_PEERS - slack);
    // a's peer in b's wire is the same object, and the pair still talks, both ways.
    expect(cache.get('127.0.0.1')?.get(a.ctx.queryPort(1).udpPort)).toBe(aPeer);
    await traffic(a, b);
    await traffic(b, a);
  });
});

describe('resources', () => {
  it('leaves no timer or socket behind after errors and close', async () => {
    await new Promise((r) => setTimeout(r, 50));
    const base = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'UDPWrap').length;
    const [a, b] = await pair({ timeout: 8, retryCnt: 1, rnrRetry: 1 });
    // RNR retry exhaustion, then a dead-peer timeout on a second pair.
    a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] }]);
    await completions(a, 1);
    const [c, d] = await pair({ timeout: 8, retryCnt: 1 });
    d.dev.remove();
    c.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] }]);
    expect((await completions(c, 1))[0]!.status).toBe(WcStatus.RETRY_EXC_ERR);
    close(a, b, c);
    await new Promise((r) => setTimeout(r, 20));
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'UDPWrap').length;
    expect(after).toBeLessThanOrEqual(base);
  });
});
