// rdma_cm's IP address header (IBTA annex A11, struct cma_hdr): the first
// 36 bytes of an IP-based REQ's or SIDR_REQ's private data tell the passive
// side the active side's IP address and port, which a GID alone does not.
//   0: version (0x00)   1: IP version in bits 7:4   2: source port
//   4: source address   20: destination address (IPv4 in the last 4 bytes)

import net from 'node:net';

export const CMA_HEADER_SIZE = 36;
export const CMA_VERSION = 0x00;

export interface CmaHeader {
  version: number;
  ipVersion: 4 | 6;
  srcPort: number;
  srcAddress: string;
  dstAddress: string;
}

function putAddr(out: Uint8Array, off: number, ip: string, v: 4 | 6): void {
  out.fill(0, off, off + 16);
  if (v === 4) {
    const parts = ip.split('.').map(Number);
    for (let i = 0; i < 4; i++) out[off + 12 + i] = parts[i]! & 0xff;
    return;
  }
  const groups = expand6(ip.split('%')[0]!);
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = groups[i]! >> 8;
    out[off + 2 * i + 1] = groups[i]! & 0xff;
  }
}

function expand6(ip: string): number[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const all = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.map((g) => parseInt(g || '0', 16));
}

function getAddr(b: Uint8Array, off: number, v: 4 | 6): string {
  if (v === 4) return `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  return new net.SocketAddress({ address: parts.join(':'), family: 'ipv6' }).address;
}

export function writeCmaHeader(out: Uint8Array, h: Omit<CmaHeader, 'version'>): void {
  out[0] = CMA_VERSION;
  out[1] = h.ipVersion << 4;
  out[2] = (h.srcPort >> 8) & 0xff;
  out[3] = h.srcPort & 0xff;
  putAddr(out, 4, h.srcAddress, h.ipVersion);
  putAddr(out, 20, h.dstAddress, h.ipVersion);
}

/** The header at the head of `pd`, or undefined when it is not one this CM understands. */
export function readCmaHeader(pd: Uint8Array): CmaHeader | undefined {
  if (pd.length < CMA_HEADER_SIZE || pd[0] !== CMA_VERSION) return undefined;
  const v = pd[1]! >> 4;
  if (v !== 4 && v !== 6) return undefined;
  return {
    version: pd[0],
    ipVersion: v,
    srcPort: (pd[2]! << 8) | pd[3]!,
    srcAddress: getAddr(pd, 4, v),
    dstAddress: getAddr(pd, 20, v),
  };
}
