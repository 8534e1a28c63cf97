import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../src/errors.js';
import { checkIcrc, computeIcrcFromFrame, IcrcCalculator, readIcrc, writeIcrc, type IcrcEndpoint } from '../src/packet/icrc.js';
import { locateUdp, writeIpUdpFrame } from '../src/packet/ip-frame.js';
import { Opcode } from '../src/packet/opcode.js';
import { decodePacket, DecodeResult, encodeHeaders, finishPacket, newParsedPacket } from '../src/packet/packet.js';

const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** CRC-32 one bit at a time, straight from the definition: an oracle that shares nothing with src/. */
function crc32Bitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/** The ICRC rule spelled out: the masked buffer assembled byte by byte. */
function icrcByHand(ip: Uint8Array): number {
  const v4 = ip[0]! >>> 4 === 4;
  const ihl = v4 ? (ip[0]! & 0xf) * 4 : 40;
  const end = v4 ? (ip[2]! << 8) | ip[3]! : 40 + ((ip[4]! << 8) | ip[5]!);
  const m = Uint8Array.from(ip.subarray(0, end - 4));
  if (v4) {
    m[1] = 0xff; // TOS
    m[8] = 0xff; // TTL
    m[10] = 0xff; // header checksum
    m[11] = 0xff;
  } else {
    m[0] = m[0]! | 0x0f; // traffic class, high nibble
    m[1] = 0xff; // traffic class low nibble, flow label
    m[2] = 0xff;
    m[3] = 0xff;
    m[7] = 0xff; // hop limit
  }
  m[ihl + 6] = 0xff; // UDP checksum
  m[ihl + 7] = 0xff;
  m[ihl + 8 + 4] = 0xff; // BTH byte 4: FECN, BECN, reserved
  const all = new Uint8Array(8 + m.length);
  all.fill(0xff, 0, 8); // the absent LRH
  all.set(m, 8);
  return crc32Bitwise(all);
}

const V4: IcrcEndpoint = { family: 4, src: Uint8Array.of(192, 168, 1, 10), dst: Uint8Array.of(192, 168, 1, 20), srcPort: 49152, dstPort: 4791 };
const V6: IcrcEndpoint = {
  family: 6,
  src: bytes('fe800000000000000211223344556677'),
  dst: bytes('20010db8000000000000000000000001'),
  srcPort: 61000,
  dstPort: 4791,
};

/** A finished RoCE packet (RC Send Only, A bit) with `payload` bytes of a pattern. */
function sendOnly(calc: IcrcCalculator, payload: number): { buf: Uint8Array; len: number } {
  const p = newParsedPacket();
  Object.assign(p, { opcode: Opcode.RC_SEND_ONLY, pkey: 0xffff, destQp: 0x1234, psn: 0x00abcd, ackReq: true });
  const buf = new Uint8Array(64 + payload);
  const h = encodeHeaders(buf, 0, p);
  for (let i = 0; i < payload; i++) buf[h + i] = (i * 31 + 7) & 0xff;
  return { buf, len: finishPacket(buf, h, payload, calc) };
}

function frameOf(ep: IcrcEndpoint, roce: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(48 + len);
  const n = writeIpUdpFrame(out, ep, roce, len, { ipId: ep.ipId });
  return out.subarray(0, n);
}

