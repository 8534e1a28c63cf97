import { InvalidArgumentError } from '../errors.js';

/**
 * Seeded fault injection on a soft device's wire, for users' own tests of
 * what their code does when the network misbehaves. Probabilities are per
 * datagram, applied on the receive side so that every sender (including a
 * peer in another process or another language) is subjected to them.
 */
export interface FaultOptions {
  seed?: number;
  drop?: number;
  duplicate?: number;
  reorder?: number;
  corrupt?: number;
  /** Probability that a datagram is delayed by up to `delayMs` milliseconds. */
  delay?: number;
  delayMs?: number;
}

export interface FaultCounters {
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  delayed: number;
}

export const enum FaultAction {
  Deliver,
  Drop,
  Duplicate,
  Hold,
  Delay,
}

/** mulberry32: tiny, fast, and good enough to make fault runs reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function probability(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw new InvalidArgumentError(`fault probability ${name} must be in [0, 1], got ${String(v)}`);
  }
  return v;
}

export class FaultInjector {
  readonly counters: FaultCounters = { dropped: 0, duplicated: 0, reordered: 0, corrupted: 0, delayed: 0 };
  readonly delayMs: number;
  private readonly rand: () => number;
  private readonly pDrop: number;
  private readonly pDup: number;
  private readonly pReorder: number;
  private readonly pCorrupt: number;
  private readonly pDelay: number;

  constructor(opts: FaultOptions) {
    this.pDrop = probability('drop', opts.drop);
    this.pDup = probability('duplicate', opts.duplicate);
    this.pReorder = probability('reorder', opts.reorder);
    this.pCorrupt = probability('corrupt', opts.corrupt);
    this.pDelay = probability('delay', opts.delay);
    this.delayMs = opts.delayMs ?? 5;
    this.rand = mulberry32(opts.seed ?? 1);
  }

  /** Decide the fate of one datagram; may flip a bit of `buf` in place. */
  decide(buf: Uint8Array, len: number): FaultAction {
    if (this.pDrop > 0 && this.rand() < this.pDrop) {
      this.counters.dropped++;
      return FaultAction.Drop;
    }
    if (this.pCorrupt > 0 && this.rand() < this.pCorrupt && len > 0) {
      const bit = Math.floor(this.rand() * len * 8);
      buf[bit >>> 3] ^= 1 << (bit & 7);
      this.counters.corrupted++;
    }
    if (this.pDup > 0 && this.rand() < this.pDup) {
      this.counters.duplicated++;
      return FaultAction.Duplicate;
    }
    if (this.pReorder > 0 && this.rand() < this.pReorder) {
      this.counters.reordered++;
      return FaultAction.Hold;
    }
    if (this.pDelay > 0 && this.rand() < this.pDelay) {
      this.counters.delayed++;
      return FaultAction.Delay;
    }
    return FaultAction.Deliver;
  }

  randomDelay(): number {
    return 1 + Math.floor(this.rand() * this.delayMs);
  }

  /** Parse `IBAL_FAULTS=drop=0.05,duplicate=0.01,seed=7`. */
  static fromEnv(spec: string | undefined): FaultInjector | undefined {
    if (!spec) return undefined;
    const opts: Record<string, number> = {};
    for (const part of spec.split(',')) {
      const [k, v] = part.split('=');
      const n = Number(v);
      if (!k || v === undefined || Number.isNaN(n)) throw new InvalidArgumentError(`IBAL_FAULTS: cannot parse "${part}"`);
      opts[k.trim()] = n;
    }
    return new FaultInjector(opts as FaultOptions);
  }
}
