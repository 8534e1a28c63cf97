// copyRuns and copyStrided (native/sys/src/runs.cc): the strided copies
// behind MPI's derived datatypes. Each is compared with the same copy done
// element by element here, and every run outside a buffer is refused with
// a typed error before anything is written.
import { describe, expect, it } from 'vitest';
import { copyRuns, copyStrided, hasCopyRuns, InvalidArgumentError } from '../src/index.js';

describe.runIf(hasCopyRuns())('copyRuns / copyStrided', () => {
  const user = Uint8Array.from({ length: 64 }, (_, i) => i);

  it('copyRuns gathers runs of every instance and scatters them back', () => {
    const disp = Float64Array.of(1, 6);
    const len = Float64Array.of(2, 3);
    const packed = new Uint8Array(12);
    copyRuns(true, user, 4, packed, 1, disp, len, 10, 1, 2); // instances 1 and 2: bases 14 and 24
    expect(Array.from(packed)).toEqual([0, 15, 16, 20, 21, 22, 25, 26, 30, 31, 32, 0]);
    const back = new Uint8Array(64);
    copyRuns(false, back, 4, packed, 1, disp, len, 10, 1, 2);
    const want = new Uint8Array(64);
    for (const i of [15, 16, 20, 21, 22, 25, 26, 30, 31, 32]) want[i] = i;
    expect(Array.from(back)).toEqual(Array.from(want));
  });

  it('copyStrided moves count runs stride apart, 8-byte runs and others', () => {
    const packed = new Uint8Array(8 * 3);
    copyStrided(true, user, 2, packed, 0, 20, 8, 3);
    expect(Array.from(packed)).toEqual([...[2, 3, 4, 5, 6, 7, 8, 9], ...[22, 23, 24, 25, 26, 27, 28, 29], ...[42, 43, 44, 45, 46, 47, 48, 49]]);
    const out = new Uint8Array(6);
    copyStrided(true, user, 60, out, 0, -30, 3, 2); // a negative stride walks down
    expect(Array.from(out)).toEqual([60, 61, 62, 30, 31, 32]);
  });

  it('runs outside either buffer are refused, nothing written', () => {
    const packed = new Uint8Array(4).fill(9);
    expect(() => copyRuns(true, user, 60, packed, 0, Float64Array.of(0), Float64Array.of(8), 8, 0, 1)).toThrow(InvalidArgumentError);
    expect(() => copyRuns(true, user, 0, packed, 0, Float64Array.of(0), Float64Array.of(8), 8, 0, 1)).toThrow(InvalidArgumentError);
    expect(() => copyRuns(true, user, 0, packed, 0, Float64Array.of(-1), Float64Array.of(1), 8, 0, 1)).toThrow(InvalidArgumentError);
    expect(() => copyStrided(false, user, 0, packed, 0, 40, 2, 3)).toThrow(InvalidArgumentError);
    expect(() => copyStrided(true, user, 0, packed, 2, 1, 2, 2)).toThrow(InvalidArgumentError);
    expect(() => copyRuns(true, user, 0, packed, 0, [0] as unknown as Float64Array, Float64Array.of(1), 8, 0, 1)).toThrow(InvalidArgumentError);
    expect(Array.from(packed)).toEqual([9, 9, 9, 9]);
  });
});
