import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';

/** 4 bytes for IPv4, 16 for IPv6, network order. */
export function ipToBytes(ip: string): Uint8Array {
  if (net.isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!net.isIPv6(ip)) throw new InvalidArgumentError(`not an IP address: ${ip}`);
  const out = new Uint8Array(16);
  let text = ip;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded dotted quad (::ffff:1.2.3.4) becomes two hextets.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = quad[1]!.split('.').map(Number);
    text = text.slice(0, -quad[1]!.length) + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) {
    const v = parseInt(groups[i] ?? '0', 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/** RoCEv2 GID of an address: IPv4 is IPv4-mapped (::ffff:a.b.c.d), as rxe fills its GID table. */
export function gidFromIp(ip: string): Uint8Array {
  const b = ipToBytes(ip);
  if (b.length === 16) return b;
  const gid = new Uint8Array(16);
  gid[10] = 0xff;
  gid[11] = 0xff;
  gid.set(b, 12);
  return gid;
}

export function isIpv4MappedGid(gid: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return false;
  return gid[10] === 0xff && gid[11] === 0xff;
}

/** The address a GID routes to: dotted quad for IPv4-mapped GIDs, else IPv6 text. */
export function ipFromGid(gid: Uint8Array): string {
  if (!(gid instanceof Uint8Array) || gid.length !== 16) throw new InvalidArgumentError('a GID is 16 bytes');
  if (isIpv4MappedGid(gid)) return `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((gid[i]! << 8) | gid[i + 1]!).toString(16));
  return parts.join(':');
}