describe('CRC-32 oracle', () => {
  it('is the standard CRC-32 (check value of "123456789")', () => {
    expect(crc32Bitwise(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('ICRC known answers', () => {
  it('matches a CNP captured from a ConnectX-4 Lx (scapy test/contrib/roce.uts)', () => {
    // IPv4 from 10.0.17.1 to 10.0.18.1, ID 0x718c, TOS 0xc2; UDP 0 -> 4791
    // with checksum 0; CNP to QP 0x118 with BECN; ICRC bytes 82 fd 00 2a.
    const ip = bytes(`
      45c2 003c 718c 4000 4011 9161 0a00 1101 0a00 1201
      0000 12b7 0028 0000
      8100 ffff 4000 0118 0000 0000
      0000 0000 0000 0000 0000 0000 0000 0000
      82fd 002a`);
    const want = readIcrc(ip, ip.length);
    expect(want).toBe(0x2a00fd82);
    expect(icrcByHand(ip)).toBe(want);
    expect(computeIcrcFromFrame(ip)).toBe(want);
    const roce = ip.subarray(28);
    const calc = new IcrcCalculator({ family: 4, src: bytes('0a001101'), dst: bytes('0a001201'), srcPort: 0, dstPort: 4791, ipId: 0x718c });
    expect(calc.compute(roce, roce.length)).toBe(want);
    expect(checkIcrc(roce, roce.length, calc)).toBe(true);
    const p = newParsedPacket();
    expect(decodePacket(roce, roce.length, p)).toBe(DecodeResult.OK);
    expect(p).toMatchObject({ opcode: Opcode.CNP, becn: true, fecn: false, destQp: 0x118, psn: 0 });
  });

  it('matches the UC Send Only example of scapy test/contrib/roce.uts (M bit, pad 2)', () => {
    const ep: IcrcEndpoint = { family: 4, src: Uint8Array.of(192, 168, 0, 7), dst: Uint8Array.of(192, 168, 0, 7), srcPort: 49152, dstPort: 4791, ipId: 1144 };
    const roce = new Uint8Array(36);
    roce.set(bytes('2460ffff000000d300cf1710'));
    roce.set(Buffer.from('F0\x81\x8b\xe2\x895\xd9\x0e\x9a\x95PT\x01\xbe\x88^P\x00\x00', 'latin1'), 12);
    const calc = new IcrcCalculator(ep);
    writeIcrc(roce, roce.length, calc);
    expect(Buffer.from(roce.subarray(32)).toString('hex')).toBe('78f353f3');
    const frame = frameOf(ep, roce, roce.length);
    frame[1] = 0x01; // the example's TOS, which the ICRC masks
    expect(computeIcrcFromFrame(frame)).toBe(readIcrc(roce, 36));
    const p = newParsedPacket();
    expect(decodePacket(roce, 36, p)).toBe(DecodeResult.OK);
    expect(p).toMatchObject({ opcode: Opcode.UC_SEND_ONLY, migReq: true, padCount: 2, destQp: 211, psn: 13571856, payloadLength: 18 });
  });
});

describe('IcrcCalculator', () => {
  for (const [name, ep] of [
    ['IPv4', V4],
    ['IPv4 with a known ID', { ...V4, ipId: 0xbeef }],
    ['IPv6', V6],
  ] as const) {
    it(`agrees with the rule spelled out byte by byte (${name}), on both sides of the native-CRC threshold`, () => {
      const calc = new IcrcCalculator(ep);
      for (const payload of [0, 1, 2, 3, 4, 5, 100, 239, 240, 241, 243, 244, 245, 252, 256, 1000, 4096]) {
        const { buf, len } = sendOnly(calc, payload);
        const frame = frameOf(ep, buf, len);
        const want = icrcByHand(frame);
        expect(readIcrc(buf, len), `payload ${payload}`).toBe(want);
        expect(computeIcrcFromFrame(frame), `payload ${payload}`).toBe(want);
        expect(checkIcrc(buf, len, calc)).toBe(true);
      }
    });
  }

  it('ignores what lies beyond len in the buffer', () => {
    const calc = new IcrcCalculator(V4);
    const { buf, len } = sendOnly(calc, 300);
    const crc = calc.compute(buf, len);
    buf.fill(0x5a, len);
    expect(calc.compute(buf, len)).toBe(crc);
    expect(calc.compute(Buffer.from(buf.subarray(0, len)), len)).toBe(crc);
  });

  it('equals zlib.crc32 over the pseudo-header plus packet', () => {
    const calc = new IcrcCalculator(V6);
    const { buf, len } = sendOnly(calc, 17);
    const frame = frameOf(V6, buf, len);
    const masked = Buffer.from(frame.subarray(0, frame.length - 4));
    masked.fill(0xff, 1, 4);
    masked[0] = 0x6f;
    masked[7] = 0xff;
    masked.fill(0xff, 46, 48);
    masked[48 + 4] = 0xff;
    expect(zlib.crc32(Buffer.concat([Buffer.alloc(8, 0xff), masked]))).toBe(readIcrc(buf, len));
  });

  it('rejects endpoints that do not fit the family', () => {
    expect(() => new IcrcCalculator({ ...V4, src: V6.src })).toThrow(/addresses/);
    expect(() => new IcrcCalculator({ ...V4, family: 5 as 4 })).toThrow(/family/);
    expect(() => new IcrcCalculator({ ...V4, dstPort: 70000 })).toThrow(/port/);
    expect(() => new IcrcCalculator({ ...V4, ipId: -1 })).toThrow(/ID/);
  });

  it('checkIcrc refuses lengths that cannot hold a BTH and an ICRC, or overrun the buffer', () => {
    const calc = new IcrcCalculator(V4);
    const { buf, len } = sendOnly(calc, 8);
    expect(checkIcrc(buf, len, calc)).toBe(true);
    expect(checkIcrc(buf, 15, calc)).toBe(false);
    expect(checkIcrc(buf, buf.length + 4, calc)).toBe(false);
    expect(checkIcrc(buf, NaN, calc)).toBe(false);
    buf[len - 1] ^= 1;
    expect(checkIcrc(buf, len, calc)).toBe(false);
  });
});

describe('what the ICRC covers', () => {
  const calcV4 = new IcrcCalculator(V4);
  const { buf, len } = sendOnly(calcV4, 13);
  const base = frameOf(V4, buf, len);
  const baseV6 = frameOf(V6, sendOnly(new IcrcCalculator(V6), 13).buf, len);
  const icrc = (frame: Uint8Array) => computeIcrcFromFrame(frame);
  const mutated = (frame: Uint8Array, at: number, value: number) => {
    const f = Uint8Array.from(frame);
    f[at] = value;
    return f;
  };
  const bth = 28;

  it('masks IPv4 TOS, TTL and header checksum, the UDP checksum and BTH byte 4', () => {
    const want = icrc(base);
    for (const [what, at] of [
      ['TOS', 1],
      ['TTL', 8],
      ['IP checksum', 10],
      ['IP checksum', 11],
      ['UDP checksum', 26],
      ['UDP checksum', 27],
      ['BTH F/B/resv', bth + 4],
    ] as const) {
      expect(icrc(mutated(base, at, base[at]! ^ 0xc3)), what).toBe(want);
    }
  });

  it('masks IPv6 traffic class, flow label and hop limit', () => {
    const want = icrc(baseV6);
    for (const [what, at] of [
      ['traffic class', 0],
      ['traffic class/flow label', 1],
      ['flow label', 2],
      ['flow label', 3],
      ['hop limit', 7],
      ['UDP checksum', 46],
      ['BTH F/B/resv', 48 + 4],
    ] as const) {
      const v = at === 0 ? (baseV6[0]! & 0xf0) | 0x0a : baseV6[at]! ^ 0x5a;
      expect(icrc(mutated(baseV6, at, v)), what).toBe(want);
    }
  });

  it('covers the IPv4 ID, addresses, ports, the rest of the BTH, and the payload', () => {
    const want = icrc(base);
    for (const [what, at] of [
      ['IP ID', 4],
      ['IP flags', 6],
      ['source address', 15],
      ['destination address', 19],
      ['UDP source port', 21],
      ['UDP destination port', 23],
      ['opcode', bth],
      ['SE/M/pad/tver', bth + 1],
      ['P_Key', bth + 3],
      ['destination QP', bth + 7],
      ['A bit', bth + 8],
      ['PSN', bth + 11],
      ['payload', bth + 12],
      ['pad', base.length - 5],
    ] as const) {
      expect(icrc(mutated(base, at, base[at]! ^ 0x80)), what).not.toBe(want);
    }
  });

  it('covers the IPv6 addresses and next header', () => {
    const want = icrc(baseV6);
    for (const at of [9, 24, 39]) expect(icrc(mutated(baseV6, at, baseV6[at]! ^ 1))).not.toBe(want);
  });

  it('follows IPv4 options by IHL and ignores link-layer padding', () => {
    const opts = new Uint8Array(base.length + 4 + 6);
    opts.set(base.subarray(0, 20));
    opts[0] = 0x46;
    opts.set([0x01, 0x01, 0x01, 0x00], 20); // NOP, NOP, NOP, EOL
    opts.set(base.subarray(20), 24);
    opts[3] = opts[3]! + 4;
    expect(locateUdp(opts)?.payloadOffset).toBe(32);
    expect(computeIcrcFromFrame(opts)).toBe(icrcByHand(opts));
    expect(computeIcrcFromFrame(opts)).not.toBe(icrc(base));
  });

  it('refuses frames that are not RoCE over UDP', () => {
    expect(() => computeIcrcFromFrame(new Uint8Array(10))).toThrow();
    for (const bad of [undefined, null, 'x'.repeat(60), [1, 2, 3]]) expect(() => computeIcrcFromFrame(bad as unknown as Uint8Array)).toThrow(InvalidArgumentError);
    const tcp = Uint8Array.from(base);
    tcp[9] = 6;
    expect(() => computeIcrcFromFrame(tcp)).toThrow();
    const short = Uint8Array.from(base.subarray(0, 40));
    short[3] = 40;
    short[25] = 20;
    expect(() => computeIcrcFromFrame(short)).toThrow(/too short/);
  });
});
