// BTH opcodes (IBTA vol. 1 §9.2) and, per opcode, which
// extension headers follow the BTH. Bits 7..5 of an opcode select the
// transport (000 RC, 001 UC, 011 UD, 100 CNP under RoCEv2 annex A17), bits
// 4..0 the message kind, which is why UC reuses RC's low bits.

export const Opcode = {
  RC_SEND_FIRST: 0x00,
  RC_SEND_MIDDLE: 0x01,
  RC_SEND_LAST: 0x02,
  RC_SEND_LAST_WITH_IMMEDIATE: 0x03,
  RC_SEND_ONLY: 0x04,
  RC_SEND_ONLY_WITH_IMMEDIATE: 0x05,
  RC_RDMA_WRITE_FIRST: 0x06,
  RC_RDMA_WRITE_MIDDLE: 0x07,
  RC_RDMA_WRITE_LAST: 0x08,
  RC_RDMA_WRITE_LAST_WITH_IMMEDIATE: 0x09,
  RC_RDMA_WRITE_ONLY: 0x0a,
  RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE: 0x0b,
  RC_RDMA_READ_REQUEST: 0x0c,
  RC_RDMA_READ_RESPONSE_FIRST: 0x0d,
  RC_RDMA_READ_RESPONSE_MIDDLE: 0x0e,
  RC_RDMA_READ_RESPONSE_LAST: 0x0f,
  RC_RDMA_READ_RESPONSE_ONLY: 0x10,
  RC_ACKNOWLEDGE: 0x11,
  RC_ATOMIC_ACKNOWLEDGE: 0x12,
  RC_COMPARE_SWAP: 0x13,
  RC_FETCH_ADD: 0x14,
  RC_SEND_LAST_WITH_INVALIDATE: 0x16,
  RC_SEND_ONLY_WITH_INVALIDATE: 0x17,
  UC_SEND_FIRST: 0x20,
  UC_SEND_MIDDLE: 0x21,
  UC_SEND_LAST: 0x22,
  UC_SEND_LAST_WITH_IMMEDIATE: 0x23,
  UC_SEND_ONLY: 0x24,
  UC_SEND_ONLY_WITH_IMMEDIATE: 0x25,
  UC_RDMA_WRITE_FIRST: 0x26,
  UC_RDMA_WRITE_MIDDLE: 0x27,
  UC_RDMA_WRITE_LAST: 0x28,
  UC_RDMA_WRITE_LAST_WITH_IMMEDIATE: 0x29,
  UC_RDMA_WRITE_ONLY: 0x2a,
  UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE: 0x2b,
  UD_SEND_ONLY: 0x64,
  UD_SEND_ONLY_WITH_IMMEDIATE: 0x65,
  CNP: 0x81,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Transport service of an opcode: its top three bits. */
export const OpcodeTransport = { RC: 0, UC: 1, RD: 2, UD: 3, CNP: 4 } as const;
export type OpcodeTransport = (typeof OpcodeTransport)[keyof typeof OpcodeTransport];

export function opcodeTransport(op: number): number {
  return (op >>> 5) & 7;
}

// Extension headers, in the order they follow the BTH on the wire.
export const HDR_DETH = 1 << 0;
export const HDR_RETH = 1 << 1;
export const HDR_ATOMIC_ETH = 1 << 2;
export const HDR_AETH = 1 << 3;
export const HDR_ATOMIC_ACK_ETH = 1 << 4;
export const HDR_IMMDT = 1 << 5;
export const HDR_IETH = 1 << 6;
/** The 16 reserved bytes that follow a CNP's BTH (annex A17.9.3). */
export const HDR_CNP_RESERVED = 1 << 7;
/** The opcode carries a payload (possibly empty) and so may carry pad bytes. */
export const HDR_PAYLOAD = 1 << 8;

// Where the packet sits in its message.
export const OP_FIRST = 1 << 9;
export const OP_MIDDLE = 1 << 10;
export const OP_LAST = 1 << 11;
export const OP_ONLY = 1 << 12;

export const OP_REQUEST = 1 << 13;
export const OP_RESPONSE = 1 << 14;

// What the message does.
export const OP_SEND = 1 << 15;
export const OP_RDMA_WRITE = 1 << 16;
export const OP_RDMA_READ = 1 << 17;
export const OP_ATOMIC = 1 << 18;
export const OP_ACK = 1 << 19;
export const OP_CNP = 1 << 20;

/** Set for every opcode this HCA knows; all others are rejected by decodePacket. */
export const OP_VALID = 1 << 30;

export const BTH_BYTES = 12;
export const DETH_BYTES = 8;
export const RETH_BYTES = 16;
export const ATOMIC_ETH_BYTES = 28;
export const AETH_BYTES = 4;
export const ATOMIC_ACK_ETH_BYTES = 8;
export const IMMDT_BYTES = 4;
export const IETH_BYTES = 4;
export const CNP_RESERVED_BYTES = 16;
export const ICRC_BYTES = 4;

/** Flags (HDR_*, OP_*) of each of the 256 opcodes; 0 for an invalid one. */
export const OPCODE_FLAGS = new Uint32Array(256);
/** BTH plus extension headers, in bytes, of each opcode; 0 for an invalid one. */
export const OPCODE_HDR_LEN = new Uint8Array(256);
const names: string[] = new Array<string>(256);

const SEND = HDR_PAYLOAD | OP_REQUEST | OP_SEND;
const WRITE = HDR_PAYLOAD | OP_REQUEST | OP_RDMA_WRITE;
const READ_RESPONSE = HDR_PAYLOAD | OP_RESPONSE | OP_RDMA_READ;

// Message kinds shared by RC and UC, by the opcode's low five bits.
const SEND_WRITE_KINDS: [number, number, string][] = [
  [0x00, SEND | OP_FIRST, 'Send First'],
  [0x01, SEND | OP_MIDDLE, 'Send Middle'],
  [0x02, SEND | OP_LAST, 'Send Last'],
  [0x03, SEND | OP_LAST | HDR_IMMDT, 'Send Last Immediate'],
  [0x04, SEND | OP_ONLY, 'Send Only'],
  [0x05, SEND | OP_ONLY | HDR_IMMDT, 'Send Only Immediate'],
  [0x06, WRITE | OP_FIRST | HDR_RETH, 'RDMA Write First'],
  [0x07, WRITE | OP_MIDDLE, 'RDMA Write Middle'],
  [0x08, WRITE | OP_LAST, 'RDMA Write Last'],
  [0x09, WRITE | OP_LAST | HDR_IMMDT, 'RDMA Write Last Immediate'],
  [0x0a, WRITE | OP_ONLY | HDR_RETH, 'RDMA Write Only'],
  [0x0b, WRITE | OP_ONLY | HDR_RETH | HDR_IMMDT, 'RDMA Write Only Immediate'],
];

const RC_ONLY_KINDS: [number, number, string][] = [
  [0x0c, OP_REQUEST | OP_RDMA_READ | OP_ONLY | HDR_RETH, 'RDMA Read Request'],
  [0x0d, READ_RESPONSE | OP_FIRST | HDR_AETH, 'RDMA Read Response First'],
  [0x0e, READ_RESPONSE | OP_MIDDLE, 'RDMA Read Response Middle'],
  [0x0f, READ_RESPONSE | OP_LAST | HDR_AETH, 'RDMA Read Response Last'],
  [0x10, READ_RESPONSE | OP_ONLY | HDR_AETH, 'RDMA Read Response Only'],
  [0x11, OP_RESPONSE | OP_ACK | OP_ONLY | HDR_AETH, 'Acknowledge'],
  [0x12, OP_RESPONSE | OP_ATOMIC | OP_ONLY | HDR_AETH | HDR_ATOMIC_ACK_ETH, 'Atomic Acknowledge'],
  [0x13, OP_REQUEST | OP_ATOMIC | OP_ONLY | HDR_ATOMIC_ETH, 'Compare Swap'],
  [0x14, OP_REQUEST | OP_ATOMIC | OP_ONLY | HDR_ATOMIC_ETH, 'Fetch Add'],
  [0x16, SEND | OP_LAST | HDR_IETH, 'Send Last Invalidate'],
  [0x17, SEND | OP_ONLY | HDR_IETH, 'Send Only Invalidate'],
];

function headerBytes(flags: number): number {
  let n = BTH_BYTES;
  if (flags & HDR_DETH) n += DETH_BYTES;
  if (flags & HDR_RETH) n += RETH_BYTES;
  if (flags & HDR_ATOMIC_ETH) n += ATOMIC_ETH_BYTES;
  if (flags & HDR_AETH) n += AETH_BYTES;
  if (flags & HDR_ATOMIC_ACK_ETH) n += ATOMIC_ACK_ETH_BYTES;
  if (flags & HDR_IMMDT) n += IMMDT_BYTES;
  if (flags & HDR_IETH) n += IETH_BYTES;
  if (flags & HDR_CNP_RESERVED) n += CNP_RESERVED_BYTES;
  return n;
}

function define(op: number, flags: number, name: string): void {
  OPCODE_FLAGS[op] = (flags | OP_VALID) >>> 0;
  OPCODE_HDR_LEN[op] = headerBytes(flags);
  names[op] = name;
}

for (const [low, flags, name] of SEND_WRITE_KINDS) {
  define(low, flags, `RC ${name}`);
  define(0x20 | low, flags, `UC ${name}`);
}
for (const [low, flags, name] of RC_ONLY_KINDS) define(low, flags, `RC ${name}`);
define(Opcode.UD_SEND_ONLY, SEND | OP_ONLY | HDR_DETH, 'UD Send Only');
define(Opcode.UD_SEND_ONLY_WITH_IMMEDIATE, SEND | OP_ONLY | HDR_DETH | HDR_IMMDT, 'UD Send Only Immediate');
define(Opcode.CNP, OP_CNP | OP_ONLY | HDR_CNP_RESERVED, 'CNP');

export function isValidOpcode(op: number): boolean {
  return op >>> 0 === op && op < 256 && (OPCODE_FLAGS[op]! & OP_VALID) !== 0;
}

/** A Wireshark-style name ("RC Send Only"), or "Reserved (0xNN)" for an invalid opcode. */
export function opcodeName(op: number): string {
  if (isValidOpcode(op)) return names[op]!;
  return `Reserved (0x${(op >>> 0).toString(16).padStart(2, '0')})`;
}

export interface OpcodeInfo {
  readonly opcode: number;
  readonly name: string;
  readonly flags: number;
  /** BTH plus extension headers, in bytes. */
  readonly hdrLen: number;
}

/** The table row of one opcode, for code off the hot path; undefined if invalid. */
export function opcodeInfo(op: number): OpcodeInfo | undefined {
  if (!isValidOpcode(op)) return undefined;
  return { opcode: op, name: names[op]!, flags: OPCODE_FLAGS[op]!, hdrLen: OPCODE_HDR_LEN[op]! };
}
