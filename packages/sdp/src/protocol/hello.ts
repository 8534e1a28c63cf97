// Hello and HelloAck (IBTA Annex A4): SDP's connection handshake. They ride
// in the CM REQ and REP private data, not over the QP, and tell each side
// how many receive buffers the other has posted and how big they are.
//
// Hello (BSDH + HH, 68 bytes):
//  16  MajV:4 MinV:4      protocol version (2.2)
//  17  IPV:4 Cap:4        IP version of the addresses; capability bits
//  18  reserved
//  19  MaxAdverts         outstanding SrcAvail/SinkAvail the sender accepts
//  20  DesRemRcvSz u32    receive buffer size the sender would like the peer to use
//  24  LocalRcvSz u32     size of the sender's own receive buffers
//  28  LocalPort u16      the sender's port (the TCP-style port of the socket)
//  30  reserved u16
//  32  SrcIP[16]          IPv4 in the last four bytes
//  48  DstIP[16]
//  64  reserved u16
//  66  ExtMaxAdverts u16  used when Cap has EXTENDED_MAXADVERTS
//
// HelloAck (BSDH + HAH):
//  16  MajV:4 MinV:4
//  17  IPV:4 Cap:4
//  18  reserved
//  19  ExtMaxAdverts
//  20  ActRcvSz u32       the receive buffer size the acceptor actually uses
//  24  reserved up to 64 bytes: Wireshark's SDP dissector reads a 48-byte
//      HelloAck header after the BSDH, so a shorter message decodes as malformed.

import { isIPv4, isIPv6 } from 'node:net';
import { SdpProtocolError } from '../errors.js';
import { BSDH_SIZE, Mid, newBsdh, readBsdh, readU16, readU32, writeBsdh, writeU16, writeU32, type Bsdh } from './bsdh.js';

export const HELLO_SIZE = 68;
export const HELLO_ACK_SIZE = 64;
/** Protocol version 2.2, as the last OFED SDP spoke. */
export const SDP_MAJOR_VERSION = 2;
export const SDP_MINOR_VERSION = 2;

/** Hello.Cap bits. */
export const HelloCap = {
  INVALIDATE: 0x1,
  EXTENDED_MAXADVERTS: 0x2,
} as const;

export interface Hello {
  bsdh: Bsdh;
  majorVersion: number;
  minorVersion: number;
  /** 4 or 6. */
  ipVersion: number;
  cap: number;
  maxAdverts: number;
  desRemRcvSz: number;
  localRcvSz: number;
  localPort: number;
  srcAddress: string;
  dstAddress: string;
  extMaxAdverts: number;
}

export interface HelloAck {
  bsdh: Bsdh;
  majorVersion: number;
  minorVersion: number;
  ipVersion: number;
  cap: number;
  extMaxAdverts: number;
  actRcvSz: number;
}

export interface HelloInit {
  /** Receive buffers posted for the peer's first messages (BSDH.Bufs: the initial credits). */
  bufs: number;
  maxAdverts?: number;
  desRemRcvSz: number;
  localRcvSz: number;
  localPort: number;
  srcAddress: string;
  dstAddress: string;
}

export function encodeHello(h: HelloInit): Uint8Array {
  const v6 = isIPv6(h.srcAddress) && !isV4Mapped(h.srcAddress);
  const out = new Uint8Array(HELLO_SIZE);
  writeBsdh(out, 0, Mid.Hello, 0, h.bufs, HELLO_SIZE, 0, 0);
  out[16] = (SDP_MAJOR_VERSION << 4) | SDP_MINOR_VERSION;
  out[17] = (v6 ? 6 : 4) << 4;
  out[19] = h.maxAdverts ?? 1;
  writeU32(out, 20, h.desRemRcvSz);
  writeU32(out, 24, h.localRcvSz);
  writeU16(out, 28, h.localPort);
  writeIp(out, 32, h.srcAddress);
  writeIp(out, 48, h.dstAddress);
  return out;
}

