// printf-style pieces the rdma-core and perftest outputs are made of.

/** `%0<width>x`. */
export function hex(value: number | bigint, width: number): string {
  return value.toString(16).padStart(width, '0');
}

/** ibv_devinfo's GUID form: four groups of four hex digits. */
export function guidColons(guid: bigint): string {
  const h = hex(BigInt.asUintN(64, guid), 16);
  return `${h.slice(0, 4)}:${h.slice(4, 8)}:${h.slice(8, 12)}:${h.slice(12, 16)}`;
}

/** `%.<digits>f`. */
export function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}
