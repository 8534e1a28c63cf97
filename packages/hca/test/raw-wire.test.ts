// The soft HCA over the raw-socket RoCEv2 wire (IBAL_SOFT_WIRE=raw): IPv4
// headers written by us (ID 0, DF) so the ICRC is the one rxe or a RoCE NIC
// verifies, and incoming ICRCs checked over the header a packet really had.
// Frames are observed with an independent raw tap on the receiver's port.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QpType, SendFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { InvalidArgumentError } from '../src/errors.js';
import { computeIcrcFromFrame, readIcrc } from '../src/packet/icrc.js';
import { icrcOverIpv4Header } from '../src/packet/icrc-ipv4-frame.js';
import { addSoftDevice } from '../src/soft/device.js';
import { rawWireWanted, softWireChoice } from '../src/soft/wire.js';
import { sys } from '../src/sys/load.js';
import { DatagramBatch } from '../src/sys/mmsg.js';
import { RawRoceSocket, RawWireUnavailableError, rawSocketsAvailable } from '../src/sys/raw.js';
import { sysStatus } from '../src/sys/status.js';
import { close, completions, connect, side, type PairOptions, type Side } from './helpers/pair.js';

const SIG = SendFlags.SIGNALED;
const raw = rawSocketsAvailable();
const skipped = raw.ok ? '' : ` (skipped: ${raw.reason})`;
const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'raw-wire-open.mjs');

const saved: Record<string, string | undefined> = {};
const ENV = ['IBAL_SOFT_WIRE', 'IBAL_SOFT_SHM', 'IBAL_SOFT_ICRC'];
beforeAll(() => {
  for (const k of ENV) saved[k] = process.env[k];
  // Two devices of one process would otherwise talk through shared memory, not the wire.
  process.env.IBAL_SOFT_SHM = '0';
});
afterAll(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

let live: Side[] = [];
let taps: Tap[] = [];
let sockets: RawRoceSocket[] = [];
afterEach(() => {
  close(...live);
  taps.forEach((t) => t.close());
  sockets.forEach((s) => s.close());
  live = [];
  taps = [];
  sockets = [];
  delete process.env.IBAL_SOFT_ICRC;
});

/** A device opened with IBAL_SOFT_WIRE=`wire` (and IBAL_SOFT_ICRC, when given). */
async function sideOn(wire: 'raw' | 'udp', opts: PairOptions = {}, icrc?: string): Promise<Side> {
  process.env.IBAL_SOFT_WIRE = wire;
  if (icrc) process.env.IBAL_SOFT_ICRC = icrc;
  try {
    const s = await side(opts);
    live.push(s);
    return s;
  } finally {
    delete process.env.IBAL_SOFT_WIRE;
    delete process.env.IBAL_SOFT_ICRC;
  }
}

/** Every IPv4 frame to a UDP port, with its IP header, seen beside the port's owner. */
class Tap {
  readonly frames: Uint8Array[] = [];
  private readonly sock;
  constructor(port: number) {
    const slot = 8192;
    this.sock = new (sys().BatchSocket)({
      kind: 'raw-recv',
      family: 4,
      address: '127.0.0.1',
      filterPort: port,
      batch: 64,
      slotSize: slot,
      onRead: (n) => {
        for (let i = 0; i < n; i++) this.frames.push(Uint8Array.from(this.batch.datagram(i)));
      },
    });
    this.batch = new DatagramBatch(this.sock.recvBuffer(), this.sock.recvMeta(), slot);
    this.sock.start();
    taps.push(this);
  }
  private readonly batch: DatagramBatch;
  close(): void {
    this.sock.close();
  }
}

const u16 = (f: Uint8Array, at: number) => (f[at]! << 8) | f[at + 1]!;

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** RC SEND (3 packets), RDMA WRITE and RDMA READ from a to b; checks every byte. */
async function rcTraffic(a: Side, b: Side): Promise<void> {
  for (let i = 0; i < 20_000; i++) a.mr.buf[i] = (i * 7 + 3) & 0xff;
  for (let i = 0; i < 9000; i++) b.mr.buf[100_000 + i] = (i * 5 + 1) & 0xff;
  b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 20_000, lkey: b.mr.lkey }] }]);
  a.qp.postSend([
    { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 10_000, lkey: a.mr.lkey }] },
    { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 10_000, length: 9000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 30_000, rkey: b.mr.rkey } },
    { wrId: 3, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 50_000, length: 9000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 100_000, rkey: b.mr.rkey } },
  ]);
  const wa = await completions(a, 3);
  expect(wa.map((w) => wcStatusName(w.status))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
  const wb = await completions(b, 1);
  expect(wb[0]!.status).toBe(WcStatus.SUCCESS);
  expect(wb[0]!.byteLen).toBe(10_000);
  expect(Buffer.compare(b.mr.buf.subarray(0, 10_000), a.mr.buf.subarray(0, 10_000))).toBe(0);
  expect(Buffer.compare(b.mr.buf.subarray(30_000, 39_000), a.mr.buf.subarray(10_000, 19_000))).toBe(0);
  expect(Buffer.compare(a.mr.buf.subarray(50_000, 59_000), b.mr.buf.subarray(100_000, 109_000))).toBe(0);
}

