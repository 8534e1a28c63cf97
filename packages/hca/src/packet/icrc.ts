import zlib from 'node:zlib';
import { InvalidArgumentError } from '../errors.js';
import { writeU16 } from './big-endian.js';
import { CRC32_INIT, crc32Byte, crc32Final, crc32Update, zeroRunTable } from './crc32.js';
import {
  checkEndpoints,
  IP_PROTO_UDP,
  IPV4_DF,
  IPV4_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  locateUdp,
  UDP_HEADER_BYTES,
  type IpUdpEndpoints,
} from './ip-frame.js';
import { BTH_BYTES, ICRC_BYTES } from './opcode.js';

// The RoCEv2 invariant CRC (IBTA vol. 1 §7.8 as amended by annex A17):
// CRC-32 as zlib computes it over
//   8 bytes of 0xFF             the LRH RoCEv2 does not have, masked
//   the IP header               IPv4: TOS, TTL, header checksum set to 1s;
//                               IPv6: traffic class, flow label, hop limit
//   the UDP header              checksum set to 0xFFFF
//   the BTH                     byte 4 (FECN, BECN, reserved) set to 0xFF
//   everything after the BTH up to the ICRC itself (headers, payload, pad)
// and stored in the packet's last 4 bytes least significant byte first
// (rxe writes the u32 in host order, on little-endian hosts; ConnectX
// captures agree).
//
// The IPv4 Identification is covered, yet a UDP socket can neither choose
// nor learn it. Both ends of the soft HCA therefore assume ID 0 with only
// DF set in the flags word (Linux sets DF on UDP by default), and the pcap
// writer puts exactly that header into captures so that they verify. The
// real header differs: Linux 6.18 sends unconnected UDP datagrams with DF
// and non-zero, incrementing IDs. So over IPv4 a kernel RoCE endpoint (rxe,
// a NIC) would reject our ICRC; IPv6 has no such field and interoperates.

/** One side's view of a UDP flow: source is the packet's sender. */
export interface IcrcEndpoint extends IpUdpEndpoints {
  /** IPv4 Identification to assume; 0 when the sender is a UDP socket. */
  ipId?: number;
}

const LRH_BYTES = 8;
// Below this many bytes after the BTH, the JS table beats a zlib call plus
// the subarray it needs (measured: crossover ~200 bytes on Node 20).
const NATIVE_MIN = 256;

/**
 * The ICRC of packets of one flow. The masked pseudo-header (LRH, IP, UDP)
 * is fixed but for two length fields, so it is reduced once to a CRC state
 * plus four lookup tables (see zeroRunTable); compute() then costs four
 * loads, the BTH and the rest of the packet.
 *
 * Allocation-free up to NATIVE_MIN bytes after the BTH (ACKs, read requests,
 * atomics, small sends). Longer packets go to zlib's native crc32, ~5x
 * faster than JS at 4 KB, which takes no offset or length and so needs one
 * short-lived subarray view.
 */
export class IcrcCalculator {
  private readonly base: number;
  private readonly ipLenHi: Int32Array;
  private readonly ipLenLo: Int32Array;
  private readonly udpLenHi: Int32Array;
  private readonly udpLenLo: Int32Array;
  /** IPv4 total length, or IPv6 payload length, minus the RoCE length. */
  private readonly ipLenBias: number;

  constructor(ep: IcrcEndpoint) {
    checkEndpoints(ep);
    const ipId = ep.ipId ?? 0;
    if (!Number.isInteger(ipId) || ipId < 0 || ipId > 0xffff) throw new InvalidArgumentError(`bad IPv4 ID ${ipId}`);
    const v4 = ep.family === 4;
    const ipLenAt = LRH_BYTES + (v4 ? 2 : 4);
    const udpAt = LRH_BYTES + (v4 ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES);
    const p = new Uint8Array(udpAt + UDP_HEADER_BYTES);
    p.fill(0xff, 0, LRH_BYTES);
    const ip = LRH_BYTES;
    if (v4) {
      p[ip] = 0x45;
      p[ip + 1] = 0xff;
      writeU16(p, ip + 4, ipId);
      writeU16(p, ip + 6, IPV4_DF);
      p[ip + 8] = 0xff;
      p[ip + 9] = IP_PROTO_UDP;
      p[ip + 10] = 0xff;
      p[ip + 11] = 0xff;
      p.set(ep.src, ip + 12);
      p.set(ep.dst, ip + 16);
    } else {
      p[ip] = 0x6f;
      p.fill(0xff, ip + 1, ip + 4);
      p[ip + 6] = IP_PROTO_UDP;
      p[ip + 7] = 0xff;
      p.set(ep.src, ip + 8);
      p.set(ep.dst, ip + 24);
    }
    writeU16(p, udpAt, ep.srcPort);
    writeU16(p, udpAt + 2, ep.dstPort);
    p[udpAt + 6] = 0xff;
    p[udpAt + 7] = 0xff;
    this.base = crc32Update(CRC32_INIT, p, 0, p.length);
    const after = (at: number) => zeroRunTable(p.length - at - 1);
    this.ipLenHi = after(ipLenAt);
    this.ipLenLo = after(ipLenAt + 1);
    this.udpLenHi = after(udpAt + 4);
    this.udpLenLo = after(udpAt + 5);
    this.ipLenBias = (v4 ? IPV4_HEADER_BYTES : 0) + UDP_HEADER_BYTES;
  }

