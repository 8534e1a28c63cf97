import { afterEach, describe, expect, it } from 'vitest';
import { Access, Mtu, SendFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import type { HcaMr, SendWr } from '../src/provider.js';
import { vmCounters } from '../src/soft/vm-path.js';
import { sysStatus } from '../src/sys/status.js';
import { close, completions, pair, type Side } from './helpers/pair.js';

// Random mixes of everything an RC QP does, checked against a model of the
// responder's memory: SENDs (inline or not, signaled or not), WRITEs and
// READs of every size (so each goes whichever way its size and memory send
// it: packets, the same-host ring, by reference, direct READ), atomics, and
// READs of memory the responder may not write. What RC promises is checked:
// completions in order and successful, a READ sees every WRITE posted
// before it, each atomic runs once in order, SENDs arrive whole and in
// order, and in the end the responder's memory is what the model says.
// The suite runs over UDP and over the shared-memory path (vitest projects);
// cases vary the memory (provider regions, heap) and the MTU, and two add
// loss, duplication and reordering.

const MiB = 1 << 20;
const KiB = 1 << 10;
/** Responder memory: 12 slots of 256 KiB that WRITEs and READs use, then atomic counters, then receive buffers. */
const SLOT = 256 * KiB;
const SLOTS = 12;
const COUNTERS = SLOTS * SLOT;
const COUNTER_COUNT = 64;
const RECV_AT = 3 * MiB + 512 * KiB;
const RECV_SIZE = 4 * KiB;
const RECVS = 128;
/** Requester memory: WRITE and SEND sources below 1 MiB (never changed), READ and atomic results above. */
const SRC_BYTES = MiB;
const DEST_AT = MiB;
const DEST_BYTES = 3 * MiB;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A length that lands on every path: tiny, around an MTU, around the 64 KiB by-reference/direct size, large. */
function pickLength(r: () => number, max: number): number {
  const kinds = [1 + Math.floor(r() * 64), 4096 + Math.floor(r() * 9) - 4, 64 * KiB + Math.floor(r() * 17) - 8, Math.floor(r() * max)];
  return Math.max(1, Math.min(max, kinds[Math.floor(r() * kinds.length)]!));
}

interface Expect {
  kind: 'read' | 'atomic';
  at: number;
  bytes: Uint8Array;
}

let live: Side[] = [];
afterEach(() => {
  close(...live);
  live = [];
});

/** Runs `batches` random batches; returns what went by reference and direct, and the retransmissions. */
async function run(seed: number, batches: number, opts: Parameters<typeof pair>[0] = {}) {
  const r = rng(seed);
  const [a, b] = await pair({ size: 4 * MiB, providerMemory: true, maxSendWr: 512, ...opts });
  live.push(a, b);
  const vm0 = { ...vmCounters };
  const ro: HcaMr = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.REMOTE_READ);
  for (let i = 0; i < a.mr.buf.length; i++) a.mr.buf[i] = Math.floor(r() * 256);
  for (let i = 0; i < b.mr.buf.length; i++) b.mr.buf[i] = Math.floor(r() * 256);
  for (let i = 0; i < ro.buf.length; i++) ro.buf[i] = Math.floor(r() * 256);
  b.mr.buf.fill(0, COUNTERS, COUNTERS + 8 * COUNTER_COUNT);
  // What the responder's memory must hold, kept in step with every request in posting order.
  const model = Uint8Array.from(b.mr.buf);
  const modelView = new DataView(model.buffer);
  const src = a.mr.buf;

  let recvSeq = 0;
  const postRecvs = (n: number) => {
    for (let i = 0; i < n; i++, recvSeq++) {
      const at = RECV_AT + (recvSeq % RECVS) * RECV_SIZE;
      b.qp.postRecv([{ wrId: recvSeq, sgList: [{ addr: b.mr.addr + at, length: RECV_SIZE, lkey: b.mr.lkey }] }]);
    }
  };
  postRecvs(RECVS);
  let recvDone = 0;
  let wrId = 0;
  let ops = 0;

  for (let batch = 0; batch < batches; batch++) {
    const wrs: SendWr[] = [];
    const expects: Expect[] = [];
    const sends: { len: number; from: number }[] = [];
    const readSlots = new Set<number>();
    let dest = DEST_AT;
    const n = 1 + Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      const pick = r();
      const signaled = k === n - 1 || r() < 0.7;
      const flags = signaled ? SendFlags.SIGNALED : 0;
      if (pick < 0.2) {
        if (sends.length + recvDone >= recvSeq) continue;
        const len = Math.floor(r() * (RECV_SIZE + 1));
        const from = Math.floor(r() * (SRC_BYTES - len));
        const inline = len <= 256 && r() < 0.5;
        wrs.push({ wrId: wrId++, opcode: WrOpcode.SEND, sendFlags: flags | (inline ? SendFlags.INLINE : 0), sgList: len ? [{ addr: a.mr.addr + from, length: len, lkey: a.mr.lkey }] : [] });
        sends.push({ len, from });
      } else if (pick < 0.45) {
        // A WRITE into one slot; never one that a READ earlier in this batch covers (only a fence would order those).
        const slot = Math.floor(r() * SLOTS);
        if (readSlots.has(slot)) continue;
        const len = pickLength(r, SLOT);
        const off = slot * SLOT + Math.floor(r() * (SLOT - len + 1));
        const from = Math.floor(r() * (SRC_BYTES - len));
        wrs.push({ wrId: wrId++, opcode: WrOpcode.RDMA_WRITE, sendFlags: flags, sgList: [{ addr: a.mr.addr + from, length: len, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + off, rkey: b.mr.rkey } });
        model.set(src.subarray(from, from + len), off);
      } else if (pick < 0.7) {
        // A READ of the slots, up to 1.5 MiB across several: it must see the WRITEs before it.
        const len = pickLength(r, Math.min(1.5 * MiB, DEST_AT + DEST_BYTES - dest));
        const off = Math.floor(r() * (SLOTS * SLOT - len + 1));
        for (let s = Math.floor(off / SLOT); s <= Math.floor((off + len - 1) / SLOT); s++) readSlots.add(s);
        wrs.push({ wrId: wrId++, opcode: WrOpcode.RDMA_READ, sendFlags: flags, sgList: [{ addr: a.mr.addr + dest, length: len, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + off, rkey: b.mr.rkey } });
        expects.push({ kind: 'read', at: dest, bytes: model.slice(off, off + len) });
        dest += (len + 7) & ~7;
      } else if (pick < 0.85) {
        // A READ of memory only remote reads may touch (a direct READ may pass what is outstanding).
        const len = pickLength(r, Math.min(MiB, DEST_AT + DEST_BYTES - dest));
        const off = Math.floor(r() * (MiB - len + 1));
        wrs.push({ wrId: wrId++, opcode: WrOpcode.RDMA_READ, sendFlags: flags, sgList: [{ addr: a.mr.addr + dest, length: len, lkey: a.mr.lkey }], rdma: { remoteAddr: ro.addr + off, rkey: ro.rkey } });
        expects.push({ kind: 'read', at: dest, bytes: ro.buf.slice(off, off + len) });
        dest += (len + 7) & ~7;
      } else {
        if (dest + 8 > DEST_AT + DEST_BYTES) continue;
        const at = COUNTERS + 8 * Math.floor(r() * COUNTER_COUNT);
        const old = modelView.getBigUint64(at, true);
        const swap = r() < 0.5;
        const value = BigInt(Math.floor(r() * 1000));
        const compare = r() < 0.5 ? old : old + 1n;
        expects.push({ kind: 'atomic', at: dest, bytes: model.slice(at, at + 8) });
        if (swap) {
          wrs.push({ wrId: wrId++, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: flags, sgList: [{ addr: a.mr.addr + dest, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + at, rkey: b.mr.rkey, compareAdd: compare, swap: value } });
          if (compare === old) modelView.setBigUint64(at, value, true);
        } else {
          wrs.push({ wrId: wrId++, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: flags, sgList: [{ addr: a.mr.addr + dest, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + at, rkey: b.mr.rkey, compareAdd: value } });
          modelView.setBigUint64(at, BigInt.asUintN(64, old + value), true);
        }
        dest += 8;
      }
    }
    if (wrs.length === 0) continue;
    wrs[wrs.length - 1]!.sendFlags = (wrs[wrs.length - 1]!.sendFlags ?? 0) | SendFlags.SIGNALED;
    ops += wrs.length;
    a.qp.postSend(wrs);

    const signaled = wrs.filter((w) => (w.sendFlags ?? 0) & SendFlags.SIGNALED).map((w) => w.wrId);
    const got = await completions(a, signaled.length, 30_000);
    const where = `seed ${seed} batch ${batch}`;
    expect(got.map((w) => [w.wrId, wcStatusName(w.status)]), where).toEqual(signaled.map((id) => [id, 'SUCCESS']));
    for (const e of expects) {
      expect(Buffer.from(a.mr.buf.subarray(e.at, e.at + e.bytes.length)).equals(Buffer.from(e.bytes)), `${where}: ${e.kind} into ${e.at}`).toBe(true);
    }
    if (sends.length > 0) {
      const rx = await completions(b, sends.length, 30_000);
      sends.forEach((s, i) => {
        const w = rx[i]!;
        expect([w.status, w.wrId, w.byteLen], `${where}: SEND ${i}`).toEqual([WcStatus.SUCCESS, recvDone, s.len]);
        const at = RECV_AT + (recvDone % RECVS) * RECV_SIZE;
        expect(Buffer.from(b.mr.buf.subarray(at, at + s.len)).equals(Buffer.from(src.subarray(s.from, s.from + s.len))), `${where}: SEND ${i} bytes`).toBe(true);
        recvDone++;
      });
      postRecvs(sends.length);
    }
  }
  expect(ops).toBeGreaterThan(batches * 2);
  expect(Buffer.from(b.mr.buf.subarray(0, COUNTERS + 8 * COUNTER_COUNT)).equals(Buffer.from(model.subarray(0, COUNTERS + 8 * COUNTER_COUNT)))).toBe(true);
  ro.dereg();
  return {
    direct: vmCounters.direct - vm0.direct,
    byReference: vmCounters.pulls + vmCounters.readPulls + vmCounters.pushes - (vm0.pulls + vm0.readPulls + vm0.pushes),
    retransmitted: a.dev.counters.txRetransmits + b.dev.counters.txRetransmits,
  };
}

// With the shared-memory path on, large WRITEs and READs must have gone by reference and direct, or the paths were not tested.
const sys = sysStatus();
const shmPaths = process.env.IBAL_SOFT_SHM === '1' && sys.shm.on && sys.vm.on && sys.sameHostKey !== undefined;

describe('soft HCA RC: random mixes of every operation against a model of the responder', () => {
  it.each([1, 2, 3, 4])('seed %i', async (seed) => {
    const got = await run(seed, 60);
    if (shmPaths) expect(Math.min(got.direct, got.byReference)).toBeGreaterThan(0);
  });

  it.each([5, 6])('seed %i, heap memory and a 1024-byte MTU', async (seed) => {
    const got = await run(seed, 40, { providerMemory: false, mtu: Mtu.MTU_1024 });
    if (shmPaths) expect(Math.min(got.direct, got.byReference)).toBeGreaterThan(0);
  });

  it.each([7, 8])('seed %i, under loss, duplication and reordering', async (seed) => {
    const faults = { drop: 0.03, duplicate: 0.03, reorder: 0.03, seed };
    const got = await run(seed, 25, { faultsA: faults, faultsB: { ...faults, seed: seed + 100 }, timeout: 8, retryCnt: 7 });
    expect(got.retransmitted).toBeGreaterThan(0);
  });
});
