// The CM's event API called at random with arguments that are often wrong
// (null and undefined options, numbers out of range, strings, closed ids and
// channels), ids in every state: every call works or throws an error with a
// stable code, and every asynchronous failure has one too; nothing throws a
// TypeError from inside. Found: null options to createId, connect, listen,
// resolveAddr, createQp, id.connect and id.accept, and a missing setOption
// argument, threw TypeErrors.
import { describe, expect, it } from 'vitest';
import { addSoftDevice } from '@ibal/verbs';
import { seeded } from '@ibal/tooling/seeded';
import { connect, createEventChannel, createId, listen, parseAddress, type CmId, type EventChannel } from '../src/index.js';

const base = Number(process.env.CM_TEST_SEED ?? Math.floor(Math.random() * 1e6));

async function run(seed: number, iterations: number): Promise<string[]> {
  const r = seeded(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T,>(a: readonly T[]): T => a[int(a.length)]!;
  const dev = addSoftDevice({ name: `cmr_${process.pid}_${seed}`, address: '127.0.0.1', port: 0 });
  const weird = (): any => pick([undefined, null, -1, 0, 1, 65536, 2 ** 32, NaN, Infinity, 1.5, '1', 'x', '127.0.0.1', '::1', '300.1.1.1', {}, [], true, 1n, new Uint8Array(300), { address: '127.0.0.1', port: 1 }, { address: 'nope', port: -1 }]); // eslint-disable-line @typescript-eslint/no-explicit-any
  const ids: CmId[] = [];
  const chans: EventChannel[] = [createEventChannel()];
  const some = <T,>(l: T[]): any => (l.length && r() < 0.85 ? pick(l) : weird()); // eslint-disable-line @typescript-eslint/no-explicit-any
  const opts = () => (r() < 0.5 ? { device: dev.name, cmResponseTimeout: 10, maxCmRetries: 1, timewaitMs: 5 } : weird());
  const calls: (() => unknown)[] = [
    () => ids.push(createId(some(chans), opts())),
    () => chans.push(createEventChannel()),
    () => some(ids).bindAddr?.(r() < 0.5 ? { address: '127.0.0.1', port: 0 } : weird()),
    () => some(ids).resolveAddr?.(r() < 0.5 ? { address: '127.0.0.1', port: int(70000), udpPort: dev.port } : weird(), r() < 0.5 ? { timeoutMs: weird() } : weird()),
    () => some(ids).resolveRoute?.(weird()),
    () => some(ids).listen?.(weird()),
    () => some(ids).connect?.(r() < 0.5 ? { privateData: weird(), retryCount: weird(), rnrRetryCount: weird(), initiatorDepth: weird(), responderResources: weird() } : weird()),
    () => some(ids).accept?.(weird()),
    () => some(ids).reject?.(weird(), weird()),
    () => some(ids).disconnect?.(weird()),
    () => some(ids).createQp?.(weird(), weird()),
    () => some(ids).destroyQp?.(),
    () => some(ids).destroy?.(),
    () => some(ids).setOption?.(weird()),
    () => some(chans).getCmEvent?.({ timeoutMs: 1 }),
    () => some(chans).destroy?.(),
    () => some(chans).ackCmEvent?.(weird()),
    () => {
      const o = r() < 0.5 ? opts() : weird();
      // Options get a bound: librdmacm's default timing waits a minute for an answer that cannot come.
      const a = weird();
      const oo = o === null || o === undefined || typeof o === 'object' ? { ...o, timeoutMs: 200 } : o;
      return connect(a, oo);
    },
    () => listen(r() < 0.5 ? { address: '127.0.0.1', port: 0 } : weird(), opts()),
    () => parseAddress(weird()),
  ];
  const untyped = new Set<string>();
  const note = (k: number | string, e: unknown) => {
    const err = e as Error & { code?: unknown };
    // A method called on a non-object is the caller's own TypeError; only what the library throws counts.
    const fromLibrary = err?.stack?.split('\n')[1]?.includes('/src/') ?? false;
    if (fromLibrary && typeof err.code !== 'string') untyped.add(`call ${k}: ${err.constructor.name}: ${err.message}`);
  };
  const settled: Promise<unknown>[] = [];
  const pendingLabels = new Set<string>();
  // CM_DEBUG=1 names the calls still pending every 5 s (a hang shows which).
  if (process.env.CM_DEBUG) setInterval(() => console.log('pending', [...pendingLabels].join(' ')), 5000).unref();
  for (let i = 0; i < iterations; i++) {
    const k = int(calls.length);
    try {
      const res = calls[k]!() as { then?: unknown; catch?: (f: (e: unknown) => void) => Promise<unknown> } | undefined;
      // A listener or connection that did come up is closed again.
      if (res && typeof res.then === 'function') {
        const label = `call ${k} at ${i}`;
        pendingLabels.add(label);
        settled.push((res as Promise<{ close?: () => Promise<void> }>).then((x) => x?.close?.(), (e: unknown) => note(k, e)).finally(() => pendingLabels.delete(label)));
      }
    } catch (e) {
      note(k, e);
    }
    if (i % 50 === 0) await new Promise((res) => setTimeout(res, 1));
  }
  await Promise.all(settled);
  for (const id of ids) {
    try {
      id.destroyQp();
      id.destroy();
    } catch (e) {
      note('cleanup', e);
    }
  }
  for (const ch of chans) ch.close();
  dev.remove();
  return [...untyped];
}

describe(`CM calls with random, often wrong, arguments (seeds from ${base})`, () => {
  for (const i of [0, 1]) {
    it(`seed ${base + i}: every failure has a code`, async () => {
      expect(await run(base + i, 3000)).toEqual([]);
    }, 60_000);
  }
});
