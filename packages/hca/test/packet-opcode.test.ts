import { describe, expect, it } from 'vitest';
import {
  HDR_AETH,
  HDR_ATOMIC_ACK_ETH,
  HDR_ATOMIC_ETH,
  HDR_CNP_RESERVED,
  HDR_DETH,
  HDR_IETH,
  HDR_IMMDT,
  HDR_PAYLOAD,
  HDR_RETH,
  isValidOpcode,
  OP_FIRST,
  OP_LAST,
  OP_MIDDLE,
  OP_ONLY,
  OP_REQUEST,
  OP_RESPONSE,
  Opcode,
  OPCODE_FLAGS,
  OPCODE_HDR_LEN,
  opcodeInfo,
  opcodeName,
  opcodeTransport,
  OpcodeTransport,
} from '../src/packet/opcode.js';

// Header sequence per opcode, written out from the IBTA opcode table (and
// cross-checked against the per-opcode lengths in Linux rxe_opcode.c), not
// derived the way the implementation derives it.
const B = 12;
const expected: Record<number, { len: number; hdrs: number; payload: boolean }> = {};
function row(op: number, len: number, hdrs: number, payload: boolean): void {
  expected[op] = { len, hdrs, payload };
}
for (const base of [0x00, 0x20]) {
  row(base | 0x00, B, 0, true);
  row(base | 0x01, B, 0, true);
  row(base | 0x02, B, 0, true);
  row(base | 0x03, B + 4, HDR_IMMDT, true);
  row(base | 0x04, B, 0, true);
  row(base | 0x05, B + 4, HDR_IMMDT, true);
  row(base | 0x06, B + 16, HDR_RETH, true);
  row(base | 0x07, B, 0, true);
  row(base | 0x08, B, 0, true);
  row(base | 0x09, B + 4, HDR_IMMDT, true);
  row(base | 0x0a, B + 16, HDR_RETH, true);
  row(base | 0x0b, B + 20, HDR_RETH | HDR_IMMDT, true);
}
row(0x0c, B + 16, HDR_RETH, false);
row(0x0d, B + 4, HDR_AETH, true);
row(0x0e, B, 0, true);
row(0x0f, B + 4, HDR_AETH, true);
row(0x10, B + 4, HDR_AETH, true);
row(0x11, B + 4, HDR_AETH, false);
row(0x12, B + 12, HDR_AETH | HDR_ATOMIC_ACK_ETH, false);
row(0x13, B + 28, HDR_ATOMIC_ETH, false);
row(0x14, B + 28, HDR_ATOMIC_ETH, false);
row(0x16, B + 4, HDR_IETH, true);
row(0x17, B + 4, HDR_IETH, true);
row(0x64, B + 8, HDR_DETH, true);
row(0x65, B + 12, HDR_DETH | HDR_IMMDT, true);
row(0x81, B + 16, HDR_CNP_RESERVED, false);

const ALL_HDRS = HDR_RETH | HDR_AETH | HDR_ATOMIC_ETH | HDR_ATOMIC_ACK_ETH | HDR_IMMDT | HDR_IETH | HDR_DETH | HDR_CNP_RESERVED;

