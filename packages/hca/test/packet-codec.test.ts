import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkIcrc, IcrcCalculator } from '../src/packet/icrc.js';
import {
  HDR_AETH,
  HDR_ATOMIC_ACK_ETH,
  HDR_ATOMIC_ETH,
  HDR_DETH,
  HDR_IETH,
  HDR_IMMDT,
  HDR_PAYLOAD,
  HDR_RETH,
  isValidOpcode,
  Opcode,
  OPCODE_FLAGS,
  OPCODE_HDR_LEN,
  opcodeName,
} from '../src/packet/opcode.js';
import {
  decodePacket,
  DecodeResult,
  decodeResultName,
  describePacket,
  encodeHeaders,
  finishPacket,
  newParsedPacket,
  type ParsedPacket,
} from '../src/packet/packet.js';

const VALID = [...Array(256).keys()].filter(isValidOpcode);
const calc = new IcrcCalculator({ family: 4, src: Uint8Array.of(10, 1, 1, 1), dst: Uint8Array.of(10, 1, 1, 2), srcPort: 50001, dstPort: 4791 });
const RESULTS = new Set<number>(Object.values(DecodeResult));

const u = (bits: number) => fc.integer({ min: 0, max: 2 ** bits - 1 });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const va = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

const packetArb = fc
  .record({
    opcode: fc.constantFrom(...VALID),
    se: fc.boolean(),
    migReq: fc.boolean(),
    pkey: u(16),
    fecn: fc.boolean(),
    becn: fc.boolean(),
    destQp: u(24),
    ackReq: fc.boolean(),
    psn: u(24),
    rethVa: va,
    rethRkey: u(32),
    rethDmaLen: u(32),
    aethSyndrome: u(8),
    aethMsn: u(24),
    atomicVa: va,
    atomicRkey: u(32),
    atomicSwapAdd: u64,
    atomicCompare: u64,
    atomicAckOrig: u64,
    immDt: u(32),
    iethRkey: u(32),
    dethQkey: u(32),
    dethSrcQp: u(24),
    payloadLength: fc.integer({ min: 0, max: 4096 }),
    seed: fc.integer(),
  })
  .map((r) => ({ ...r, payloadLength: OPCODE_FLAGS[r.opcode]! & HDR_PAYLOAD ? r.payloadLength : 0 }));

type Gen = typeof packetArb extends fc.Arbitrary<infer T> ? T : never;

const scratch = new Uint8Array(4096 + 128);

/** Encode `g` into scratch as the transport would; returns the total length. */
function encode(g: Gen): number {
  const h = newParsedPacket();
  Object.assign(h, g);
  h.tver = 0;
  h.padCount = 3; // finishPacket must override whatever is here
  const hdr = encodeHeaders(scratch, 0, h);
  let x = g.seed | 1;
  for (let i = 0; i < g.payloadLength; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    scratch[hdr + i] = x;
  }
  return finishPacket(scratch, hdr, g.payloadLength, calc);
}

/** The fields the opcode carries, for comparison. */
function carried(p: ParsedPacket | Gen): Record<string, unknown> {
  const f = OPCODE_FLAGS[p.opcode]!;
  const o: Record<string, unknown> = {
    opcode: p.opcode,
    se: p.se,
    migReq: p.migReq,
    pkey: p.pkey,
    fecn: p.fecn,
    becn: p.becn,
    destQp: p.destQp,
    ackReq: p.ackReq,
    psn: p.psn,
  };
  if (f & HDR_RETH) Object.assign(o, { rethVa: p.rethVa, rethRkey: p.rethRkey, rethDmaLen: p.rethDmaLen });
  if (f & HDR_AETH) Object.assign(o, { aethSyndrome: p.aethSyndrome, aethMsn: p.aethMsn });
  if (f & HDR_ATOMIC_ETH) Object.assign(o, { atomicVa: p.atomicVa, atomicRkey: p.atomicRkey, atomicSwapAdd: p.atomicSwapAdd, atomicCompare: p.atomicCompare });
  if (f & HDR_ATOMIC_ACK_ETH) o.atomicAckOrig = p.atomicAckOrig;
  if (f & HDR_IMMDT) o.immDt = p.immDt;
  if (f & HDR_IETH) o.iethRkey = p.iethRkey;
  if (f & HDR_DETH) Object.assign(o, { dethQkey: p.dethQkey, dethSrcQp: p.dethSrcQp });
  return o;
}

