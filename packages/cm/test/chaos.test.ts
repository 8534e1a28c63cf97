// Many connections at once between two soft devices, each side doing
// something drawn at random, as real programs do when they crash, give up or
// change their minds: the client connects and uses the connection, or
// destroys its id while the REQ is out, or right after ESTABLISHED, or
// disconnects at once; the server accepts, rejects with private data,
// leaves the request unanswered and destroys it later, or accepts and then
// disconnects or destroys. Checked: every client's connect ends with the
// event the server's choice implies (or a timeout when loss is injected),
// events follow librdmacm's order on both sides (DISCONNECTED once, then
// TIMEWAIT_EXIT), data moves on accepted connections, and once every id is
// gone the CM holds nothing: no connection, timer or id.
import { afterEach, describe, expect, it } from 'vitest';
import { seeded } from '@ibal/tooling/seeded';
import { Access, SendFlags, WrOpcode, addSoftDevice, regMr, type FaultOptions, type MR } from '@ibal/verbs';
import { CmEventType, RejReason, cmResources, createEventChannel, createId, type CmEvent, type CmId } from '../src/index.js';
import { until } from './helpers.js';

const TIMING = { cmResponseTimeout: 14, maxCmRetries: 4, timewaitMs: 20, mraServiceTimeout: 14 } as const;
const CLIENT_ACTS = ['use', 'use', 'destroyEarly', 'destroyAfterEstablished', 'disconnectAtOnce'] as const;
const SERVER_ACTS = ['accept', 'accept', 'reject', 'ignore', 'acceptThenDisconnect', 'acceptThenDestroy'] as const;
type ClientAct = (typeof CLIENT_ACTS)[number];
type ServerAct = (typeof SERVER_ACTS)[number];

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

let n = 0;
function device(faults?: FaultOptions) {
  const d = addSoftDevice({ name: `chaos_${process.pid}_${n++}`, address: '127.0.0.1', port: 0, faults });
  cleanup.push(() => d.remove());
  return d;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const idx = (pd: Uint8Array | undefined) => (pd && pd.length >= 4 ? new DataView(pd.buffer, pd.byteOffset).getUint32(0) : -1);
const tag = (i: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i);
  return b;
};

interface Plan {
  client: ClientAct;
  server: ServerAct;
  delayMs: number;
}

/** The server: one channel for the listener and every id it accepts, as a librdmacm server loop has. */
function serve(lid: CmId, plans: Plan[], problems: string[]) {
  const ch = lid.channel;
  const events = new Map<CmId, string[]>();
  const mrs = new Map<CmId, MR>();
  const gone = new Set<CmId>();
  const finish = (id: CmId) => {
    if (gone.has(id)) return;
    gone.add(id);
    mrs.get(id)?.dereg();
    id.destroyQp();
    id.destroy();
  };
  const loop = (async () => {
    for await (const ev of ch) {
      const id = ev.id;
      if (ev.event === CmEventType.CONNECT_REQUEST) {
        const i = idx(ev.conn?.privateData);
        const plan = plans[i];
        if (!plan) {
          problems.push(`server: a request with no plan (${i})`);
          id.reject();
          id.destroy();
          continue;
        }
        events.set(id, [`req ${i}`]);
        if (plan.server === 'reject') {
          id.reject(tag(i), RejReason.CONSUMER_DEFINED);
          id.destroy();
          continue;
        }
        if (plan.server === 'ignore') {
          void sleep(plan.delayMs).then(() => finish(id));
          continue;
        }
        id.createQp(undefined, { cap: { maxSendWr: 2, maxRecvWr: 2 } });
        const mr = regMr(id.pd!, 64, Access.LOCAL_WRITE);
        mrs.set(id, mr);
        id.qp!.postRecv({ wrId: i, sgList: [mr.sge(0, 64)] });
        id.accept({ privateData: tag(i) });
        if (plan.server === 'acceptThenDestroy') void sleep(plan.delayMs).then(() => finish(id));
        continue;
      }
      if (gone.has(id)) {
        problems.push(`server: ${ev.eventName} for an id already destroyed`);
        continue;
      }
      const seen = events.get(id);
      if (!seen) {
        problems.push(`server: ${ev.eventName} for an id it never saw`);
        continue;
      }
      seen.push(ev.eventName);
      const i = Number(seen[0]!.slice(4));
      switch (ev.event) {
        case CmEventType.ESTABLISHED:
          if (plans[i]!.server === 'acceptThenDisconnect') id.disconnect();
          break;
        case CmEventType.DISCONNECTED:
          if (seen.filter((e) => e === 'DISCONNECTED').length > 1) problems.push(`server ${i}: DISCONNECTED twice`);
          // The peer's DREQ waits for this side's answer, as with librdmacm:
          // rdma_disconnect (DREP, then TIMEWAIT_EXIT), or rdma_destroy_id,
          // which answers it too.
          if (plans[i]!.delayMs % 2 === 0) finish(id);
          else if (!seen.includes('ESTABLISHED') || plans[i]!.server !== 'acceptThenDisconnect') id.disconnect();
          break;
        case CmEventType.TIMEWAIT_EXIT:
          if (!seen.includes('DISCONNECTED')) problems.push(`server ${i}: TIMEWAIT_EXIT before DISCONNECTED (${seen})`);
          finish(id);
          break;
        default:
          // REJECTED (the client went away before the RTU), CONNECT_ERROR, UNREACHABLE.
          finish(id);
      }
    }
  })();
  return { loop, events, finishAll: () => [...events.keys()].forEach(finish) };
}