describe('opcode table', () => {
  it('has exactly the opcodes of RC, UC, UD and CNP this HCA implements', () => {
    const valid = [...Array(256).keys()].filter(isValidOpcode);
    expect(valid).toEqual(Object.keys(expected).map(Number).sort((a, b) => a - b));
    expect(new Set(Object.values(Opcode))).toEqual(new Set(valid));
  });

  it('gives each opcode its extension headers and header length', () => {
    for (const [op, e] of Object.entries(expected)) {
      const o = Number(op);
      expect(OPCODE_FLAGS[o]! & ALL_HDRS, opcodeName(o)).toBe(e.hdrs);
      expect((OPCODE_FLAGS[o]! & HDR_PAYLOAD) !== 0, opcodeName(o)).toBe(e.payload);
      expect(OPCODE_HDR_LEN[o], opcodeName(o)).toBe(e.len);
    }
  });

  it('rejects RD, XRC, reserved and the opcodes IBTA 1.5 added (FLUSH, ATOMIC WRITE)', () => {
    for (const op of [0x15, 0x18, 0x19, 0x1f, 0x2c, 0x40, 0x4c, 0x55, 0x60, 0x63, 0x66, 0x80, 0x82, 0xa0, 0xc0, 0xff]) {
      expect(isValidOpcode(op), op.toString(16)).toBe(false);
      expect(OPCODE_FLAGS[op]).toBe(0);
      expect(OPCODE_HDR_LEN[op]).toBe(0);
      expect(opcodeInfo(op)).toBeUndefined();
    }
    for (const v of [-1, 256, 4.5, NaN, 0x104]) expect(isValidOpcode(v)).toBe(false);
  });

  it('marks position in the message exactly once per payload-carrying opcode', () => {
    for (const op of Object.keys(expected).map(Number)) {
      const f = OPCODE_FLAGS[op]!;
      const positions = [OP_FIRST, OP_MIDDLE, OP_LAST, OP_ONLY].filter((b) => f & b).length;
      expect(positions, opcodeName(op)).toBe(1);
    }
    expect(OPCODE_FLAGS[Opcode.RC_RDMA_READ_RESPONSE_MIDDLE]! & OP_MIDDLE).toBeTruthy();
    expect(OPCODE_FLAGS[Opcode.UC_SEND_LAST_WITH_IMMEDIATE]! & OP_LAST).toBeTruthy();
  });

  it('tells requests from responses', () => {
    const responses = [0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12];
    for (const op of Object.keys(expected).map(Number)) {
      const f = OPCODE_FLAGS[op]!;
      if (op === Opcode.CNP) {
        expect(f & (OP_REQUEST | OP_RESPONSE)).toBe(0);
      } else if (responses.includes(op)) {
        expect(f & OP_RESPONSE, opcodeName(op)).toBeTruthy();
        expect(f & OP_REQUEST, opcodeName(op)).toBeFalsy();
      } else {
        expect(f & OP_REQUEST, opcodeName(op)).toBeTruthy();
        expect(f & OP_RESPONSE, opcodeName(op)).toBeFalsy();
      }
    }
  });

  it('names opcodes as Wireshark does and reads the transport from the top bits', () => {
    expect(opcodeName(Opcode.RC_SEND_ONLY)).toBe('RC Send Only');
    expect(opcodeName(Opcode.RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE)).toBe('RC RDMA Write Only Immediate');
    expect(opcodeName(Opcode.RC_COMPARE_SWAP)).toBe('RC Compare Swap');
    expect(opcodeName(Opcode.RC_SEND_ONLY_WITH_INVALIDATE)).toBe('RC Send Only Invalidate');
    expect(opcodeName(Opcode.UC_RDMA_WRITE_MIDDLE)).toBe('UC RDMA Write Middle');
    expect(opcodeName(Opcode.UD_SEND_ONLY_WITH_IMMEDIATE)).toBe('UD Send Only Immediate');
    expect(opcodeName(Opcode.CNP)).toBe('CNP');
    expect(opcodeName(0x15)).toBe('Reserved (0x15)');
    expect(opcodeTransport(Opcode.RC_ACKNOWLEDGE)).toBe(OpcodeTransport.RC);
    expect(opcodeTransport(Opcode.UC_SEND_ONLY)).toBe(OpcodeTransport.UC);
    expect(opcodeTransport(Opcode.UD_SEND_ONLY)).toBe(OpcodeTransport.UD);
    expect(opcodeTransport(Opcode.CNP)).toBe(OpcodeTransport.CNP);
    expect(opcodeInfo(Opcode.RC_FETCH_ADD)).toEqual({
      opcode: 0x14,
      name: 'RC Fetch Add',
      flags: OPCODE_FLAGS[0x14],
      hdrLen: 40,
    });
  });
});