describe('choosing the wire (IBAL_SOFT_WIRE)', () => {
  it('udp by default; raw, udp and auto accepted; anything else is an InvalidArgumentError', () => {
    expect(softWireChoice(undefined)).toBe('udp');
    expect(softWireChoice('')).toBe('udp');
    for (const v of ['raw', 'udp', 'auto'] as const) expect(softWireChoice(v)).toBe(v);
    expect(() => softWireChoice('RAW')).toThrow(InvalidArgumentError);
  });

  it('raw where raw sockets cannot be opened is a RawWireUnavailableError carrying the reason; auto falls back; IPv6 stays on UDP', () => {
    const no = { ok: false, reason: 'raw sockets need root or CAP_NET_RAW' };
    let err: unknown;
    try {
      rawWireWanted('raw', 4, no);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RawWireUnavailableError);
    expect((err as RawWireUnavailableError).code).toBe('ERR_IBAL_SYS_UNAVAILABLE');
    expect((err as RawWireUnavailableError).reason).toBe(no.reason);
    expect((err as Error).message).toContain('IBAL_SOFT_WIRE=raw');
    expect((err as Error).message).toContain(no.reason);
    expect(rawWireWanted('auto', 4, no)).toBe(false);
    expect(rawWireWanted('udp', 4, { ok: true })).toBe(false);
    expect(rawWireWanted('auto', 4, { ok: true })).toBe(true);
    expect(rawWireWanted('raw', 6, no)).toBe(false);
  });

  it('a bad IBAL_SOFT_WIRE fails opening the device', async () => {
    process.env.IBAL_SOFT_WIRE = 'fast';
    const dev = addSoftDevice({ name: `badwire${process.pid}`, port: 0 });
    try {
      await expect(dev.open()).rejects.toThrow(/IBAL_SOFT_WIRE must be udp, raw or auto, not "fast"/);
    } finally {
      delete process.env.IBAL_SOFT_WIRE;
      dev.remove();
    }
  });

  // Real unavailability, in a child process: the addon turned off, and CAP_NET_RAW dropped.
  const openInChild = (env: Record<string, string>, wrap: string[] = []) => {
    const cmd = [...wrap, process.execPath, fixture];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { env: { ...process.env, IBAL_SOFT_SHM: '0', ...env }, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
  };

  it('IBAL_SOFT_WIRE=raw without the ibal_sys addon (IBAL_SYS=0) fails open with the reason', () => {
    const r = openInChild({ IBAL_SYS: '0', IBAL_SOFT_WIRE: 'raw' });
    expect(r).toMatchObject({ name: 'RawWireUnavailableError', code: 'ERR_IBAL_SYS_UNAVAILABLE', reason: 'disabled by IBAL_SYS=0' });
    expect(r.message).toMatch(/IBAL_SOFT_WIRE=raw: .*disabled by IBAL_SYS=0/);
    expect(openInChild({ IBAL_SYS: '0', IBAL_SOFT_WIRE: 'auto' })).toMatchObject({ wire: 'udp4' });
  });

  const setpriv = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  const dropRaw = ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'];
  it.skipIf(!raw.ok || !setpriv)(
    `IBAL_SOFT_WIRE=raw without CAP_NET_RAW fails open naming the capability; auto takes UDP${raw.ok ? (setpriv ? '' : ' (skipped: no setpriv)') : skipped}`,
    () => {
      const r = openInChild({ IBAL_SOFT_WIRE: 'raw' }, dropRaw);
      expect(r).toMatchObject({ name: 'RawWireUnavailableError', reason: 'raw sockets need root or CAP_NET_RAW' });
      const auto = openInChild({ IBAL_SOFT_WIRE: 'auto' }, dropRaw);
      expect(auto.wire).toMatch(/^udp4/);
    },
  );

  it.skipIf(!raw.ok)(`auto takes the raw wire where it can; IPv6 devices stay on UDP under raw${skipped}`, async () => {
    process.env.IBAL_SOFT_WIRE = 'auto';
    const a = await side({});
    live.push(a);
    expect(a.ctx.queryPort(1).wire).toBe('raw4');
    const v6 = await sideOn('raw', { address: '::1' });
    expect(v6.ctx.queryPort(1).wire).toBe(sysStatus().mmsg.on ? 'udp6 (sendmmsg)' : 'udp6');
    delete process.env.IBAL_SOFT_WIRE;
  });
});

describe.skipIf(!raw.ok)(`the raw wire${skipped}`, () => {
  it('two raw-wire devices on 127.0.0.1 exchange RC SEND, RDMA WRITE and RDMA READ', async () => {
    const a = await sideOn('raw');
    const b = await sideOn('raw');
    connect(a, b, {});
    expect(a.ctx.queryPort(1).wire).toBe('raw4');
    expect(b.ctx.queryPort(1).wire).toBe('raw4');
    expect(a.dev.wire.kind).toBe('raw');
    await rcTraffic(a, b);
    await rcTraffic(b, a);
    for (const s of [a, b]) {
      expect(s.dev.counters.rxBadIcrc).toBe(0);
      expect(s.dev.wire.counters.rxInvalid).toBe(0);
      // Every frame came with ID 0 + DF: the cached calculator checked them all.
      expect(s.dev.wire.counters.rxIcrcRealHeader).toBe(0);
      expect(s.dev.wire.counters.rxIcrcAssumedHeader).toBe(0);
      expect(s.dev.wire.counters.rxPackets).toBeGreaterThan(5);
    }
  });

  it('its frames carry ID 0 and DF, and their ICRCs verify over the real IP header (computeIcrcFromFrame)', async () => {
    const a = await sideOn('raw');
    const b = await sideOn('raw');
    connect(a, b, {});
    const toB = new Tap(b.ctx.queryPort(1).udpPort);
    const toA = new Tap(a.ctx.queryPort(1).udpPort);
    await rcTraffic(a, b);
    // The ACK of the READ response's last packet may still be on its way.
    await until(() => toA.frames.length >= 1 && toB.frames.length >= b.dev.wire.counters.rxPackets);
    const frames = [...toB.frames, ...toA.frames];
    expect(toB.frames.length).toBeGreaterThanOrEqual(5); // 3 SEND + 3 WRITE packets + READ request at 4 KiB MTU
    for (const f of frames) {
      expect(f[0]).toBe(0x45);
      expect(u16(f, 4)).toBe(0); // Identification
      expect(u16(f, 6)).toBe(0x4000); // DF, offset 0
      expect(u16(f, 26)).toBe(0); // UDP checksum 0, as RoCEv2 over IPv4 sends
      expect(computeIcrcFromFrame(f)).toBe(readIcrc(f, f.length));
    }
  });

  it('checks the ICRC of a packet with a non-zero IP ID over its real header; a wrong ICRC is counted in rxBadIcrc and dropped', async () => {
    const { a, b, frame, inject, received } = await udPair();
    const c = b.dev.wire.counters;
    const base = { bad: b.dev.counters.rxBadIcrc, real: c.rxIcrcRealHeader, assumed: c.rxIcrcAssumedHeader };
    // ID 0x1234, ICRC over that header: accepted as checked over the real header.
    const good = variant(frame, 0x1234, 'X', 'real');
    expect(computeIcrcFromFrame(good)).toBe(readIcrc(good, good.length));
    // ID 0x2345, ICRC wrong for any header: dropped. A good one after it shows it was handled.
    const bad = variant(frame, 0x2345, 'Y', 'wrong');
    const after = variant(frame, 0x3456, 'Z', 'real');
    inject([good, bad, after]);
    const r = await received(2);
    expect(r).toEqual(['X', 'Z']);
    expect(b.dev.counters.rxBadIcrc).toBe(base.bad + 1);
    expect(c.rxIcrcRealHeader).toBe(base.real + 2);
    expect(c.rxIcrcAssumedHeader).toBe(base.assumed);
    expect(a.dev.counters.rxBadIcrc).toBe(0);
  });

  it('accepts an ICRC computed as a UDP-socket sender computes it (ID 0 + DF) behind another ID, counted; IBAL_SOFT_ICRC=exact refuses it', async () => {
    const lenient = await udPair();
    const assumed = variant(lenient.frame, 0x4567, 'A', 'assumed');
    lenient.inject([assumed]);
    expect(await lenient.received(1)).toEqual(['A']);
    expect(lenient.b.dev.wire.counters.rxIcrcAssumedHeader).toBe(1);

    const exact = await udPair('exact');
    const bBad = exact.b.dev.counters.rxBadIcrc;
    exact.inject([variant(exact.frame, 0x4567, 'B', 'assumed'), variant(exact.frame, 0x5678, 'C', 'real')]);
    expect(await exact.received(1)).toEqual(['C']);
    expect(exact.b.dev.counters.rxBadIcrc).toBe(bBad + 1);
    expect(exact.b.dev.wire.counters.rxIcrcAssumedHeader).toBe(0);
  });

  it('checks such a packet after fault injection: a corrupted one is refused, not waved through', async () => {
    const { b, frame, inject, received } = await udPair();
    const c = b.dev.counters;
    const refusedBefore = c.rxBadIcrc + c.rxMalformed;
    b.dev.setFaults({ seed: 11, corrupt: 1 });
    inject([variant(frame, 0x1111, 'K', 'real')]);
    await until(() => b.dev.faults!.counters.corrupted === 1);
    b.dev.setFaults(undefined);
    inject([variant(frame, 0x2222, 'L', 'real')]);
    expect(await received(1)).toEqual(['L']);
    expect(c.rxBadIcrc + c.rxMalformed).toBe(refusedBefore + 1);
  });

  it('a raw-wire device and a UDP-wire device interoperate: RC SEND, WRITE and READ both ways', async () => {
    const a = await sideOn('raw');
    const b = await sideOn('udp');
    connect(a, b, {});
    expect(a.ctx.queryPort(1).wire).toBe('raw4');
    expect(b.ctx.queryPort(1).wire).toMatch(/^udp4/);
    const toA = new Tap(a.ctx.queryPort(1).udpPort);
    await rcTraffic(a, b);
    await rcTraffic(b, a);
    expect(a.dev.counters.rxBadIcrc).toBe(0);
    expect(b.dev.counters.rxBadIcrc).toBe(0);
    // The UDP side's kernel chose its IDs; its ICRCs assume 0 + DF. Frames
    // that came with another header were accepted in that form, and counted.
    const w = a.dev.wire.counters;
    await until(() => toA.frames.length === w.rxPackets);
    const otherHeader = toA.frames.filter((f) => u16(f, 4) !== 0 || u16(f, 6) !== 0x4000).length;
    expect(w.rxIcrcAssumedHeader).toBe(otherHeader);
    expect(w.rxIcrcRealHeader).toBe(0);
  });

  it('icrcOverIpv4Header agrees with computeIcrcFromFrame for any ID, flags and IP options', () => {
    for (const [id, flags, opts, len] of [
      [0, 0x4000, 0, 12 + 16],
      [0xbeef, 0x4000, 0, 12 + 300],
      [7, 0, 8, 12 + 64],
      [0xffff, 0x4000, 40, 12 + 280],
    ] as const) {
      const hl = 20 + opts;
      const f = new Uint8Array(hl + 8 + len);
      f[0] = 0x40 | (hl / 4);
      f[2] = f.length >>> 8;
      f[3] = f.length & 0xff;
      f[4] = id >>> 8;
      f[5] = id & 0xff;
      f[6] = flags >>> 8;
      f[8] = 64;
      f[9] = 17;
      f.set([127, 0, 0, 1, 127, 0, 0, 2], 12);
      for (let i = 20; i < hl; i++) f[i] = 1; // NOP options
      f.set([0xc0, 0x00, 0x12, 0xb7, (8 + len) >>> 8, (8 + len) & 0xff], hl);
      for (let i = hl + 8; i < f.length; i++) f[i] = (i * 31) & 0xff;
      const roce = f.subarray(hl + 8);
      expect(icrcOverIpv4Header(f, 0, roce, roce.length)).toBe(computeIcrcFromFrame(f));
    }
  });
});

/**
 * A UD pair on the raw wire, a real UD SEND frame captured from a to b, and
 * a raw socket that replays variants of it as if from a (IP_HDRINCL lets it
 * write a's address and port).
 */
async function udPair(icrc?: string) {
  const a = await sideOn('raw', { qpType: QpType.UD });
  const b = await sideOn('raw', { qpType: QpType.UD }, icrc);
  connect(a, b, { qpType: QpType.UD });
  const tap = new Tap(b.ctx.queryPort(1).udpPort);
  for (let i = 0; i < 8; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr + i * 256, length: 256, lkey: b.mr.lkey }] }]);
  const payload = Buffer.from('.raw wire frame.');
  a.mr.buf.set(payload, 0);
  const ah = a.pd.createAh({ dgid: b.ctx.queryGid(1, 0), udpPort: b.ctx.queryPort(1).udpPort });
  a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: payload.length, lkey: a.mr.lkey }], ud: { ah, remoteQpn: b.qp.qpNum, remoteQkey: 0x11111111 } }]);
  await completions(a, 1);
  const received = async (n: number): Promise<string[]> => {
    const w = await completions(b, n);
    expect(w.every((x) => x.status === WcStatus.SUCCESS)).toBe(true);
    // 40-byte GRH, then the payload; its first byte is the mark.
    return w.map((x) => String.fromCharCode(b.mr.buf[x.wrId * 256 + 40]!));
  };
  expect(await received(1)).toEqual(['.']);
  await until(() => tap.frames.length >= 1);
  const frame = tap.frames[0]!;
  expect(u16(frame, 4)).toBe(0);
  const injector = new RawRoceSocket({ port: 0 });
  sockets.push(injector);
  const dst = injector.peer('127.0.0.1');
  const inject = (frames: Uint8Array[]) => {
    for (const f of frames) expect(injector.sendFrame(f, dst)).toBe(true);
    injector.flush();
  };
  return { a, b, frame, inject, received };
}

/**
 * `frame` with IPv4 ID `id`, its first payload byte set to `mark`, and an
 * ICRC that is right over the real header, right only over the ID 0 + DF
 * header a UDP-socket sender assumes, or wrong for both.
 */
function variant(frame: Uint8Array, id: number, mark: string, icrc: 'real' | 'assumed' | 'wrong'): Uint8Array {
  const f = Uint8Array.from(frame);
  // IPv4 20 + UDP 8 + BTH 12 + DETH 8: the payload.
  f[48] = mark.charCodeAt(0);
  const withId = (x: number) => {
    f[4] = x >>> 8;
    f[5] = x & 0xff;
  };
  withId(icrc === 'assumed' ? 0 : id);
  let crc = computeIcrcFromFrame(f);
  withId(id);
  if (icrc === 'wrong') crc = (crc ^ 0x00010000) >>> 0;
  f[f.length - 4] = crc;
  f[f.length - 3] = crc >>> 8;
  f[f.length - 2] = crc >>> 16;
  f[f.length - 1] = crc >>> 24;
  return f;
}
