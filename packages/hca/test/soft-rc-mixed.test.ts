import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Access, Mtu, SendFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import type { HcaMr } from '../src/provider.js';
import { vmCounters } from '../src/soft/vm-path.js';
import { sysStatus } from '../src/sys/status.js';
import { PeerProcess, type PeerHello } from './helpers/child.js';
import { close, completions, connectRemote, pair, side, type Side } from './helpers/pair.js';
import { LOCAL_BYTES, MODEL_BYTES, MiB, RcMix, type Batch } from './helpers/rc-mix.js';

// Random mixes of everything an RC QP does (helpers/rc-mix.ts), checked
// against a model of the responder's memory: SENDs (inline or not, signaled
// or not), WRITEs and READs of every size (so each goes whichever way its
// size and memory send it: packets, the same-host ring, by reference, direct
// READ), atomics, and READs of memory the responder may not write. What RC
// promises is checked: completions in order and successful, a READ sees
// every WRITE posted before it, each atomic runs once in order, SENDs
// arrive whole and in order, and in the end the responder's memory is what
// the model says. The suite runs over UDP and over the shared-memory path
// (vitest projects); cases vary the memory (provider regions, heap) and the
// MTU, two add loss, duplication and reordering, and two put the responder in
// another process, where it runs at the same time as the requester.

const RECV_AT = 3 * MiB + 512 * 1024;
const RECV_SIZE = 4096;
const RECVS = 128;

let live: Side[] = [];
let peers: PeerProcess[] = [];
afterEach(() => {
  peers.forEach((p) => p.kill());
  peers = [];
  close(...live);
  live = [];
});

/** Posts a batch and checks what the requester sees: its completions, in order and successful, and what its READs and atomics returned. */
async function postAndCheck(s: Side, mix: RcMix, batch: Batch, where: string): Promise<void> {
  s.qp.postSend(batch.wrs);
  const got = await completions(s, batch.signaled.length, 30_000);
  expect(got.map((w) => [w.wrId, wcStatusName(w.status)]), where).toEqual(batch.signaled.map((id) => [id, 'SUCCESS']));
  expect(mix.check(batch), where).toBeUndefined();
}

/** Runs `batches` random batches between two devices of this process; returns what went by reference and direct, and the retransmissions. */
async function run(seed: number, batches: number, opts: Parameters<typeof pair>[0] = {}) {
  const [a, b] = await pair({ size: 4 * MiB, providerMemory: true, maxSendWr: 512, ...opts });
  live.push(a, b);
  const vm0 = { ...vmCounters };
  const ro: HcaMr = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.REMOTE_READ);
  for (let i = 0; i < ro.buf.length; i++) ro.buf[i] = (i * 131 + seed) & 0xff;
  for (let i = 0; i < MODEL_BYTES; i++) b.mr.buf[i] = (i * 17 + (i >>> 9) + seed) & 0xff;
  const mix = new RcMix(seed, { addr: a.mr.addr, key: a.mr.lkey, buf: a.mr.buf }, { addr: b.mr.addr, key: b.mr.rkey }, b.mr.buf, { addr: ro.addr, key: ro.rkey, buf: ro.buf });

  let recvSeq = 0;
  const postRecvs = (n: number) => {
    for (let i = 0; i < n; i++, recvSeq++) {
      const at = RECV_AT + (recvSeq % RECVS) * RECV_SIZE;
      b.qp.postRecv([{ wrId: recvSeq, sgList: [{ addr: b.mr.addr + at, length: RECV_SIZE, lkey: b.mr.lkey }] }]);
    }
  };
  postRecvs(RECVS);
  let recvDone = 0;
  let ops = 0;
  for (let i = 0; i < batches; i++) {
    const batch = mix.batch(recvSeq - recvDone);
    if (batch.wrs.length === 0) continue;
    ops += batch.wrs.length;
    const where = `seed ${seed} batch ${i}`;
    await postAndCheck(a, mix, batch, where);
    if (batch.sends.length > 0) {
      const rx = await completions(b, batch.sends.length, 30_000);
      batch.sends.forEach((s, k) => {
        const w = rx[k]!;
        expect([w.status, w.wrId, w.byteLen], `${where}: SEND ${k}`).toEqual([WcStatus.SUCCESS, recvDone, s.len]);
        const at = RECV_AT + (recvDone % RECVS) * RECV_SIZE;
        expect(Buffer.from(b.mr.buf.subarray(at, at + s.len)).equals(Buffer.from(a.mr.buf.subarray(s.from, s.from + s.len))), `${where}: SEND ${k} bytes`).toBe(true);
        recvDone++;
      });
      postRecvs(batch.sends.length);
    }
  }
  expect(ops).toBeGreaterThan(batches * 2);
  expect(Buffer.from(b.mr.buf.subarray(0, MODEL_BYTES)).equals(Buffer.from(mix.model))).toBe(true);
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

  // The responder's process (test/fixtures/peer.mjs, sink mode) hashes the SENDs it receives and, at the
  // end, its MR; its JavaScript runs alongside ours, so its responder executes while we post and READ.
  it.each([
    ['a shared region', '1', 9],
    ['the heap', '0', 10],
  ])('with the responder in another process, its memory in %s (seed %i)', async (_, provider, seed) => {
    const peer = new PeerProcess({ PEER_QP_TYPE: '2', PEER_MODE: 'sink', PEER_MR_SIZE: String(4 * MiB), PEER_MR_PROVIDER: provider, PEER_MR_HASH_LEN: String(MODEL_BYTES), PEER_RECV_SIZE: '4096', PEER_RECV_COUNT: '256' });
    peers.push(peer);
    const hello = await peer.next<PeerHello>('hello');
    const opts = { size: LOCAL_BYTES, providerMemory: true, maxSendWr: 512 };
    const s = await side(opts);
    live.push(s);
    connectRemote(s, hello, { ...opts, sqPsn: 0x500 });
    peer.send({ qpn: s.qp.qpNum, gid: Buffer.from(s.ctx.queryGid(1, 0)).toString('hex'), port: s.ctx.queryPort(1).udpPort, psn: 0x500 });
    await peer.next('ready');
    const vm0 = { ...vmCounters };
    // The peer's MR starts zeroed.
    const mix = new RcMix(seed, { addr: s.mr.addr, key: s.mr.lkey, buf: s.mr.buf }, { addr: hello.addr, key: hello.rkey }, new Uint8Array(MODEL_BYTES));
    const stream = createHash('sha256');
    let streamBytes = 0;
    for (let i = 0; i < 60; i++) {
      // The peer reposts each receive as it takes it; a few SENDs a batch never outrun its 256.
      const batch = mix.batch(4);
      if (batch.wrs.length === 0) continue;
      await postAndCheck(s, mix, batch, `seed ${seed} batch ${i}`);
      for (const x of batch.sends) {
        stream.update(s.mr.buf.subarray(x.from, x.from + x.len));
        streamBytes += x.len;
      }
    }
    s.qp.postSend([{ wrId: 9999, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xd0e, sendFlags: SendFlags.SIGNALED, sgList: [] }]);
    expect(streamBytes).toBeGreaterThan(0);
    const done = await peer.next<{ stream: string; streamBytes: number; mr: string }>('done');
    expect({ stream: done.stream, streamBytes: done.streamBytes }).toEqual({ stream: stream.digest('hex'), streamBytes });
    expect(done.mr).toBe(createHash('sha256').update(mix.model).digest('hex'));
    if (shmPaths) expect(vmCounters.direct - vm0.direct).toBeGreaterThan(0);
  });
});
