import { describe, expect, it } from 'vitest';
import {
  ackSyndrome,
  AethType,
  CREDITS_UNLIMITED,
  isAck,
  isNak,
  isRnrNak,
  NakCode,
  nakSyndrome,
  readAeth,
  RNR_TIMER_US,
  rnrNakSyndrome,
  rnrTimerForUs,
  rnrTimerUs,
  syndromeType,
  syndromeValue,
  writeAeth,
} from '../src/packet/aeth.js';
import { InvalidArgumentError } from '../src/errors.js';
import { readAtomicAckEth, writeAtomicAckEth } from '../src/packet/atomic-ack-eth.js';
import { readAtomicEth, writeAtomicEth } from '../src/packet/atomic-eth.js';
import { bthDestQp, bthPsn, readBth, setBthAckReq, setBthPadCount, setBthPsn, writeBth } from '../src/packet/bth.js';
import { readDeth, writeDeth } from '../src/packet/deth.js';
import { readIeth, writeIeth } from '../src/packet/ieth.js';
import { readImmDt, writeImmDt } from '../src/packet/immdt.js';
import { Opcode } from '../src/packet/opcode.js';
import { decodePacket, DecodeResult, encodeHeaders, newParsedPacket } from '../src/packet/packet.js';
import { readReth, writeReth } from '../src/packet/reth.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

describe('BTH', () => {
  it('lays out every field where IBTA puts it', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: 0x04, se: true, padCount: 2, pkey: 0xffff, destQp: 0x000011, ackReq: true, psn: 0xabcdef });
    const b = new Uint8Array(12);
    writeBth(b, 0, p);
    expect(hex(b)).toBe('04a0ffff0000001180abcdef');

    const all = newParsedPacket();
    Object.assign(all, { opcode: 0x65, se: true, migReq: true, padCount: 3, tver: 0, pkey: 0x8001, fecn: true, becn: true, destQp: 0xfedcba, ackReq: true, psn: 0x123456 });
    writeBth(b, 0, all);
    expect(hex(b)).toBe('65f08001c0fedcba80123456');
    const back = newParsedPacket();
    readBth(b, 0, back);
    expect(back).toEqual(all);
  });

  it('reads the CNP of the Mellanox "RoCEv2 CNP packet format example" (BECN set, QP 0xd2)', () => {
    const b = bytes('8100ffff400000d200000000');
    const p = newParsedPacket();
    readBth(b, 0, p);
    expect(p).toMatchObject({ opcode: 0x81, se: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: true, destQp: 0xd2, ackReq: false, psn: 0 });
  });

  it('writes no reserved bits and patches single fields in place', () => {
    const b = new Uint8Array(12).fill(0xff);
    writeBth(b, 0, newParsedPacket());
    expect(hex(b)).toBe('000000000000000000000000');
    b.set(bytes('0a00ffff0000002200000001'));
    setBthPadCount(b, 0, 3);
    setBthPsn(b, 0, 0xfffffe);
    setBthAckReq(b, 0, true);
    expect(hex(b)).toBe('0a30ffff0000002280fffffe');
    expect(bthPsn(b, 0)).toBe(0xfffffe);
    expect(bthDestQp(b, 0)).toBe(0x22);
    setBthAckReq(b, 0, false);
    setBthPadCount(b, 0, 0);
    expect(hex(b)).toBe('0a00ffff0000002200fffffe');
  });

  it('honours the offset', () => {
    const b = new Uint8Array(16);
    const p = newParsedPacket();
    p.psn = 1;
    writeBth(b, 4, p);
    expect(hex(b)).toBe('00000000' + '000000000000000000000001');
  });
});

describe('RETH', () => {
  it('is VA(64) R_Key(32) DMA length(32), big-endian', () => {
    const b = new Uint8Array(16);
    writeReth(b, 0, { rethVa: 0x00007f1234567890, rethRkey: 0xdeadbeef, rethDmaLen: 0x10000 });
    expect(hex(b)).toBe('00007f1234567890' + 'deadbeef' + '00010000');
    const out = { rethVa: 0, rethRkey: 0, rethDmaLen: 0 };
    readReth(b, 0, out);
    expect(out).toEqual({ rethVa: 0x7f1234567890, rethRkey: 0xdeadbeef, rethDmaLen: 0x10000 });
  });

  it('carries every address below 2^53 exactly', () => {
    const b = new Uint8Array(16);
    const out = { rethVa: 0, rethRkey: 0, rethDmaLen: 0 };
    for (const va of [0, 1, 0xffffffff, 0x100000000, 2 ** 53 - 1]) {
      writeReth(b, 0, { rethVa: va, rethRkey: 0, rethDmaLen: 0 });
      readReth(b, 0, out);
      expect(out.rethVa).toBe(va);
    }
    expect(hex(b.subarray(0, 8))).toBe('001fffffffffffff');
  });
});

