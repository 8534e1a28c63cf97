import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { QpType, SendFlags, WcFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { PeerProcess, type PeerHello } from './helpers/child.js';
import { close, completions, connectRemote, side, type Side } from './helpers/pair.js';

const SIG = SendFlags.SIGNALED;
let peers: PeerProcess[] = [];
let sides: Side[] = [];
afterEach(() => {
  peers.forEach((p) => p.kill());
  close(...sides);
  peers = [];
  sides = [];
});

async function withPeer(qpType: number, env: Record<string, string> = {}, opts: Parameters<typeof side>[0] = {}) {
  const peer = new PeerProcess({ PEER_QP_TYPE: String(qpType), ...env });
  peers.push(peer);
  const hello = await peer.next<PeerHello>('hello');
  const s = await side({ qpType, size: 64 << 20, cqe: 8192, maxSendWr: 4096, maxRecvWr: 4096, ...opts });
  sides.push(s);
  const psn = 0xfffff8; // start near the wrap on purpose
  connectRemote(s, hello, { qpType, sqPsn: psn, ...opts });
  peer.send({ qpn: s.qp.qpNum, gid: Buffer.from(s.ctx.queryGid(1, 0)).toString('hex'), port: s.ctx.queryPort(1).udpPort, psn, mtu: opts.mtu });
  await peer.next('ready');
  return { peer, hello, s };
}

async function echo(s: Side, qpType: number, sizes: number[]) {
  const hdr = qpType === QpType.UD ? 40 : 0;
  const rbase = 32 << 20;
  for (let i = 0; i < sizes.length; i++) {
    s.qp.postRecv([{ wrId: i, sgList: [{ addr: s.mr.addr + rbase + i * 70_000, length: 70_000, lkey: s.mr.lkey }] }]);
  }
  for (const [i, len] of sizes.entries()) {
    for (let j = 0; j < len; j++) s.mr.buf[i * 70_000 + j] = (j ^ i) & 0xff;
    s.qp.postSend([
      {
        wrId: i,
        opcode: WrOpcode.SEND_WITH_IMM,
        immData: i + 1,
        sendFlags: SIG,
        sgList: [{ addr: s.mr.addr + i * 70_000, length: len, lkey: s.mr.lkey }],
        ud: s.ud,
      },
    ]);
  }
  const wcs = await completions(s, sizes.length * 2, 20_000);
  const recvs = wcs.filter((w) => w.opcode === 128).sort((a, b) => a.immData - b.immData);
  expect(wcs.filter((w) => w.status !== WcStatus.SUCCESS).map((w) => wcStatusName(w.status))).toEqual([]);
  expect(recvs.map((w) => w.byteLen - hdr)).toEqual(sizes);
  for (const w of recvs) {
    const i = w.immData - 1;
    expect(w.wcFlags & WcFlags.WITH_IMM).toBeTruthy();
    const got = s.mr.buf.subarray(rbase + w.wrId * 70_000 + hdr, rbase + w.wrId * 70_000 + hdr + sizes[i]!);
    expect(Buffer.from(got).equals(Buffer.from(s.mr.buf.subarray(i * 70_000, i * 70_000 + sizes[i]!)))).toBe(true);
  }
}

describe('soft HCA between two processes', () => {
  it('RC: SEND/SEND_WITH_IMM echo, RDMA WRITE/WRITE_WITH_IMM, READ, fetch-and-add and compare-and-swap', async () => {
    const { s, hello } = await withPeer(QpType.RC);
    await echo(s, QpType.RC, [0, 1, 100, 4096, 4097, 65_000]);
    for (let j = 0; j < 200_000; j++) s.mr.buf[j] = (j * 13) & 0xff;
    s.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: s.mr.addr, length: 200_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr, rkey: hello.rkey } },
      { wrId: 2, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 300_000, length: 200_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr, rkey: hello.rkey } },
      { wrId: 3, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 600_000, length: 8, lkey: s.mr.lkey }], atomic: { remoteAddr: hello.addr + 8, rkey: hello.rkey, compareAdd: 5n } },
      { wrId: 4, opcode: WrOpcode.RDMA_READ, sendFlags: SIG | SendFlags.FENCE, sgList: [{ addr: s.mr.addr + 600_008, length: 8, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 8, rkey: hello.rkey } },
    ]);
    const w = await completions(s, 3);
    expect(w.map((x) => wcStatusName(x.status))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    expect(Buffer.from(s.mr.buf.subarray(300_000, 500_000)).equals(Buffer.from(s.mr.buf.subarray(0, 200_000)))).toBe(true);
    const view = new DataView(s.mr.buf.buffer);
    // The fetch-and-add returned what the WRITE put there; the fenced READ sees the sum.
    expect(view.getBigUint64(600_000, true)).toBe(view.getBigUint64(8, true));
    expect(view.getBigUint64(600_008, true)).toBe(BigInt.asUintN(64, view.getBigUint64(8, true) + 5n));

    // WRITE_WITH_IMM (it consumes one of the peer's receives) and compare-and-swap, read back.
    for (let j = 0; j < 10_000; j++) s.mr.buf[700_000 + j] = (j * 7 + 1) & 0xff;
    const orig = view.getBigUint64(16, true);
    s.qp.postSend([
      { wrId: 5, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 42, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 700_000, length: 10_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 900_000, rkey: hello.rkey } },
      { wrId: 6, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 800_000, length: 8, lkey: s.mr.lkey }], atomic: { remoteAddr: hello.addr + 16, rkey: hello.rkey, compareAdd: orig, swap: 0x1234n } },
      { wrId: 7, opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 800_008, length: 8, lkey: s.mr.lkey }], atomic: { remoteAddr: hello.addr + 16, rkey: hello.rkey, compareAdd: orig, swap: 0x9999n } },
      { wrId: 8, opcode: WrOpcode.RDMA_READ, sendFlags: SIG | SendFlags.FENCE, sgList: [{ addr: s.mr.addr + 800_016, length: 8, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 16, rkey: hello.rkey } },
      { wrId: 9, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 810_000, length: 10_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 900_000, rkey: hello.rkey } },
    ]);
    const w2 = await completions(s, 5);
    expect(w2.map((x) => [x.wrId, wcStatusName(x.status)])).toEqual([5, 6, 7, 8, 9].map((id) => [id, 'SUCCESS']));
    expect(view.getBigUint64(800_000, true)).toBe(orig);
    // The second swap compared against the old value and so did nothing.
    expect(view.getBigUint64(800_008, true)).toBe(0x1234n);
    expect(view.getBigUint64(800_016, true)).toBe(0x1234n);
    expect(Buffer.from(s.mr.buf.subarray(810_000, 820_000)).equals(Buffer.from(s.mr.buf.subarray(700_000, 710_000)))).toBe(true);
  });

  it('UC: RDMA WRITE and WRITE_WITH_IMM land in the peer (checked by its hash)', async () => {
    const { s, peer, hello } = await withPeer(QpType.UC, { PEER_MR_HASH_LEN: '70000' });
    for (let j = 0; j < 70_000; j++) s.mr.buf[j] = (j * 11 + 3) & 0xff;
    s.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: s.mr.addr, length: 50_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr, rkey: hello.rkey } },
      { wrId: 2, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 7, sendFlags: SIG, sgList: [{ addr: s.mr.addr + 50_000, length: 20_000, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 50_000, rkey: hello.rkey } },
      { wrId: 3, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xd0e, sendFlags: SIG, sgList: [] },
    ]);
    const w = await completions(s, 3);
    expect(w.map((x) => wcStatusName(x.status))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    const report = await peer.next<{ mr: string }>('done');
    expect(report.mr).toBe(createHash('sha256').update(s.mr.buf.subarray(0, 70_000)).digest('hex'));
  });

  it('UC: SEND echo', async () => {
    const { s } = await withPeer(QpType.UC);
    await echo(s, QpType.UC, [0, 1, 100, 4096, 10_000]);
  });

  it('UD: SEND echo with the GRH at the head of the buffer', async () => {
    const { s, hello } = await withPeer(QpType.UD);
    s.ud = { ah: s.pd.createAh({ dgid: Buffer.from(hello.gid, 'hex'), udpPort: hello.port }), remoteQpn: hello.qpn, remoteQkey: 0x11111111 };
    await echo(s, QpType.UD, [0, 1, 100, 4096]);
  });

  it('64 MiB of RC WRITE and SEND under drop, duplication, reordering and corruption arrives exactly once, in order', async () => {
    const faults = { drop: 0.05, duplicate: 0.01, reorder: 0.05, corrupt: 0.001 };
    const mrBytes = 32 << 20;
    const { s, peer, hello } = await withPeer(
      QpType.RC,
      { PEER_MODE: 'sink', PEER_MR_SIZE: String(mrBytes), PEER_RECV_SIZE: String(65536), PEER_RECV_COUNT: '1024', IBAL_FAULTS: 'drop=0.05,duplicate=0.01,reorder=0.05,corrupt=0.001,seed=42' },
      // 134 ms per attempt, 8 attempts: a peer descheduled for a second on a
      // loaded 2-core box must not count as a dead peer. Losses are mostly
      // repaired by NAKs, so the long timer rarely runs.
      { timeout: 15, retryCnt: 7 },
    );
    s.dev.setFaults({ ...faults, seed: 7 });
    // Deterministic pseudo-random source data.
    const src = s.mr.buf;
    let x = 0x12345678;
    for (let i = 0; i < 64 << 20; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      src[i] = x & 0xff;
      src[i + 1] = (x >>> 8) & 0xff;
      src[i + 2] = (x >>> 16) & 0xff;
      src[i + 3] = (x >>> 24) & 0xff;
    }
    // 32 MiB of 1 MiB RDMA WRITEs, then 32 MiB of 64 KiB SENDs, pipelined 64 deep.
    const wrs: Parameters<typeof s.qp.postSend>[0][number][] = [];
    for (let off = 0; off < mrBytes; off += 1 << 20) {
      wrs.push({ wrId: wrs.length, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: s.mr.addr + off, length: 1 << 20, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + off, rkey: hello.rkey } });
    }
    for (let off = 0; off < 32 << 20; off += 65536) {
      wrs.push({ wrId: wrs.length, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: s.mr.addr + mrBytes + off, length: 65536, lkey: s.mr.lkey }] });
    }
    wrs.push({ wrId: wrs.length, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xd0e, sendFlags: SIG, sgList: [] });
    let posted = 0;
    let done = 0;
    const deadline = Date.now() + 240_000;
    while (done < wrs.length) {
      while (posted < wrs.length && posted - done < 64) s.qp.postSend([wrs[posted++]!]);
      const w = await completions(s, 1, Math.max(1, deadline - Date.now()));
      expect(wcStatusName(w[0]!.status)).toBe('SUCCESS');
      expect(w[0]!.wrId).toBe(done);
      done++;
    }
    const report = await peer.next<{ stream: string; mr: string; streamBytes: number; counters: Record<string, number> }>('done', 60_000);
    expect(report.streamBytes).toBe(32 << 20);
    expect(report.mr).toBe(createHash('sha256').update(src.subarray(0, mrBytes)).digest('hex'));
    expect(report.stream).toBe(createHash('sha256').update(src.subarray(mrBytes, mrBytes + (32 << 20))).digest('hex'));
    // The faults really happened, and the transport recovered from them.
    expect(report.counters.rxBadIcrc).toBeGreaterThan(0);
    expect(report.counters.rxDuplicate + report.counters.rxOutOfSequence).toBeGreaterThan(0);
    expect(s.dev.counters.txRetransmits).toBeGreaterThan(0);
  }, 300_000);
});
