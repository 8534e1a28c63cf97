// Protocol thresholds, tunable by environment as Open MPI's MCA parameters
// (btl_vader_eager_limit, btl_openib_eager_limit, ...).

import { InvalidArgumentError } from './errors.js';

/** The transports init() knows, by the names MPILITE_TRANSPORTS uses. */
const TRANSPORTS = ['shm', 'verbs'];

function envInt(name: string, dflt: number, min: number, max: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name}=${v}: expected an integer in [${min}, ${max}]`);
  return n;
}

function envPow2(name: string, dflt: number, min: number, max: number): number {
  const n = envInt(name, dflt, min, max);
  if ((n & (n - 1)) !== 0) throw new InvalidArgumentError(`${name}=${n}: expected a power of two`);
  return n;
}

// A misspelt name would otherwise only surface at the first peer that needs
// the transport, after every rank has waited at the rendezvous.
function envTransports(): string[] {
  const v = process.env.MPILITE_TRANSPORTS;
  if (v === undefined || v.trim() === '') return [...TRANSPORTS];
  const names = v.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !TRANSPORTS.includes(n));
  if (unknown.length > 0 || names.length === 0) {
    throw new InvalidArgumentError(`MPILITE_TRANSPORTS=${v}: expected a comma-separated list of ${TRANSPORTS.join(', ')}`);
  }
  return names;
}

/** How windows reach their targets (MPILITE_OSC, as Open MPI's osc component). */
const OSC = ['auto', 'pt2pt'];

function envOsc(): 'auto' | 'pt2pt' {
  const v = process.env.MPILITE_OSC;
  if (v === undefined || v === '') return 'auto';
  if (!OSC.includes(v)) throw new InvalidArgumentError(`MPILITE_OSC=${v}: expected ${OSC.join(' or ')}`);
  return v as 'auto' | 'pt2pt';
}

export interface MpiConfig {
  /** Largest message sent eagerly through a shared-memory ring (MPILITE_SHM_EAGER_LIMIT). */
  shmEagerLimit: number;
  /** Bytes of each shared-memory ring (MPILITE_SHM_RING_BYTES, a power of two). */
  shmRingBytes: number;
  /** Largest message sent eagerly through verbs bounce buffers (MPILITE_VERBS_EAGER_LIMIT). */
  verbsEagerLimit: number;
  /** Receive bounce buffers posted per verbs peer, which is also the credit window (MPILITE_VERBS_CREDITS). */
  verbsCredits: number;
  /** Which transports may be used, in order of preference (MPILITE_TRANSPORTS, e.g. "shm,verbs" or "verbs"). */
  transports: string[];
  /** Microseconds a blocked wait may block the event loop polling shared memory before it yields (MPILITE_SYNC_WAIT_US). */
  syncWaitUs: number;
  /**
   * Upper bound of the adaptive spin before a blocked wait sleeps on the
   * futex, in ns (MPILITE_SPIN_NS). Unset: 50 µs, or 2 µs on a host running
   * more ranks than it has CPUs, where a spinning rank holds the core the
   * rank it waits for needs.
   */
  spinNs: number | undefined;
  /**
   * After that spin, how long a blocked wait hands the CPU to others
   * (sched_yield) between looks before it sleeps, in ns (MPILITE_YIELD_NS).
   * Unset: 1 ms on a host running more ranks than it has CPUs (the rank
   * waited for is then likely queued behind this one), else 0.
   */
  yieldNs: number | undefined;
  /** Message size above which collectives switch to bandwidth algorithms (MPILITE_COLL_LARGE). */
  collLarge: number;
  /** Seconds to wait for every rank at the rendezvous (MPILITE_BOOTSTRAP_TIMEOUT). */
  bootstrapTimeoutS: number;
  /**
   * One-sided paths (MPILITE_OSC): 'auto' puts windows in place, uses
   * process_vm_* and RDMA where they reach; 'pt2pt' sends every operation
   * by message, as Open MPI's osc/pt2pt did.
   */
  osc: 'auto' | 'pt2pt';
}

export function readConfig(): MpiConfig {
  return {
    shmEagerLimit: envInt('MPILITE_SHM_EAGER_LIMIT', 16384, 0, 1 << 20),
    shmRingBytes: envPow2('MPILITE_SHM_RING_BYTES', 1 << 18, 1 << 12, 1 << 26),
    verbsEagerLimit: envInt('MPILITE_VERBS_EAGER_LIMIT', 8192, 0, 1 << 16),
    verbsCredits: envInt('MPILITE_VERBS_CREDITS', 32, 4, 1024),
    transports: envTransports(),
    syncWaitUs: envInt('MPILITE_SYNC_WAIT_US', 20000, 0, 10_000_000),
    spinNs: process.env.MPILITE_SPIN_NS ? envInt('MPILITE_SPIN_NS', 50_000, 0, 10_000_000) : undefined,
    yieldNs: process.env.MPILITE_YIELD_NS ? envInt('MPILITE_YIELD_NS', 0, 0, 1_000_000_000) : undefined,
    collLarge: envInt('MPILITE_COLL_LARGE', 65536, 0, 1 << 30),
    bootstrapTimeoutS: envInt('MPILITE_BOOTSTRAP_TIMEOUT', 60, 1, 3600),
    osc: envOsc(),
  };
}
