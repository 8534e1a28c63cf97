// GIDs in text. RoCEv2 GIDs are IP addresses: IPv6 as is, IPv4 as the
// IPv4-mapped IPv6 address ::ffff:a.b.c.d (how rxe and mlx5 fill their GID
// tables), so the text form is the IPv6 one ibv_devinfo -v prints.

import { isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError } from '@ibal/hca';
import type { Gid } from '@ibal/hca';

function checkGid(gid: Gid): void {
  if (!(gid instanceof Uint8Array) || gid.length !== 16) throw new InvalidArgumentError('a GID is a 16-byte Uint8Array');
}

function isV4Mapped(gid: Gid): boolean {
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return false;
  return gid[10] === 0xff && gid[11] === 0xff;
}

/** RFC 5952 text: lowercase, longest zero run as "::", IPv4-mapped GIDs as ::ffff:a.b.c.d. */
export function gidToString(gid: Gid): string {
  checkGid(gid);
  if (isV4Mapped(gid)) return `::ffff:${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((gid[i]! << 8) | gid[i + 1]!);
  // Longest run of two or more zero groups; the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number): string => g.toString(16);
  if (bestStart < 0) return groups.map(hex).join(':');
  const head = groups.slice(0, bestStart).map(hex).join(':');
  const tail = groups.slice(bestStart + bestLen).map(hex).join(':');
  return `${head}::${tail}`;
}

/** Parses IPv6 text (any valid form, including ::ffff:a.b.c.d) into a GID. */
export function gidFromString(text: string): Gid {
  if (typeof text !== 'string' || !isIPv6(text) || text.includes('%')) {
    throw new InvalidArgumentError(`not a GID (IPv6 text form): ${String(text)}`);
  }
  let s = text;
  const tailV4: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    for (const part of s.slice(lastColon + 1).split('.')) tailV4.push(Number(part));
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = s.split('::');
  const parse = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = parse(halves[0]!);
  const tail = halves.length > 1 ? parse(halves[1]!) : [];
  const fill = halves.length > 1 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array<string>(fill).fill('0'), ...tail];
  const gid = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i]!, 16);
    gid[i * 2] = g >> 8;
    gid[i * 2 + 1] = g & 0xff;
  }
  if (tailV4.length === 4) gid.set(tailV4, 12);
  return gid;
}

/** The RoCEv2 GID of an IP address: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
export function gidFromIp(ip: string): Gid {
  if (typeof ip === 'string' && isIPv4(ip)) return gidFromString(`::ffff:${ip}`);
  if (typeof ip === 'string' && isIPv6(ip)) return gidFromString(ip);
  throw new InvalidArgumentError(`not an IP address: ${String(ip)}`);
}
