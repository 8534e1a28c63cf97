import { InvalidArgumentError } from '../errors.js';
import { readU24, writeU24 } from './big-endian.js';

// ACK Extended Transport Header, 4 bytes: Syndrome(8) MSN(24).
// Syndrome: bit 7 reserved; bits 6..5
// the type (00 ACK, 01 RNR NAK, 10 reserved, 11 NAK); bits 4..0 the credit
// count of an ACK, the RNR timer of an RNR NAK, the NAK code of a NAK.

export interface AethFields {
  aethSyndrome: number;
  aethMsn: number;
}

export function writeAeth(b: Uint8Array, o: number, h: AethFields): void {
  b[o] = h.aethSyndrome;
  writeU24(b, o + 1, h.aethMsn);
}

export function readAeth(b: Uint8Array, o: number, out: AethFields): void {
  out.aethSyndrome = b[o]!;
  out.aethMsn = readU24(b, o + 1);
}

export const AethType = { ACK: 0, RNR_NAK: 1, RESERVED: 2, NAK: 3 } as const;
export type AethType = (typeof AethType)[keyof typeof AethType];

export const NakCode = {
  PSN_SEQUENCE_ERROR: 0,
  INVALID_REQUEST: 1,
  REMOTE_ACCESS_ERROR: 2,
  REMOTE_OPERATIONAL_ERROR: 3,
  INVALID_RD_REQUEST: 4,
} as const;
export type NakCode = (typeof NakCode)[keyof typeof NakCode];

/**
 * The credit count a responder without end-to-end flow control advertises
 * (0b11111, "invalid": the requester ignores credits). rxe sends it on every
 * ACK (AETH_ACK_UNLIMITED).
 */
export const CREDITS_UNLIMITED = 31;

export function ackSyndrome(credits: number): number {
  return credits & 0x1f;
}

export function rnrNakSyndrome(timer: number): number {
  return 0x20 | (timer & 0x1f);
}

export function nakSyndrome(code: number): number {
  return 0x60 | (code & 0x1f);
}

/** A syndrome with its reserved bit 7 set is RESERVED whatever bits 6..5 say. */
export function syndromeType(syndrome: number): AethType {
  if (syndrome & 0x80) return AethType.RESERVED;
  return ((syndrome >>> 5) & 3) as AethType;
}

/** Credit count, RNR timer or NAK code, by the type. */
export function syndromeValue(syndrome: number): number {
  return syndrome & 0x1f;
}

export function isAck(syndrome: number): boolean {
  return (syndrome & 0xe0) === 0x00;
}

export function isRnrNak(syndrome: number): boolean {
  return (syndrome & 0xe0) === 0x20;
}

export function isNak(syndrome: number): boolean {
  return (syndrome & 0xe0) === 0x60;
}

/**
 * RNR NAK timer field to the delay it asks for, in microseconds (the IBTA
 * encoding, shared with ibv_qp_attr.min_rnr_timer). 0 is the longest,
 * 655.36 ms, not the shortest.
 */
export const RNR_TIMER_US: Readonly<Uint32Array> = Uint32Array.of(
  655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920,
  2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
);

export function rnrTimerUs(timer: number): number {
  return RNR_TIMER_US[timer & 0x1f]!;
}

/** The shortest encoded delay of at least `us` microseconds (0, i.e. 655.36 ms, beyond 491.52 ms). */
export function rnrTimerForUs(us: number): number {
  // NaN or a string used to come back as 0, the longest delay, as if asked for it.
  if (typeof us !== 'number' || !(us >= 0)) throw new InvalidArgumentError(`rnrTimerForUs: microseconds must be a number >= 0, got ${String(us)}`);
  for (let t = 1; t < 32; t++) if (RNR_TIMER_US[t]! >= us) return t;
  return 0;
}