describe('encode → decode', () => {
  it('round-trips every valid opcode with random fields and payloads of 0..4096 bytes', () => {
    const out = newParsedPacket();
    const expectedPayload = new Uint8Array(4096);
    fc.assert(
      fc.property(packetArb, (g) => {
        const len = encode(g);
        const hdr = OPCODE_HDR_LEN[g.opcode]!;
        expectedPayload.set(scratch.subarray(hdr, hdr + g.payloadLength));
        expect(len % 4).toBe(0);
        expect(len).toBe(hdr + g.payloadLength + (-g.payloadLength & 3) + 4);
        expect(decodePacket(scratch, len, out), describePacket(out)).toBe(DecodeResult.OK);
        expect(carried(out)).toEqual(carried(g));
        expect(out.tver).toBe(0);
        expect(out.padCount).toBe(-g.payloadLength & 3);
        expect(out.hdrLen).toBe(hdr);
        expect(out.payloadOffset).toBe(hdr);
        expect(out.payloadLength).toBe(g.payloadLength);
        expect(out.totalLength).toBe(len);
        for (let i = 0; i < out.padCount; i++) expect(scratch[hdr + g.payloadLength + i]).toBe(0);
        expect(Buffer.compare(scratch.subarray(hdr, hdr + g.payloadLength), expectedPayload.subarray(0, g.payloadLength))).toBe(0);
        expect(checkIcrc(scratch, len, calc)).toBe(true);
      }),
      { numRuns: 2500 },
    );
  });

  it('clears the fields of headers the opcode does not carry', () => {
    const out = newParsedPacket();
    const full = newParsedPacket();
    Object.assign(full, { opcode: Opcode.RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE, rethVa: 5, rethRkey: 6, rethDmaLen: 7, immDt: 8 });
    const b = new Uint8Array(64);
    finishPacket(b, encodeHeaders(b, 0, full), 0, calc);
    expect(decodePacket(b, 36, out)).toBe(DecodeResult.OK);
    expect(out.rethVa).toBe(5);
    const mid = newParsedPacket();
    mid.opcode = Opcode.RC_RDMA_WRITE_MIDDLE;
    const len = finishPacket(b, encodeHeaders(b, 0, mid), 0, calc);
    expect(decodePacket(b, len, out)).toBe(DecodeResult.OK);
    expect([out.rethVa, out.rethRkey, out.rethDmaLen, out.immDt]).toEqual([0, 0, 0, 0]);
  });

  it('describes a packet on one line', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: Opcode.RC_SEND_ONLY, se: true, padCount: 2, pkey: 0xffff, destQp: 0x11, ackReq: true, psn: 0xabcdef, payloadLength: 10 });
    expect(describePacket(p)).toBe('RC Send Only qp=0x000011 psn=0xabcdef pkey=0xffff SE A payload=10 pad=2');
    Object.assign(p, { opcode: Opcode.RC_ACKNOWLEDGE, se: false, ackReq: false, padCount: 0, aethSyndrome: 0x2e, aethMsn: 4 });
    expect(describePacket(p)).toBe('RC Acknowledge qp=0x000011 psn=0xabcdef pkey=0xffff RNR NAK 1.28ms msn=4');
    p.aethSyndrome = 0x62;
    expect(describePacket(p)).toContain('NAK remote access error msn=4');
    p.aethSyndrome = 0x1f;
    expect(describePacket(p)).toContain(' ACK msn=4');
  });
});