async function client(i: number, plan: Plan, dev: string, addr: { address: string; port: number; udpPort: number }, lossy: boolean, problems: string[]): Promise<string> {
  const ch = createEventChannel();
  const id = createId(ch, { ...TIMING, device: dev });
  const say = (what: string) => problems.push(`client ${i} (${plan.client} / ${plan.server}): ${what}`);
  let mr: MR | undefined;
  const end = () => {
    mr?.dereg();
    id.destroyQp();
    id.destroy();
    ch.destroy();
  };
  const next = async (what: string): Promise<CmEvent | undefined> => {
    try {
      return await ch.getCmEvent({ timeoutMs: 8000 });
    } catch {
      say(`no event while waiting for ${what}`);
      return undefined;
    }
  };
  try {
    id.resolveAddr(addr);
    if ((await next('ADDR_RESOLVED'))?.event !== CmEventType.ADDR_RESOLVED) return 'resolve failed';
    id.resolveRoute();
    if ((await next('ROUTE_RESOLVED'))?.event !== CmEventType.ROUTE_RESOLVED) return 'route failed';
    id.createQp(undefined, { cap: { maxSendWr: 2, maxRecvWr: 2 } });
    mr = regMr(id.pd!, 64, Access.LOCAL_WRITE);
    id.connect({ privateData: tag(i), retryCount: 7 });
    if (plan.client === 'destroyEarly') {
      await sleep(plan.delayMs % 5);
      return 'destroyed early';
    }
    const ev = await next('the answer');
    if (!ev) return 'no answer';
    const accepted = plan.server !== 'reject' && plan.server !== 'ignore';
    if (ev.event === CmEventType.UNREACHABLE || (ev.event === CmEventType.REJECTED && ev.status === RejReason.TIMEOUT)) {
      if (accepted && !lossy && plan.server === 'accept') say(`${ev.eventName} ${ev.status} though the server accepted`);
      if (plan.server === 'reject' && !lossy) say(`${ev.eventName} though the server rejected`);
      return 'timed out';
    }
    if (ev.event === CmEventType.REJECTED) {
      if (plan.server === 'reject') {
        if (ev.status !== RejReason.CONSUMER_DEFINED || idx(ev.conn?.privateData) !== i) say(`REJ ${ev.status} with private data ${idx(ev.conn?.privateData)}`);
      } else if (plan.server === 'accept' && !lossy) say(`REJECTED ${ev.status} though the server accepted`);
      return 'rejected';
    }
    if (ev.event !== CmEventType.ESTABLISHED) {
      if (!lossy || plan.server === 'reject') say(`connect ended with ${ev.eventName}`);
      return ev.eventName;
    }
    if (!accepted) say(`ESTABLISHED though the server chose ${plan.server}`);
    if (idx(ev.conn?.privateData) !== i) say(`REP private data ${idx(ev.conn?.privateData)}`);
    if (plan.client === 'destroyAfterEstablished') return 'established, destroyed';
    if (plan.client === 'use' && plan.server === 'accept') {
      mr.buf.set(tag(i));
      id.qp!.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [mr.sge(0, 4)] });
      const wc = await id.sendCq!.next({ signal: AbortSignal.timeout(8000) }).catch(() => undefined);
      if (!wc) say('SEND never completed');
      else if (wc.status !== 0 && !lossy) say(`SEND ended with status ${wc.status}`);
      await sleep(plan.delayMs);
    }
    id.disconnect();
    const seen: string[] = [];
    for (;;) {
      const e = await next(seen.includes('DISCONNECTED') ? 'TIMEWAIT_EXIT' : 'DISCONNECTED');
      if (!e) return 'teardown stuck';
      seen.push(e.eventName);
      if (e.event === CmEventType.TIMEWAIT_EXIT) break;
      if (e.event !== CmEventType.DISCONNECTED || seen.length > 1) say(`teardown events ${seen}`);
    }
    if (seen[0] !== 'DISCONNECTED') say(`teardown events ${seen}`);
    return 'closed';
  } finally {
    end();
  }
}