export function decodeHello(buf: Uint8Array): Hello {
  // CM private data arrives padded to the REQ's 92 bytes: BSDH.Len says how much is the Hello.
  if (buf.length < HELLO_SIZE) throw new SdpProtocolError(`a Hello needs ${HELLO_SIZE} bytes, got ${buf.length}`);
  const bsdh = readBsdh(buf, 0, Math.min(buf.length, readU32(buf, 4)), newBsdh());
  if (bsdh.mid !== Mid.Hello) throw new SdpProtocolError(`expected Hello (MID 0x00), got MID 0x${bsdh.mid.toString(16)}`);
  if (bsdh.len < HELLO_SIZE) throw new SdpProtocolError(`Hello BSDH.Len ${bsdh.len} is shorter than ${HELLO_SIZE}`);
  const ipVersion = buf[17]! >> 4;
  if (ipVersion !== 4 && ipVersion !== 6) throw new SdpProtocolError(`Hello names IP version ${ipVersion}`);
  const hello: Hello = {
    bsdh,
    majorVersion: buf[16]! >> 4,
    minorVersion: buf[16]! & 0xf,
    ipVersion,
    cap: buf[17]! & 0xf,
    maxAdverts: buf[19]!,
    desRemRcvSz: readU32(buf, 20),
    localRcvSz: readU32(buf, 24),
    localPort: readU16(buf, 28),
    srcAddress: readIp(buf, 32, ipVersion),
    dstAddress: readIp(buf, 48, ipVersion),
    extMaxAdverts: readU16(buf, 66),
  };
  checkVersion(hello.majorVersion, 'Hello');
  checkRcvSz(hello.localRcvSz, 'Hello LocalRcvSz');
  return hello;
}

export interface HelloAckInit {
  bufs: number;
  actRcvSz: number;
  ipVersion: number;
}

export function encodeHelloAck(h: HelloAckInit): Uint8Array {
  const out = new Uint8Array(HELLO_ACK_SIZE);
  writeBsdh(out, 0, Mid.HelloAck, 0, h.bufs, HELLO_ACK_SIZE, 0, 0);
  out[16] = (SDP_MAJOR_VERSION << 4) | SDP_MINOR_VERSION;
  out[17] = h.ipVersion << 4;
  writeU32(out, 20, h.actRcvSz);
  return out;
}

export function decodeHelloAck(buf: Uint8Array): HelloAck {
  if (buf.length < 24) throw new SdpProtocolError(`a HelloAck needs at least 24 bytes, got ${buf.length}`);
  const bsdh = readBsdh(buf, 0, Math.min(buf.length, readU32(buf, 4)), newBsdh());
  if (bsdh.mid !== Mid.HelloAck) throw new SdpProtocolError(`expected HelloAck (MID 0x01), got MID 0x${bsdh.mid.toString(16)}`);
  if (bsdh.len < 24) throw new SdpProtocolError(`HelloAck BSDH.Len ${bsdh.len} is shorter than 24`);
  const ack: HelloAck = {
    bsdh,
    majorVersion: buf[16]! >> 4,
    minorVersion: buf[16]! & 0xf,
    ipVersion: buf[17]! >> 4,
    cap: buf[17]! & 0xf,
    extMaxAdverts: buf[19]!,
    actRcvSz: readU32(buf, 20),
  };
  checkVersion(ack.majorVersion, 'HelloAck');
  checkRcvSz(ack.actRcvSz, 'HelloAck ActRcvSz');
  return ack;
}

function checkVersion(major: number, what: string): void {
  if (major !== SDP_MAJOR_VERSION) throw new SdpProtocolError(`${what} speaks SDP major version ${major}, this side ${SDP_MAJOR_VERSION}`);
}

function checkRcvSz(size: number, what: string): void {
  // A buffer must hold at least a BSDH and one byte; beyond 16 MiB a ring is a misconfiguration, not a size.
  if (size <= BSDH_SIZE || size > 1 << 24) throw new SdpProtocolError(`${what} ${size} is outside ${BSDH_SIZE + 1}..${1 << 24}`);
}

function isV4Mapped(a: string): boolean {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a);
}

function writeIp(out: Uint8Array, offset: number, address: string): void {
  const a = isV4Mapped(address) ? address.slice(7) : address;
  if (isIPv4(a)) {
    const parts = a.split('.').map(Number);
    for (let i = 0; i < 4; i++) out[offset + 12 + i] = parts[i]!;
    return;
  }
  if (!isIPv6(a)) throw new SdpProtocolError(`not an IP address: ${address}`);
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) writeU16(out, offset + 2 * i, parseInt(groups[i]!, 16));
}

function readIp(buf: Uint8Array, offset: number, ipVersion: number): string {
  if (ipVersion === 4) return `${buf[offset + 12]}.${buf[offset + 13]}.${buf[offset + 14]}.${buf[offset + 15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(readU16(buf, offset + 2 * i).toString(16));
  // RFC 5952: compress the longest run of zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