describe('decodePacket rejects', () => {
  const out = newParsedPacket();
  function pkt(op: number, payload: number): Uint8Array {
    const h = newParsedPacket();
    h.opcode = op;
    const b = new Uint8Array(128);
    const len = finishPacket(b, encodeHeaders(b, 0, h), payload, calc);
    return b.subarray(0, len);
  }

  it('packets shorter than a BTH and an ICRC, or than their headers', () => {
    expect(decodePacket(new Uint8Array(12), 12, out)).toBe(DecodeResult.TOO_SHORT);
    expect(decodePacket(new Uint8Array(0), 0, out)).toBe(DecodeResult.TOO_SHORT);
    const read = pkt(Opcode.RC_RDMA_READ_REQUEST, 0);
    expect(decodePacket(read, read.length - 4, out)).toBe(DecodeResult.TOO_SHORT);
    expect(decodePacket(read, -4, out)).toBe(DecodeResult.TOO_SHORT);
  });

  it('opcodes it does not implement', () => {
    const b = pkt(Opcode.RC_SEND_ONLY, 0);
    for (const op of [0x15, 0x18, 0x40, 0xa0, 0xff]) {
      b[0] = op;
      expect(decodePacket(b, b.length, out)).toBe(DecodeResult.BAD_OPCODE);
    }
  });

  it('a transport header version other than 0', () => {
    const b = pkt(Opcode.RC_SEND_ONLY, 4);
    b[1] = 0x01;
    expect(decodePacket(b, b.length, out)).toBe(DecodeResult.BAD_TVER);
  });

  it('pad larger than the payload room, and pad on an opcode without payload', () => {
    const b = pkt(Opcode.RC_SEND_ONLY, 0);
    b[1] = 0x10;
    expect(decodePacket(b, b.length, out)).toBe(DecodeResult.BAD_PAD);
    const ok = pkt(Opcode.RC_SEND_ONLY, 1);
    expect(decodePacket(ok, ok.length, out)).toBe(DecodeResult.OK);
    expect([out.padCount, out.payloadLength]).toEqual([3, 1]);
    const ack = pkt(Opcode.RC_ACKNOWLEDGE, 0);
    ack[1] = 0x10;
    expect(decodePacket(ack, ack.length, out)).toBe(DecodeResult.BAD_PAD);
  });

  it('lengths that are not a multiple of 4, beyond the buffer, not integers, or payload where none belongs', () => {
    const b = pkt(Opcode.RC_SEND_ONLY, 8);
    expect(decodePacket(b, b.length - 1, out)).toBe(DecodeResult.BAD_LENGTH);
    expect(decodePacket(b, b.length + 4, out)).toBe(DecodeResult.BAD_LENGTH);
    expect(decodePacket(b, 20.5, out)).toBe(DecodeResult.BAD_LENGTH);
    expect(decodePacket(b, NaN, out)).toBe(DecodeResult.BAD_LENGTH);
    const ackWithData = new Uint8Array(24);
    ackWithData[0] = Opcode.RC_ACKNOWLEDGE;
    expect(decodePacket(ackWithData, 24, out)).toBe(DecodeResult.BAD_LENGTH);
    expect(decodeResultName(DecodeResult.BAD_LENGTH)).toBe('BAD_LENGTH');
  });
});

describe('decodePacket on hostile input', () => {
  function checkInvariants(buf: Uint8Array, len: number, out: ParsedPacket): void {
    let r: number | undefined;
    expect(() => {
      r = decodePacket(buf, len, out);
    }).not.toThrow();
    expect(RESULTS.has(r!)).toBe(true);
    if (r === DecodeResult.OK) {
      expect(isValidOpcode(out.opcode)).toBe(true);
      expect(out.payloadOffset + out.payloadLength + out.padCount + 4).toBe(len);
      expect(out.payloadLength).toBeGreaterThanOrEqual(0);
      expect(out.hdrLen).toBe(OPCODE_HDR_LEN[out.opcode]);
      describePacket(out);
    }
  }

  it('never throws on random bytes and lengths', () => {
    const out = newParsedPacket();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 160 }),
        fc.oneof(fc.constant(-1), fc.integer({ min: -8, max: 200 }), fc.double()),
        fc.boolean(),
        (bytes, len, useByteLength) => checkInvariants(bytes, useByteLength ? bytes.length : len, out),
      ),
      { numRuns: 5000 },
    );
  });

  it('never throws on a valid opcode over random bytes', () => {
    const out = newParsedPacket();
    fc.assert(
      fc.property(fc.constantFrom(...VALID), fc.uint8Array({ minLength: 16, maxLength: 96 }), (op, bytes) => {
        bytes[0] = op;
        checkInvariants(bytes, bytes.length, out);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on valid packets with bits flipped, truncated or overrun', () => {
    const out = newParsedPacket();
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), by: fc.integer({ min: 1, max: 64 }) }),
      fc.record({ kind: fc.constant('overrun' as const), by: fc.integer({ min: 1, max: 64 }) }),
    );
    fc.assert(
      fc.property(packetArb.map((g) => ({ ...g, payloadLength: g.payloadLength % 97 })), fc.array(mutation, { minLength: 1, maxLength: 4 }), (g, muts) => {
        let len = encode(g);
        const buf = scratch.subarray(0, len + 64);
        for (const m of muts) {
          if (m.kind === 'flip') buf[m.at % len] ^= 1 << m.bit;
          else if (m.kind === 'truncate') len = Math.max(0, len - m.by);
          else len += m.by;
        }
        checkInvariants(scratch.subarray(0, Math.min(len, buf.length)), len, out);
      }),
      { numRuns: 5000 },
    );
  });

  it('answers every opcode at every short length', () => {
    const out = newParsedPacket();
    const b = new Uint8Array(64);
    for (let op = 0; op < 256; op++) {
      b[0] = op;
      for (let len = 0; len <= 64; len++) {
        const r = decodePacket(b, len, out);
        if (!isValidOpcode(op) && len >= 16 && len <= 64) expect(r, opcodeName(op)).toBe(DecodeResult.BAD_OPCODE);
        expect(RESULTS.has(r)).toBe(true);
      }
    }
  });
});