describe('AETH', () => {
  it('is syndrome(8) MSN(24)', () => {
    const b = new Uint8Array(4);
    writeAeth(b, 0, { aethSyndrome: 0x1f, aethMsn: 1 });
    expect(hex(b)).toBe('1f000001');
    writeAeth(b, 0, { aethSyndrome: nakSyndrome(NakCode.REMOTE_ACCESS_ERROR), aethMsn: 0xabcdef });
    expect(hex(b)).toBe('62abcdef');
    const out = { aethSyndrome: 0, aethMsn: 0 };
    readAeth(b, 0, out);
    expect(out).toEqual({ aethSyndrome: 0x62, aethMsn: 0xabcdef });
  });

  it('builds and classifies the three kinds of syndrome', () => {
    expect(ackSyndrome(CREDITS_UNLIMITED)).toBe(0x1f);
    expect(ackSyndrome(5)).toBe(0x05);
    expect(rnrNakSyndrome(14)).toBe(0x2e);
    expect(nakSyndrome(NakCode.PSN_SEQUENCE_ERROR)).toBe(0x60);
    expect(nakSyndrome(NakCode.INVALID_REQUEST)).toBe(0x61);
    expect(nakSyndrome(NakCode.REMOTE_ACCESS_ERROR)).toBe(0x62);
    expect(nakSyndrome(NakCode.REMOTE_OPERATIONAL_ERROR)).toBe(0x63);
    expect(nakSyndrome(NakCode.INVALID_RD_REQUEST)).toBe(0x64);

    expect(syndromeType(0x1f)).toBe(AethType.ACK);
    expect(syndromeType(0x2e)).toBe(AethType.RNR_NAK);
    expect(syndromeType(0x40)).toBe(AethType.RESERVED);
    expect(syndromeType(0x63)).toBe(AethType.NAK);
    expect(syndromeType(0x80)).toBe(AethType.RESERVED);
    expect(syndromeValue(0x2e)).toBe(14);
    expect([isAck(0x00), isRnrNak(0x00), isNak(0x00)]).toEqual([true, false, false]);
    expect([isAck(0x3f), isRnrNak(0x3f), isNak(0x3f)]).toEqual([false, true, false]);
    expect([isAck(0x61), isRnrNak(0x61), isNak(0x61)]).toEqual([false, false, true]);
    expect([isAck(0x9f), isRnrNak(0xa0), isNak(0xe0)]).toEqual([false, false, false]);
  });

  it('decodes the RNR timer with the IBTA table (0 is the longest)', () => {
    expect(RNR_TIMER_US.length).toBe(32);
    expect(rnrTimerUs(0)).toBe(655_360);
    expect(rnrTimerUs(1)).toBe(10);
    expect(rnrTimerUs(12)).toBe(640);
    expect(rnrTimerUs(14)).toBe(1_280);
    expect(rnrTimerUs(25)).toBe(61_440);
    expect(rnrTimerUs(31)).toBe(491_520);
    for (let t = 2; t < 32; t++) expect(RNR_TIMER_US[t]!).toBeGreaterThan(RNR_TIMER_US[t - 1]!);
    expect(rnrTimerForUs(0)).toBe(1);
    expect(rnrTimerForUs(640)).toBe(12);
    expect(rnrTimerForUs(641)).toBe(13);
    expect(rnrTimerForUs(491_520)).toBe(31);
    expect(rnrTimerForUs(491_521)).toBe(0);
    expect(rnrTimerForUs(Infinity)).toBe(0);
    // These came back as 0 (the longest delay) as if asked for it.
    for (const bad of [NaN, -1, '640', undefined]) expect(() => rnrTimerForUs(bad as number)).toThrow(InvalidArgumentError);
  });
});

describe('AtomicETH and AtomicAckETH', () => {
  it('is VA(64) R_Key(32) swap/add(64) compare(64), 28 bytes', () => {
    const b = new Uint8Array(28);
    writeAtomicEth(b, 0, { atomicVa: 0x1000, atomicRkey: 0x01020304, atomicSwapAdd: 0xfedcba9876543210n, atomicCompare: 1n });
    expect(hex(b)).toBe('0000000000001000' + '01020304' + 'fedcba9876543210' + '0000000000000001');
    const out = { atomicVa: 0, atomicRkey: 0, atomicSwapAdd: 0n, atomicCompare: 0n };
    readAtomicEth(b, 0, out);
    expect(out).toEqual({ atomicVa: 0x1000, atomicRkey: 0x01020304, atomicSwapAdd: 0xfedcba9876543210n, atomicCompare: 1n });
  });

  it('takes a negative operand as its 64-bit two\'s complement', () => {
    const b = new Uint8Array(28);
    writeAtomicEth(b, 0, { atomicVa: 0, atomicRkey: 0, atomicSwapAdd: -1n, atomicCompare: -2n });
    expect(hex(b.subarray(12))).toBe('ffffffffffffffff' + 'fffffffffffffffe');
  });

  it('AtomicAckETH is the original remote data, 64 bits', () => {
    const b = new Uint8Array(8);
    writeAtomicAckEth(b, 0, { atomicAckOrig: 0x8000000000000001n });
    expect(hex(b)).toBe('8000000000000001');
    const out = { atomicAckOrig: 0n };
    readAtomicAckEth(b, 0, out);
    expect(out.atomicAckOrig).toBe(0x8000000000000001n);
  });
});

