import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, gidFromIp, gidFromString, gidToString } from '../src/index.js';

const hex = (g: Uint8Array): string => Buffer.from(g).toString('hex');

describe('gid helpers', () => {
  it.each([
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['fe80::1', 'fe800000000000000000000000000001'],
    ['fe80::2:0:0:1', 'fe800000000000000002000000000001'],
    ['2001:db8::1:0:0:1', '20010db8000000000001000000000001'],
    ['2001:db8:0:1:1:1:1:1', '20010db8000000010001000100010001'],
    ['1:0:0:2::3', '00010000000000020000000000000003'],
    ['1::2:0:0:3:4', '00010000000000020000000000030004'],
    ['1:0:2:3:4:5:6:7', '00010000000200030004000500060007'],
    ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
    ['::ffff:192.168.1.255', '00000000000000000000ffffc0a801ff'],
  ])('%s round-trips in RFC 5952 form', (text, bytes) => {
    expect(hex(gidFromString(text))).toBe(bytes);
    expect(gidToString(Uint8Array.from(Buffer.from(bytes, 'hex')))).toBe(text);
  });

  it('parses other valid spellings', () => {
    expect(hex(gidFromString('FE80:0000:0000:0000:0000:0000:0000:0001'))).toBe('fe800000000000000000000000000001');
    expect(hex(gidFromString('::FFFF:0a00:0001'))).toBe('00000000000000000000ffff0a000001');
    expect(hex(gidFromString('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
  });

  it('maps IPv4 addresses and passes IPv6 through', () => {
    expect(gidToString(gidFromIp('10.1.2.3'))).toBe('::ffff:10.1.2.3');
    expect(gidToString(gidFromIp('fe80::abcd'))).toBe('fe80::abcd');
  });

  it('refuses what is not an address', () => {
    for (const bad of ['', 'fe80::1::2', '10.0.0.1', 'fe80::1%eth0', 'g::1', 7]) {
      expect(() => gidFromString(bad as string), String(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => gidFromIp('300.1.1.1')).toThrow(InvalidArgumentError);
    expect(() => gidToString(new Uint8Array(15))).toThrow(InvalidArgumentError);
  });

  it('round-trips any 16 bytes through valid IPv6 text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = gidToString(bytes);
        expect(isIPv6(text)).toBe(true);
        expect(hex(gidFromString(text))).toBe(hex(bytes));
      }),
    );
  });

  it('round-trips sparse GIDs with zero runs', () => {
    const sparse = fc.array(fc.constantFrom(0, 0, 0, 1, 0xffff), { minLength: 8, maxLength: 8 }).map((groups) => {
      const b = new Uint8Array(16);
      groups.forEach((g, i) => {
        b[i * 2] = g >> 8;
        b[i * 2 + 1] = g & 0xff;
      });
      return b;
    });
    fc.assert(
      fc.property(sparse, (bytes) => {
        expect(hex(gidFromString(gidToString(bytes)))).toBe(hex(bytes));
      }),
    );
  });
});
