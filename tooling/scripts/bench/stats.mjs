// Summaries over repeated runs.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** One measured quantity per size: every sample, the errors, and the median. */
export class Series {
  constructor(sizes) {
    this.bySize = Object.fromEntries(sizes.map((s) => [s, []]));
    this.errors = [];
  }

  add(size, value) {
    if (typeof value === 'number' && Number.isFinite(value)) this.bySize[size]?.push(value);
  }

  fail(what, err) {
    this.errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }

  toJSON() {
    const medians = {};
    for (const [size, samples] of Object.entries(this.bySize)) medians[size] = median(samples);
    return { median: medians, samples: this.bySize, errors: this.errors };
  }
}
