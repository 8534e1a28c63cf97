// Numeric option values. The C tools read them with strtol(…, 0), so hex
// ("0x1000") is accepted besides decimal; anything else is refused instead
// of being silently read as 0 as strtol would.
import { UsageError } from './cli-error.js';

export function parseIntOption(name: string, text: string, min: number, max: number): number {
  const t = text.trim();
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(t)) v = parseInt(t.slice(2), 16);
  else if (/^\d+$/.test(t)) v = Number(t);
  else throw new UsageError(`${name}: "${text}" is not a number`);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new UsageError(`${name}: ${text} is outside ${min}..${max}`);
  return v;
}

/** An optional string option parsed as an integer, with a default. */
export function intOption(name: string, text: string | undefined, dflt: number, min: number, max: number): number {
  return text === undefined ? dflt : parseIntOption(name, text, min, max);
}
