import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BSDH_SIZE, BsdhFlags, Mid, midName, readBsdh, writeBsdh } from '../src/protocol/bsdh.js';
import { HELLO_ACK_SIZE, HELLO_SIZE, decodeHello, decodeHelloAck, encodeHello, encodeHelloAck } from '../src/protocol/hello.js';
import {
  RDMA_RD_COMPL_SIZE,
  SRC_AVAIL_HEADER_SIZE,
  readRdmaRdCompl,
  readSrcAvail,
  writeRdmaRdCompl,
  writeSrcAvail,
} from '../src/protocol/messages.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('BSDH', () => {
  it('lays out MID, flags, bufs, len, mseq, mseq_ack big-endian in 16 bytes', () => {
    const b = new Uint8Array(BSDH_SIZE);
    writeBsdh(b, 0, Mid.Data, BsdhFlags.OOB_PRES, 0x1234, 16, 0xdeadbeef, 0x01020304);
    expect(hex(b)).toBe('ff01' + '1234' + '00000010' + 'deadbeef' + '01020304');
    expect(readBsdh(b, 0, 16)).toEqual({ mid: 0xff, flags: 1, bufs: 0x1234, len: 16, mseq: 0xdeadbeef, mseqAck: 0x01020304 });
  });

  it('uses the Annex A4 message ids', () => {
    expect([Mid.Hello, Mid.HelloAck, Mid.DisConn, Mid.AbortConn, Mid.SendSM, Mid.RdmaWrCompl, Mid.RdmaRdCompl, Mid.ModeChange]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([Mid.SrcAvailCancel, Mid.SinkAvailCancel, Mid.SinkCancelAck, Mid.ChRcvBuf, Mid.ChRcvBufAck, Mid.SuspComm, Mid.SuspCommAck]).toEqual([8, 9, 10, 11, 12, 13, 14]);
    expect([Mid.SinkAvail, Mid.SrcAvail, Mid.Data]).toEqual([0xfd, 0xfe, 0xff]);
    expect(midName(0xfe)).toBe('SrcAvail');
    expect(midName(0x40)).toBeUndefined();
  });

  it('refuses short headers and a Len that disagrees with the bytes received', () => {
    const b = new Uint8Array(32);
    expect(() => readBsdh(b, 0, 15)).toThrow(/shorter than the 16-byte BSDH/);
    writeBsdh(b, 0, Mid.Data, 0, 1, 20, 1, 0);
    expect(() => readBsdh(b, 0, 32)).toThrow(/does not match/);
    expect(readBsdh(b, 0, 20).len).toBe(20);
  });

  it('round-trips any header', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 16, max: 1 << 20 }), fc.nat(0xffffffff), fc.nat(0xffffffff), (mid, flags, bufs, len, mseq, mseqAck) => {
        const b = new Uint8Array(16);
        writeBsdh(b, 0, mid, flags, bufs, len, mseq, mseqAck);
        expect(readBsdh(b, 0, len)).toEqual({ mid, flags, bufs, len, mseq, mseqAck });
      }),
    );
  });
});