async function chaos(seed: number, count: number, faults?: FaultOptions): Promise<Record<string, number>> {
  const rand = seeded(seed);
  const pick = <T,>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const plans: Plan[] = Array.from({ length: count }, () => ({ client: pick(CLIENT_ACTS), server: pick(SERVER_ACTS), delayMs: Math.floor(rand() * 40) }));
  const a = device(faults && { ...faults, seed: seed * 2 + 1 });
  const b = device(faults && { ...faults, seed: seed * 2 + 2 });
  const sch = createEventChannel();
  const lid = createId(sch, { ...TIMING, device: a.name });
  await lid.bindAddr({ address: '127.0.0.1', port: 0 });
  lid.listen(count);
  const problems: string[] = [];
  const server = serve(lid, plans, problems);
  const outcomes = await Promise.all(plans.map((p, i) => sleep(Math.floor(rand() * 30)).then(() => client(i, p, b.name, lid.localAddr! as never, !!faults, problems))));
  // The server's ids end by themselves (TIMEWAIT_EXIT, or REJ/timeouts for
  // connections the client dropped); allow for the retries.
  await until(() => cmResources().connections === 0, 20_000, `every connection gone (${JSON.stringify(cmResources())})`).catch((e: Error) => {
    problems.push(e.message);
    // Name the server's ids still held: their plan, events and CM state.
    const held = [...server.events].filter(([id]) => !id.destroyed);
    for (const [id, seen] of held.slice(0, 10)) problems.push(`held: ${JSON.stringify(plans[Number(seen[0]!.slice(4))])} ${seen.join(',')} ${id.describe()}`);
  });
  server.finishAll();
  lid.destroy();
  sch.close();
  await server.loop;
  await until(() => cmResources().timers === 0 && cmResources().ids === 0, 10_000, 'timers and ids gone').catch((e: Error) => problems.push(`${e.message}: ${JSON.stringify(cmResources())}`));
  expect(problems).toEqual([]);
  expect(cmResources()).toMatchObject({ ids: 0, timers: 0, connections: 0, listeners: 0 });
  const tally: Record<string, number> = {};
  for (const o of outcomes) tally[o] = (tally[o] ?? 0) + 1;
  console.log(`seed ${seed}, ${count} connections${faults ? ` under ${JSON.stringify(faults)}` : ''}: ${JSON.stringify(tally)}; dropped ${a.faults?.counters.dropped ?? 0} + ${b.faults?.counters.dropped ?? 0}`);
  return tally;
}

const base = Number(process.env.CM_TEST_SEED ?? Math.floor(Math.random() * 1e6));
// Longer hunts: CM_CHAOS_COUNT connections per run, CM_CHAOS_DROP loss.
const COUNT = Number(process.env.CM_CHAOS_COUNT ?? 120);
const DROP = Number(process.env.CM_CHAOS_DROP ?? 0.05);

describe(`CM under random client and server behaviour (seeds from ${base})`, () => {
  it(`${COUNT} connections, no loss`, async () => {
    const tally = await chaos(base, COUNT);
    expect(tally['closed'] ?? 0).toBeGreaterThan(0);
    expect(tally['rejected'] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(tally).every((k) => ['closed', 'rejected', 'timed out', 'destroyed early', 'established, destroyed'].includes(k))).toBe(true);
  }, 60_000);

  it(`${COUNT} connections, ${DROP * 100}% loss, duplication and reordering on both devices`, async () => {
    const tally = await chaos(base + 1, COUNT, { drop: DROP, duplicate: 0.02, reorder: 0.02 });
    expect(tally['closed'] ?? 0).toBeGreaterThan(0);
  }, 90_000);
});
