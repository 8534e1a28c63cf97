// Addresses are IP addresses and ports, as rdma_cm's sockaddrs are. On the
// soft HCA several devices can share an IP (each has its own UDP port), so an
// address may also name the device's UDP port (default 4791, RoCEv2's).

import net from 'node:net';
import { InvalidArgumentError } from '@ibal/hca';

export const ROCE_UDP_PORT = 4791;

export interface CmAddress {
  address: string;
  /** The rdma_cm port (the low 16 bits of the service ID); 0 picks one. */
  port: number;
  /** ibal extension: the UDP port of the device behind `address` (default 4791). */
  udpPort?: number;
}

/** "host:port", "[v6]:port", or an object. */
export type CmAddressInput = CmAddress | string;

function checkPort(p: number, what: string): number {
  if (!(Number.isInteger(p) && p >= 0 && p <= 65535)) throw new InvalidArgumentError(`${what} must be an integer in 0..65535, got ${String(p)}`);
  return p;
}

export function parseAddress(input: CmAddressInput, what = 'address'): CmAddress {
  if (typeof input === 'string') {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(input) ?? /^([^:]+):(\d+)$/.exec(input);
    if (!m || !net.isIP(m[1]!)) throw new InvalidArgumentError(`${what}: want "ip:port" or "[ipv6]:port", got "${input}"`);
    return { address: m[1]!, port: checkPort(Number(m[2]), `${what} port`) };
  }
  if (typeof input !== 'object' || input === null || typeof input.address !== 'string' || !net.isIP(input.address)) {
    throw new InvalidArgumentError(`${what}: want { address: <IP literal>, port }, got ${JSON.stringify(input)}`);
  }
  const out: CmAddress = { address: input.address, port: checkPort(input.port ?? 0, `${what} port`) };
  if (input.udpPort !== undefined) out.udpPort = checkPort(input.udpPort, `${what} udpPort`);
  return out;
}

export function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

export function ipVersion(address: string): 4 | 6 {
  return net.isIPv6(address) ? 6 : 4;
}

export function formatAddress(a: CmAddress): string {
  const host = ipVersion(a.address) === 6 ? `[${a.address}]` : a.address;
  return `${host}:${a.port}${a.udpPort !== undefined && a.udpPort !== ROCE_UDP_PORT ? ` (udp ${a.udpPort})` : ''}`;
}

/** Canonical text of an address, so "::1" and "0:0:0:0:0:0:0:1" compare equal. */
export function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  if (ipVersion(a) !== ipVersion(b)) return false;
  const sa = new net.SocketAddress({ address: a, family: ipVersion(a) === 6 ? 'ipv6' : 'ipv4' });
  const sb = new net.SocketAddress({ address: b, family: ipVersion(b) === 6 ? 'ipv6' : 'ipv4' });
  return sa.address === sb.address;
}