describe('Hello and HelloAck', () => {
  it('encodes the Hello header fields at their Annex A4 offsets', () => {
    const h = encodeHello({ bufs: 16, desRemRcvSz: 16384, localRcvSz: 8192, localPort: 4242, srcAddress: '127.0.0.1', dstAddress: '10.1.2.3' });
    expect(h.length).toBe(HELLO_SIZE);
    expect(hex(h.subarray(0, 16))).toBe('00000010' + '00000044' + '00000000' + '00000000');
    expect(h[16]).toBe(0x22); // version 2.2
    expect(h[17]).toBe(0x40); // IPv4, no capabilities
    expect(h[19]).toBe(1); // MaxAdverts
    expect(hex(h.subarray(20, 32))).toBe('00004000' + '00002000' + '1092' + '0000');
    expect(hex(h.subarray(32, 48))).toBe('000000000000000000000000' + '7f000001');
    expect(hex(h.subarray(48, 64))).toBe('000000000000000000000000' + '0a010203');
    const d = decodeHello(h);
    expect(d).toMatchObject({ majorVersion: 2, minorVersion: 2, ipVersion: 4, desRemRcvSz: 16384, localRcvSz: 8192, localPort: 4242, srcAddress: '127.0.0.1', dstAddress: '10.1.2.3' });
    expect(d.bsdh.bufs).toBe(16);
  });

  it('carries IPv6 addresses and decodes a Hello padded to the REQ private data size', () => {
    const h = encodeHello({ bufs: 4, desRemRcvSz: 4096, localRcvSz: 4096, localPort: 1, srcAddress: '::1', dstAddress: 'fe80::1:2' });
    expect(h[17]! >> 4).toBe(6);
    const padded = new Uint8Array(92);
    padded.set(h);
    const d = decodeHello(padded);
    expect(d.srcAddress).toBe('::1');
    expect(d.dstAddress).toBe('fe80::1:2');
  });

  it('encodes HelloAck with ActRcvSz, padded to 64 bytes', () => {
    const a = encodeHelloAck({ bufs: 12, actRcvSz: 16384, ipVersion: 4 });
    expect(a.length).toBe(HELLO_ACK_SIZE);
    expect(hex(a.subarray(0, 24))).toBe('0100000c' + '00000040' + '00000000' + '00000000' + '22400000' + '00004000');
    expect(decodeHelloAck(a)).toMatchObject({ majorVersion: 2, ipVersion: 4, actRcvSz: 16384, bsdh: { bufs: 12 } });
  });

  it('refuses the wrong message, another major version and absurd buffer sizes', () => {
    const a = encodeHelloAck({ bufs: 1, actRcvSz: 4096, ipVersion: 4 });
    expect(() => decodeHello(new Uint8Array(92).fill(0).map((_, i) => a[i] ?? 0))).toThrow(/expected Hello/);
    const h = encodeHello({ bufs: 1, desRemRcvSz: 4096, localRcvSz: 4096, localPort: 1, srcAddress: '1.2.3.4', dstAddress: '1.2.3.5' });
    h[16] = 0x32;
    expect(() => decodeHello(h)).toThrow(/major version 3/);
    const z = encodeHelloAck({ bufs: 1, actRcvSz: 8, ipVersion: 4 });
    expect(() => decodeHelloAck(z)).toThrow(/ActRcvSz 8/);
    expect(() => decodeHello(new Uint8Array(10))).toThrow(/needs 68 bytes/);
  });
});

describe('SrcAvail and RdmaRdCompl', () => {
  it('writes SrcAH { len, rkey, vaddr } after the BSDH with in-line bytes counted in BSDH.Len', () => {
    const b = new Uint8Array(64);
    writeSrcAvail(b, 0, 7, 3, 2, { len: 1 << 20, rkey: 0xabcd, vaddr: 0x1_0000_2000, inlineLen: 32 });
    expect(hex(b.subarray(0, 32))).toBe('fe000007' + '00000040' + '00000003' + '00000002' + '00100000' + '0000abcd' + '0000000100002000');
    expect(readSrcAvail(b, 0, 64, { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 })).toEqual({ len: 1 << 20, rkey: 0xabcd, vaddr: 0x1_0000_2000, inlineLen: 32 });
    expect(() => readSrcAvail(b, 0, 20, { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 })).toThrow(/shorter/);
    writeSrcAvail(b, 0, 7, 3, 2, { len: 8, rkey: 1, vaddr: 0, inlineLen: 32 });
    expect(() => readSrcAvail(b, 0, SRC_AVAIL_HEADER_SIZE + 32, { len: 0, rkey: 0, vaddr: 0, inlineLen: 0 })).toThrow(/advertises only 8/);
  });

  it('writes RdmaRdCompl with the bytes read, zero-padded to 64 bytes', () => {
    const b = new Uint8Array(64).fill(0xee);
    writeRdmaRdCompl(b, 0, 3, 9, 8, 123456);
    expect(hex(b.subarray(0, 20))).toBe('06000003' + '00000040' + '00000009' + '00000008' + '0001e240');
    expect(b.subarray(20).every((x) => x === 0)).toBe(true);
    expect(readRdmaRdCompl(b, 0, RDMA_RD_COMPL_SIZE)).toBe(123456);
  });
});
