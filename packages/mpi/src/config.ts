// Protocol thresholds, tunable by environment as Open MPI's MCA parameters
// (btl_vader_eager_limit, btl_openib_eager_limit, ...).

function envInt(name: string, dflt: number, min: number, max: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${name}=${v}: expected an integer in [${min}, ${max}]`);
  return n;
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
  /** Upper bound of the adaptive spin before a blocked wait sleeps on the futex, in ns (MPILITE_SPIN_NS). */
  spinNs: number;
  /** Message size above which collectives switch to bandwidth algorithms (MPILITE_COLL_LARGE). */
  collLarge: number;
  /** Seconds to wait for every rank at the rendezvous (MPILITE_BOOTSTRAP_TIMEOUT). */
  bootstrapTimeoutS: number;
}

export function readConfig(): MpiConfig {
  return {
    shmEagerLimit: envInt('MPILITE_SHM_EAGER_LIMIT', 16384, 0, 1 << 20),
    shmRingBytes: envInt('MPILITE_SHM_RING_BYTES', 1 << 18, 1 << 12, 1 << 26),
    verbsEagerLimit: envInt('MPILITE_VERBS_EAGER_LIMIT', 8192, 0, 1 << 16),
    verbsCredits: envInt('MPILITE_VERBS_CREDITS', 32, 4, 1024),
    transports: (process.env.MPILITE_TRANSPORTS ?? 'shm,verbs').split(',').map((s) => s.trim()).filter(Boolean),
    syncWaitUs: envInt('MPILITE_SYNC_WAIT_US', 20000, 0, 10_000_000),
    spinNs: envInt('MPILITE_SPIN_NS', 50_000, 0, 10_000_000),
    collLarge: envInt('MPILITE_COLL_LARGE', 65536, 0, 1 << 30),
    bootstrapTimeoutS: envInt('MPILITE_BOOTSTRAP_TIMEOUT', 60, 1, 3600),
  };
}