  /** ICRC of the RoCE packet pkt[0..len), BTH first, over pkt[0..len-4). */
  compute(pkt: Uint8Array, len: number): number {
    const ipLen = len + this.ipLenBias;
    const udpLen = len + UDP_HEADER_BYTES;
    const state =
      this.base ^
      this.ipLenHi[(ipLen >>> 8) & 0xff]! ^
      this.ipLenLo[ipLen & 0xff]! ^
      this.udpLenHi[(udpLen >>> 8) & 0xff]! ^
      this.udpLenLo[udpLen & 0xff]!;
    return finishOverRoce(state, pkt, len);
  }
}

/** Continue `state` over a RoCE packet of `len` bytes (BTH..ICRC) and finish it. */
function finishOverRoce(state: number, pkt: Uint8Array, len: number): number {
  let s = crc32Update(state, pkt, 0, 4);
  s = crc32Byte(s, 0xff);
  const end = len - ICRC_BYTES;
  if (end - 5 < NATIVE_MIN) return crc32Final(crc32Update(s, pkt, 5, end));
  return zlib.crc32(pkt.subarray(5, end), crc32Final(s));
}

export function readIcrc(pkt: Uint8Array, len: number): number {
  return (pkt[len - 4]! | (pkt[len - 3]! << 8) | (pkt[len - 2]! << 16) | (pkt[len - 1]! << 24)) >>> 0;
}

/** Compute and store the ICRC of pkt[0..len). */
export function writeIcrc(pkt: Uint8Array, len: number, calc: IcrcCalculator): void {
  const crc = calc.compute(pkt, len);
  pkt[len - 4] = crc;
  pkt[len - 3] = crc >>> 8;
  pkt[len - 2] = crc >>> 16;
  pkt[len - 1] = crc >>> 24;
}

/** Whether pkt[0..len) ends in its correct ICRC; false for anything too short to hold a BTH and an ICRC. */
export function checkIcrc(pkt: Uint8Array, len: number, calc: IcrcCalculator): boolean {
  if (!(len >= BTH_BYTES + ICRC_BYTES && len <= pkt.length)) return false;
  return calc.compute(pkt, len) === readIcrc(pkt, len);
}

const LRH_MASK = new Uint8Array(LRH_BYTES).fill(0xff);
const headerScratch = new Uint8Array(60 + UDP_HEADER_BYTES);

/**
 * The ICRC a RoCEv2 packet inside `ipPacket` (an IPv4 or IPv6 packet as
 * captured: real IPv4 ID, options by IHL) should carry. For checking
 * captures from other implementations, not for the data path.
 */
export function computeIcrcFromFrame(ipPacket: Uint8Array): number {
  if (!(ipPacket instanceof Uint8Array)) throw new InvalidArgumentError('computeIcrcFromFrame takes the IP packet as a Uint8Array');
  const udp = locateUdp(ipPacket);
  if (!udp) throw new InvalidArgumentError('not an unfragmented IPv4/IPv6 UDP packet');
  if (udp.payloadLength < BTH_BYTES + ICRC_BYTES) throw new InvalidArgumentError('UDP payload too short for a BTH and an ICRC');
  const hdrEnd = udp.payloadOffset;
  const h = headerScratch;
  h.set(ipPacket.subarray(0, hdrEnd), 0);
  if (udp.family === 4) {
    h[1] = 0xff;
    h[8] = 0xff;
    h[10] = 0xff;
    h[11] = 0xff;
  } else {
    h[0] = h[0]! | 0x0f;
    h[1] = 0xff;
    h[2] = 0xff;
    h[3] = 0xff;
    h[7] = 0xff;
  }
  h[udp.udpOffset + 6] = 0xff;
  h[udp.udpOffset + 7] = 0xff;
  let s = crc32Update(CRC32_INIT, LRH_MASK, 0, LRH_BYTES);
  s = crc32Update(s, h, 0, hdrEnd);
  return finishOverRoce(s, ipPacket.subarray(hdrEnd, hdrEnd + udp.payloadLength), udp.payloadLength);
}
