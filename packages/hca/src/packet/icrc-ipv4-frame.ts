import zlib from 'node:zlib';
import { CRC32_INIT, crc32Byte, crc32Final, crc32Update } from './crc32.js';
import { UDP_HEADER_BYTES } from './ip-frame.js';
import { BTH_BYTES, ICRC_BYTES } from './opcode.js';

// The ICRC over the IPv4 header a packet really arrived with, for the raw
// wire: its Identification and flags are whatever the sender wrote, so the
// per-flow IcrcCalculator (which fixes them at 0 and DF) cannot be used.
// Same masking as icrc.ts (IBTA annex A17): 8 bytes of 0xFF for the LRH,
// TOS, TTL and header checksum as 1s, UDP checksum as 1s, BTH byte 4 as 1s.
// Works on the frame where it lies (a recvmmsg slot): no copy of the packet,
// one 68-byte scratch for the masked headers, and the one subarray view the
// zlib call needs for long packets, as in icrc.ts.

const LRH_BYTES = 8;
const MAX_IPV4_HEADER = 60;
// Below this many bytes after the BTH the JS table beats a zlib call (see icrc.ts).
const NATIVE_MIN = 256;
const scratch = new Uint8Array(LRH_BYTES + MAX_IPV4_HEADER + UDP_HEADER_BYTES).fill(0xff, 0, LRH_BYTES);

/**
 * The ICRC the RoCE packet `roce[0..roceLen)` should carry when it travels
 * behind the IPv4 + UDP headers at `frame[ipOff..)` (IHL read from the
 * frame, options included). The caller has checked that the headers are
 * whole and that roceLen holds a BTH and an ICRC.
 */
export function icrcOverIpv4Header(frame: Uint8Array, ipOff: number, roce: Uint8Array, roceLen: number): number {
  const hl = (frame[ipOff]! & 0x0f) * 4;
  const n = hl + UDP_HEADER_BYTES;
  const h = scratch;
  for (let i = 0; i < n; i++) h[LRH_BYTES + i] = frame[ipOff + i]!;
  const ip = LRH_BYTES;
  h[ip + 1] = 0xff; // TOS
  h[ip + 8] = 0xff; // TTL
  h[ip + 10] = 0xff; // header checksum
  h[ip + 11] = 0xff;
  h[ip + hl + 6] = 0xff; // UDP checksum
  h[ip + hl + 7] = 0xff;
  let s = crc32Update(CRC32_INIT, h, 0, LRH_BYTES + n);
  s = crc32Update(s, roce, 0, 4);
  s = crc32Byte(s, 0xff);
  const end = roceLen - ICRC_BYTES;
  if (end - 5 < NATIVE_MIN) return crc32Final(crc32Update(s, roce, 5, end));
  return zlib.crc32(roce.subarray(5, end), crc32Final(s));
}

/** Whether roceLen can hold a BTH and an ICRC (the least icrcOverIpv4Header needs). */
export function roceLengthOk(roceLen: number): boolean {
  return roceLen >= BTH_BYTES + ICRC_BYTES;
}