describe('ImmDt, IETH and DETH', () => {
  it('ImmDt is 32 bits in network order', () => {
    const b = new Uint8Array(4);
    writeImmDt(b, 0, { immDt: 0xcafebabe });
    expect(hex(b)).toBe('cafebabe');
    const out = { immDt: 0 };
    readImmDt(b, 0, out);
    expect(out.immDt).toBe(0xcafebabe);
  });

  it('IETH is the R_Key to invalidate', () => {
    const b = new Uint8Array(4);
    writeIeth(b, 0, { iethRkey: 0x00abcdef });
    expect(hex(b)).toBe('00abcdef');
    const out = { iethRkey: 0 };
    readIeth(b, 0, out);
    expect(out.iethRkey).toBe(0xabcdef);
  });

  it('DETH is Q_Key(32) reserved(8) SrcQP(24)', () => {
    const b = new Uint8Array(8).fill(0xee);
    writeDeth(b, 0, { dethQkey: 0x80010000, dethSrcQp: 0x000001 });
    expect(hex(b)).toBe('80010000' + '00' + '000001');
    b[4] = 0xff;
    const out = { dethQkey: 0, dethSrcQp: 0 };
    readDeth(b, 0, out);
    expect(out).toEqual({ dethQkey: 0x80010000, dethSrcQp: 1 });
  });
});

describe('extension header order', () => {
  it('puts RETH before ImmDt (RDMA Write Only with Immediate)', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: Opcode.RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE, destQp: 7, psn: 9, rethVa: 0x2000, rethRkey: 0x33, rethDmaLen: 4, immDt: 0x01020304 });
    const b = new Uint8Array(32);
    expect(encodeHeaders(b, 0, p)).toBe(32);
    expect(hex(b)).toBe('0b000000' + '00000007' + '00000009' + '0000000000002000' + '00000033' + '00000004' + '01020304');
  });

  it('puts DETH before ImmDt (UD Send Only with Immediate)', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: Opcode.UD_SEND_ONLY_WITH_IMMEDIATE, pkey: 0xffff, destQp: 0x10, dethQkey: 0x11111111, dethSrcQp: 0x22, immDt: 0x33 });
    const b = new Uint8Array(24);
    expect(encodeHeaders(b, 0, p)).toBe(24);
    expect(hex(b)).toBe('6500ffff0000001000000000' + '1111111100000022' + '00000033');
  });

  it('puts AETH before AtomicAckETH (Atomic Acknowledge)', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: Opcode.RC_ATOMIC_ACKNOWLEDGE, aethSyndrome: 0x1f, aethMsn: 2, atomicAckOrig: 5n });
    const b = new Uint8Array(24);
    expect(encodeHeaders(b, 0, p)).toBe(24);
    expect(hex(b.subarray(12))).toBe('1f000002' + '0000000000000005');
  });

  it('pads a CNP with 16 reserved zero bytes', () => {
    const p = newParsedPacket();
    Object.assign(p, { opcode: Opcode.CNP, pkey: 0xffff, becn: true, destQp: 0xd2 });
    const b = new Uint8Array(32).fill(0xaa);
    expect(encodeHeaders(b, 0, p)).toBe(28);
    expect(hex(b.subarray(0, 28))).toBe('8100ffff400000d200000000' + '00'.repeat(16));
    const q = newParsedPacket();
    expect(decodePacket(b, 32, q)).toBe(DecodeResult.OK);
    expect(q).toMatchObject({ opcode: 0x81, becn: true, destQp: 0xd2, hdrLen: 28, payloadLength: 0 });
  });

  it('refuses to encode an opcode it does not know', () => {
    const p = newParsedPacket();
    p.opcode = 0x15;
    expect(() => encodeHeaders(new Uint8Array(64), 0, p)).toThrow(/opcode/);
    p.opcode = 0x104;
    expect(() => encodeHeaders(new Uint8Array(64), 0, p)).toThrow(/opcode/);
  });
});
