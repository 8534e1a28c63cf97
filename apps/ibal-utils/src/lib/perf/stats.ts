// The numbers perftest reports, computed its way (print_report_bw and
// print_report_lat in perftest_parameters.c), from post and completion
// timestamps in milliseconds (performance.now()).

/** 2^20: perftest's MB. */
const MB = 0x100000;

export interface BwRow {
  MsgSize: number;
  n_iterations: number;
  /** MB/sec. */
  BW_peak: number;
  BW_average: number;
  /** Mpps. */
  MsgRate: number;
}

export interface LatRow {
  MsgSize: number;
  n_iterations: number;
  /** Microseconds. */
  t_min: number;
  t_max: number;
  t_typical: number;
  t_avg: number;
  t_stdev: number;
  percentile_99: number;
  'percentile_99.9': number;
}

/**
 * `posted[i]` is when WR i was posted; `completed[j]` when WR j completed,
 * set only for signaled WRs (`signaled` lists their indices, ascending, the
 * last WR among them).
 */
export function bwRow(size: number, posted: Float64Array, completed: Float64Array, signaled: readonly number[]): BwRow {
  const n = posted.length;
  const seconds = (completed[n - 1]! - posted[0]!) / 1000;
  // Peak: the shortest time per WR over any run from a post to a later
  // signaled completion.
  let best = Infinity;
  let first = 0;
  for (let i = 0; i < n; i++) {
    while (signaled[first]! < i) first++;
    for (let k = first; k < signaled.length; k++) {
      const j = signaled[k]!;
      const perWr = (completed[j]! - posted[i]!) / (j - i + 1);
      if (perWr < best) best = perWr;
    }
  }
  const peakSeconds = best / 1000;
  return {
    MsgSize: size,
    n_iterations: n,
    BW_peak: peakSeconds > 0 ? size / peakSeconds / MB : 0,
    BW_average: seconds > 0 ? (size * n) / seconds / MB : 0,
    MsgRate: seconds > 0 ? n / seconds / 1e6 : 0,
  };
}

/** The two highest samples are dropped as outliers (perftest's LAT_MEASURE_TAIL). */
const TAIL = 2;

function median(sorted: Float64Array, count: number): number {
  if (count === 0) return 0;
  const mid = count >> 1;
  return count % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Latency from consecutive post times: each gap is one iteration. `divisor`
 * is 2 for ping-pongs (WRITE, SEND: half the round trip is the one-way
 * latency) and 1 for READ and atomics, whose iteration is one request.
 */
export function latRow(size: number, posted: Float64Array, divisor: number): LatRow {
  const n = posted.length;
  const deltas = new Float64Array(Math.max(0, n - 1));
  for (let i = 0; i + 1 < n; i++) deltas[i] = ((posted[i + 1]! - posted[i]!) * 1000) / divisor;
  deltas.sort();
  const total = deltas.length;
  const m = total > TAIL + 1 ? total - TAIL : total;
  let sum = 0;
  for (let i = 0; i < m; i++) sum += deltas[i]!;
  const avg = m > 0 ? sum / m : 0;
  let sq = 0;
  for (let i = 0; i < m; i++) sq += (deltas[i]! - avg) ** 2;
  const at = (k: number): number => (total === 0 ? 0 : deltas[Math.min(k, total - 1)]!);
  return {
    MsgSize: size,
    n_iterations: n,
    t_min: at(0),
    t_max: at(m),
    t_typical: median(deltas, m),
    t_avg: avg,
    t_stdev: m > 0 ? Math.sqrt(sq / m) : 0,
    percentile_99: at(Math.ceil(m * 0.99)),
    'percentile_99.9': at(Math.ceil(m * 0.999)),
  };
}
