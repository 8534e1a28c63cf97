import { InvalidArgumentError } from '../errors.js';
import { readU16, writeU16 } from './big-endian.js';

// The IP and UDP headers around a RoCEv2 packet. The soft HCA sends through
// a UDP socket and never builds them for the wire; they exist for the pcap
// writer and for checking captures against the ICRC rule.

/** IANA's UDP destination port for RoCEv2. */
export const ROCE_V2_UDP_PORT = 4791;

export const IPV4_HEADER_BYTES = 20;
export const IPV6_HEADER_BYTES = 40;
export const UDP_HEADER_BYTES = 8;
export const IP_PROTO_UDP = 17;
/** IPv4 flags/fragment word with only Don't Fragment set. */
export const IPV4_DF = 0x4000;

export interface IpUdpEndpoints {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
}

export function checkEndpoints(ep: IpUdpEndpoints): void {
  const n = ep.family === 4 ? 4 : ep.family === 6 ? 16 : -1;
  if (n < 0) throw new InvalidArgumentError(`family must be 4 or 6, not ${String(ep.family)}`);
  if (ep.src.length !== n || ep.dst.length !== n) {
    throw new InvalidArgumentError(`IPv${ep.family} addresses must be ${n} bytes`);
  }
  for (const port of [ep.srcPort, ep.dstPort]) {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new InvalidArgumentError(`bad UDP port ${port}`);
  }
}

/** RFC 1071 one's-complement sum of b[start..end), folded to 16 bits, not inverted. */
export function onesComplementSum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

export interface FrameOptions {
  /** IPv4 Identification; 0 by default, as the ICRC calculators assume. */
  ipId?: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl?: number;
}

/**
 * Write IP + UDP headers and a copy of roce[0..roceLen) into `out` and return
 * the frame's length. IPv4 gets DF and a correct header checksum and UDP
 * checksum 0 (allowed over IPv4); IPv6 forbids a zero UDP checksum, so it
 * gets a correct one.
 */
export function writeIpUdpFrame(
  out: Uint8Array,
  ep: IpUdpEndpoints,
  roce: Uint8Array,
  roceLen: number,
  opts: FrameOptions = {},
): number {
  const ttl = opts.ttl ?? 64;
  const udpLen = UDP_HEADER_BYTES + roceLen;
  let u: number;
  if (ep.family === 4) {
    out[0] = 0x45;
    out[1] = 0;
    writeU16(out, 2, IPV4_HEADER_BYTES + udpLen);
    writeU16(out, 4, opts.ipId ?? 0);
    writeU16(out, 6, IPV4_DF);
    out[8] = ttl;
    out[9] = IP_PROTO_UDP;
    writeU16(out, 10, 0);
    out.set(ep.src, 12);
    out.set(ep.dst, 16);
    writeU16(out, 10, ~onesComplementSum(out, 0, IPV4_HEADER_BYTES) & 0xffff);
    u = IPV4_HEADER_BYTES;
  } else {
    out[0] = 0x60;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    writeU16(out, 4, udpLen);
    out[6] = IP_PROTO_UDP;
    out[7] = ttl;
    out.set(ep.src, 8);
    out.set(ep.dst, 24);
    u = IPV6_HEADER_BYTES;
  }
  writeU16(out, u, ep.srcPort);
  writeU16(out, u + 2, ep.dstPort);
  writeU16(out, u + 4, udpLen);
  writeU16(out, u + 6, 0);
  out.set(roce.subarray(0, roceLen), u + UDP_HEADER_BYTES);
  if (ep.family === 6) {
    // Pseudo-header: source, destination, upper-layer length, next header.
    let sum = onesComplementSum(out, 8, 40, udpLen + IP_PROTO_UDP);
    sum = onesComplementSum(out, u, u + udpLen, sum);
    const csum = ~sum & 0xffff;
    writeU16(out, u + 6, csum === 0 ? 0xffff : csum);
  }
  return u + udpLen;
}

/** Where the UDP datagram sits in an IP packet. */
export interface UdpInIp {
  family: 4 | 6;
  ipHeaderLength: number;
  udpOffset: number;
  payloadOffset: number;
  payloadLength: number;
  srcPort: number;
  dstPort: number;
}

/**
 * Find the UDP datagram in an IP packet as captured: IPv4 options are
 * skipped by IHL, trailing link-layer padding is cut by the IP length.
 * Undefined if it is not an unfragmented UDP packet (IPv6 extension headers
 * are not followed; RoCEv2 does not use them).
 */
export function locateUdp(ip: Uint8Array): UdpInIp | undefined {
  if (ip.length < 1) return undefined;
  const version = ip[0]! >>> 4;
  let hl: number;
  let end: number;
  if (version === 4) {
    hl = (ip[0]! & 0xf) * 4;
    if (hl < IPV4_HEADER_BYTES || ip.length < hl) return undefined;
    if (ip[9] !== IP_PROTO_UDP) return undefined;
    if ((readU16(ip, 6) & 0x3fff) !== 0) return undefined;
    end = readU16(ip, 2);
  } else if (version === 6) {
    hl = IPV6_HEADER_BYTES;
    if (ip.length < hl || ip[6] !== IP_PROTO_UDP) return undefined;
    end = hl + readU16(ip, 4);
  } else {
    return undefined;
  }
  if (end > ip.length || end < hl + UDP_HEADER_BYTES) return undefined;
  const udpLen = readU16(ip, hl + 4);
  if (udpLen < UDP_HEADER_BYTES || hl + udpLen > end) return undefined;
  return {
    family: version as 4 | 6,
    ipHeaderLength: hl,
    udpOffset: hl,
    payloadOffset: hl + UDP_HEADER_BYTES,
    payloadLength: udpLen - UDP_HEADER_BYTES,
    srcPort: readU16(ip, hl),
    dstPort: readU16(ip, hl + 2),
  };
}
