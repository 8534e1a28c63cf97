// Which endpoints transparent mode moves to SDP, in the spirit of libsdp.conf:
// one rule per line (or comma-separated in IBAL_SDP_RULES),
//
//   [client|server|both] <address>[/<prefix>]:<port>[-<port>]
//
// with `*` for any address or any port and IPv6 addresses in brackets.
// Examples: `127.0.0.1:8080`, `server *:9000-9100`, `client [::1]:*`,
// `10.0.0.0/8:*`. Blank lines and `#` comments are ignored.

import fs from 'node:fs';
import net from 'node:net';
import { InvalidArgumentError } from '@ibal/hca';

export interface SdpRule {
  role: 'client' | 'server' | 'both';
  /** undefined: any address. */
  address: string | undefined;
  prefix: number;
  portLow: number;
  portHigh: number;
  text: string;
}

function parsePorts(p: string, text: string): [number, number] {
  if (p === '*') return [0, 65535];
  const m = /^(\d+)(?:-(\d+))?$/.exec(p);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(lo >= 0 && hi <= 65535 && lo <= hi)) throw new InvalidArgumentError(`SDP rule "${text}": bad port or port range "${p}"`);
  return [lo, hi];
}

export function parseRule(text: string): SdpRule {
  const t = text.trim();
  const rm = /^(client|server|both)\s+(.*)$/.exec(t);
  const role = (rm ? rm[1] : 'both') as SdpRule['role'];
  const rest = rm ? rm[2]!.trim() : t;
  const m = /^\[([^\]]+)\](?:\/(\d+))?:([^:]+)$/.exec(rest) ?? /^([^:/\s]+)(?:\/(\d+))?:([^:]+)$/.exec(rest);
  if (!m) throw new InvalidArgumentError(`SDP rule "${text}": want [client|server|both] <address>[/<prefix>]:<port>[-<port>]`);
  const addr = m[1]!;
  if (addr !== '*' && !net.isIP(addr)) throw new InvalidArgumentError(`SDP rule "${text}": "${addr}" is not an IP address or *`);
  const full = net.isIPv6(addr) ? 128 : 32;
  const prefix = m[2] !== undefined ? Number(m[2]) : full;
  if (!(prefix >= 0 && prefix <= full)) throw new InvalidArgumentError(`SDP rule "${text}": prefix /${m[2]} is out of range`);
  const [portLow, portHigh] = parsePorts(m[3]!, text);
  return { role, address: addr === '*' ? undefined : addr, prefix, portLow, portHigh, text: t };
}

export function parseRules(text: string): SdpRule[] {
  return text
    .split(/[\n,]/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l.length > 0)
    .map(parseRule);
}

function bits(ip: string): bigint {
  const v4 = ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (net.isIPv4(v4)) return v4.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  const [h, t] = ip.split('::');
  const hs = h ? h.split(':') : [];
  const ts = t !== undefined && t ? t.split(':') : [];
  const all = t === undefined ? hs : [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  return all.reduce((a, g) => (a << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

function inPrefix(ip: string, rule: SdpRule): boolean {
  if (rule.address === undefined) return true;
  const v4 = (a: string) => net.isIPv4(a) || (a.startsWith('::ffff:') && net.isIPv4(a.slice(7)));
  if (v4(ip) !== v4(rule.address)) return false;
  const width = BigInt(v4(ip) ? 32 : 128);
  const shift = width - BigInt(rule.prefix);
  return bits(ip) >> shift === bits(rule.address) >> shift;
}

/** The first rule for this role that covers address:port (a wildcard listen address matches rules for any address). */
export function matchRule(rules: readonly SdpRule[], role: 'client' | 'server', address: string | undefined, port: number): SdpRule | undefined {
  return rules.find((r) => (r.role === 'both' || r.role === role) && port >= r.portLow && port <= r.portHigh && (address === undefined || inPrefix(address, r)));
}

/** Rules from IBAL_SDP_RULES and the file IBAL_SDP_CONFIG names, in that order. */
export function rulesFromEnv(env: NodeJS.ProcessEnv = process.env): SdpRule[] {
  const out: SdpRule[] = [];
  if (env.IBAL_SDP_RULES) out.push(...parseRules(env.IBAL_SDP_RULES));
  if (env.IBAL_SDP_CONFIG) out.push(...parseRules(fs.readFileSync(env.IBAL_SDP_CONFIG, 'utf8')));
  return out;
}
