// Socket errors carry Node's own codes (ECONNREFUSED, ECONNRESET, EPIPE,
// ETIMEDOUT...) so code written for net handles them unchanged; they are
// IbalErrors too, so ibal callers can catch every ibal failure one way.

import { IbalError } from '@ibal/hca';
import os from 'node:os';

/** A socket-level failure with a Node errno code, like the errors net raises. */
export class SdpSocketError extends IbalError {
  readonly errno: number;
  readonly syscall: string;
  readonly address: string | undefined;
  readonly port: number | undefined;
  constructor(code: string, syscall: string, message: string, where: { address?: string; port?: number } = {}, options?: { cause?: unknown }) {
    const at = where.address !== undefined ? ` ${where.address}${where.port !== undefined ? `:${where.port}` : ''}` : '';
    super(code, `${syscall} ${code}${at}${message ? ` (${message})` : ''}`, options);
    const n = (os.constants.errno as Record<string, number>)[code];
    this.errno = n === undefined ? 0 : -n;
    this.syscall = syscall;
    this.address = where.address;
    this.port = where.port;
  }
}

/** A peer broke the SDP protocol (a malformed BSDH, a message the state does not allow). */
export class SdpProtocolError extends IbalError {
  constructor(message: string) {
    super('ERR_IBAL_SDP_PROTOCOL', message);
  }
}

/** An argument error as net throws them: the built-in class (TypeError, RangeError), with Node's code. */
export function argError(Ctor: typeof TypeError | typeof RangeError, code: string, message: string): Error {
  const e = new Ctor(message);
  (e as NodeJS.ErrnoException).code = code;
  return e;
}

/** What Node's argument errors say they received ("Received type string ('x')", "Received null"). */
export function received(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'function') return `function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'Object'}`;
  const shown = typeof v === 'string' ? `'${v.length > 25 ? `${v.slice(0, 25)}...` : v}'` : String(v);
  return `type ${typeof v} (${shown})`;
}

/** net's validatePort: a number, or a string of one that is not blank, an integer in [0, 65535]; else ERR_SOCKET_BAD_PORT naming `name`. */
export function checkPort(v: number | string, name: string): number {
  const n = typeof v === 'string' && v.trim() === '' ? NaN : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw argError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be >= 0 and < 65536. Received ${received(v)}.`);
  return n;
}

/** A host that is not a string fails at its lookup, as net's (through dns.lookup) does. */
export function checkHostname(host: unknown): void {
  if (host && typeof host !== 'string') throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "hostname" argument must be of type string. Received ${received(host)}`);
}
