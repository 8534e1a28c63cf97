// Copies between a datatype's layout in user memory and the packed,
// contiguous form messages travel in. Runs are moved in the widest word
// (4, 2 or 1 bytes) that every displacement, length, extent and both
// buffers' offsets allow: a strided column of doubles moves as 32-bit words
// rather than bytes. Short runs are copied by a loop, long ones by set()
// (memcpy); a subarray per short run would cost more than the copy.
// 64-bit words are avoided on purpose: a Float64Array copy may quiet a
// signalling NaN, and integer data must arrive bit for bit.

/** What a copy needs of a datatype (Datatype has these). */
export interface Runs {
  readonly disp: Float64Array;
  readonly len: Float64Array;
  readonly extent: number;
  readonly size: number;
  readonly align: number;
}

type Words = Uint8Array | Uint16Array | Int32Array;

const LOOP_MAX = 32;

function words(v: ArrayBufferView, w: number): Words {
  const n = Math.floor(v.byteLength / w);
  return w === 4 ? new Int32Array(v.buffer, v.byteOffset, n) : w === 2 ? new Uint16Array(v.buffer, v.byteOffset, n) : new Uint8Array(v.buffer, v.byteOffset, n);
}

function copy(src: Words, s: number, dst: Words, d: number, len: number): void {
  if (len > LOOP_MAX) dst.set(src.subarray(s, s + len), d);
  else for (let j = 0; j < len; j++) dst[d + j] = src[s + j]!;
}

function wordSize(t: Runs, a: number, b: number, c: number, d: number): number {
  let w = Math.min(t.align, 4);
  while (w > 1 && (a % w !== 0 || b % w !== 0 || c % w !== 0 || d % w !== 0)) w >>= 1;
  return w;
}

/**
 * Moves instances [first, first + n) of `t` laid out from byte `userOff` of
 * `user` to or from `packed` at byte `packedOff` (instance `first` goes
 * there). Bounds are the caller's to check (see checkFits).
 */
export function moveInstances(t: Runs, user: ArrayBufferView, userOff: number, first: number, n: number, packed: ArrayBufferView, packedOff: number, toPacked: boolean): void {
  if (n === 0 || t.size === 0) return;
  const w = wordSize(t, user.byteOffset, userOff, packed.byteOffset, packedOff);
  const U = words(user, w);
  const P = words(packed, w);
  const { disp, len, extent } = t;
  const runs = disp.length;
  let p = packedOff / w;
  for (let k = first; k < first + n; k++) {
    const base = userOff + k * extent;
    for (let i = 0; i < runs; i++) {
      const u = (base + disp[i]!) / w;
      const l = len[i]! / w;
      if (toPacked) copy(U, u, P, p, l);
      else copy(P, p, U, u, l);
      p += l;
    }
  }
}

/**
 * Unpacks the first `bytes` of `packed` (from its start) into instances
 * laid out from byte `userOff` of `user`: whole instances, then as much of
 * the next as arrived, run by run (a receive shorter than its buffer).
 */
export function moveBytes(t: Runs, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, bytes: number): void {
  if (t.size === 0) return;
  const whole = Math.floor(bytes / t.size);
  moveInstances(t, user, userOff, 0, whole, packed, 0, false);
  let left = bytes - whole * t.size;
  if (left === 0) return;
  const U = words(user, 1);
  const P = words(packed, 1);
  const base = userOff + whole * t.extent;
  let p = whole * t.size;
  for (let i = 0; left > 0; i++) {
    const l = Math.min(t.len[i]!, left);
    copy(P, p, U, base + t.disp[i]!, l);
    p += l;
    left -= l;
  }
}
