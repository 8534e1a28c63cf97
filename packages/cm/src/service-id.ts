// rdma_cm's port spaces: an IP port becomes an IB service ID by putting the
// port space above it, ((ps << 16) + port), so listeners of different
// protocols on the same port number never meet.

import { InvalidArgumentError } from '@ibal/hca';

/** enum rdma_port_space. */
export const PortSpace = {
  /** Sockets Direct Protocol: no rdma_cm header in the private data (SDP brings its own). */
  SDP: 0x0001,
  IPOIB: 0x0002,
  /** Reliable connections (RC QPs): the default. */
  TCP: 0x0106,
  /** Unreliable datagrams (UD QPs): SIDR instead of a connection. */
  UDP: 0x0111,
  IB: 0x013f,
} as const;
export type PortSpace = (typeof PortSpace)[keyof typeof PortSpace];

const psNames: Record<number, string> = Object.fromEntries(Object.entries(PortSpace).map(([k, v]) => [v, k]));

export function portSpaceName(ps: number): string {
  return psNames[ps] ?? `PS_0x${ps.toString(16)}`;
}

export function checkPortSpace(ps: number): PortSpace {
  if (!(ps in psNames)) throw new InvalidArgumentError(`unknown port space 0x${Number(ps).toString(16)} (want a PortSpace value)`);
  return ps as PortSpace;
}

export function serviceId(ps: number, port: number): bigint {
  return (BigInt(ps) << 16n) + BigInt(port & 0xffff);
}

/** The port space and port of an IP-based service ID, or undefined for any other. */
export function parseServiceId(sid: bigint): { portSpace: number; port: number } | undefined {
  if (sid >> 32n !== 0n) return undefined;
  const ps = Number(sid >> 16n);
  if (!(ps in psNames)) return undefined;
  return { portSpace: ps, port: Number(sid & 0xffffn) };
}

/** Private data the rdma_cm header takes from the user in this port space (SDP and IB carry none). */
export function cmaHeaderBytes(ps: number): number {
  return ps === PortSpace.SDP || ps === PortSpace.IB ? 0 : 36;
}
