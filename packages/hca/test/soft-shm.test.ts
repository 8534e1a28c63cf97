import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { QpType, SendFlags, WcOpcode, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { newWorkCompletion } from '../src/provider.js';
import type { SoftQp } from '../src/soft/qp.js';
import { sysStatus } from '../src/sys/status.js';
import { POLL_MAX_MS, POLL_MIN_MS, POLL_OVERSUBSCRIBED_MS, nextPollMs, pollCeilingMs } from '../src/soft/shm-link.js';
import { PeerProcess, type PeerHello } from './helpers/child.js';
import { close, completions, connectRemote, pair, side, type Side } from './helpers/pair.js';
import { useShmMode } from './helpers/shm-mode.js';

// The same-host fast path itself; the rest of the soft suite runs over it
// too in the `shm` vitest project (IBAL_SOFT_SHM=1).
const sys = sysStatus();
const skip = !(sys.shm.on && sys.futex.on && sys.sameHostKey) && process.env.IBAL_NATIVE_REQUIRED !== '1';
const SIG = SendFlags.SIGNALED;
let sides: Side[] = [];
let peers: PeerProcess[] = [];
useShmMode();
afterEach(() => {
  peers.forEach((p) => p.kill());
  close(...sides);
  sides = [];
  peers = [];
});

const shmFiles = (pid: number) => fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`ibal-${pid}-`));

describe.skipIf(skip)('soft HCA same-host fast path', () => {
  it('polling an empty CQ drives the rings: a ping-pong completes without yielding to the event loop', async () => {
    const [a, b] = await pair({});
    sides.push(a, b);
    // One exchange by the event loop finishes the negotiation.
    b.qp.postRecv([{ wrId: 0, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 0, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
    await completions(a, 1, 10_000);
    await completions(b, 1, 10_000);
    expect(a.dev.wire.shm!.usesShm((a.qp as SoftQp).peer!)).toBe(true);
    const wcs = Array.from({ length: 4 }, newWorkCompletion);
    // Spins on poll with no await in between: only manual progress can move packets.
    const spin = (s: Side, want: number): number[] => {
      const ops: number[] = [];
      for (let i = 0; i < 1_000_000 && ops.length < want; i++) {
        const n = s.cq.poll(4, wcs);
        for (let k = 0; k < n; k++) {
          expect(wcStatusName(wcs[k]!.status)).toBe('SUCCESS');
          ops.push(wcs[k]!.opcode);
        }
      }
      return ops;
    };
    const rounds = 200;
    for (let r = 1; r <= rounds; r++) {
      a.mr.buf[0] = r & 0xff;
      b.qp.postRecv([{ wrId: r, sgList: [{ addr: b.mr.addr + 64, length: 64, lkey: b.mr.lkey }] }]);
      a.qp.postSend([{ wrId: r, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
      expect(spin(b, 1)).toEqual([WcOpcode.RECV]);
      expect(b.mr.buf[64]).toBe(r & 0xff);
      // b's ACK went out when its drain ended, so a's poll completes the SEND.
      expect(spin(a, 1)).toEqual([WcOpcode.SEND]);
    }
    expect(a.ctx.progress!()).toBe(0); // nothing left over
  });

  it('carries every packet of a local RC connection through shared memory', async () => {
    const [a, b] = await pair({});
    sides.push(a, b);
    const n = 64;
    for (let i = 0; i < n; i++) b.qp.postRecv([{ wrId: i, sgList: [{ addr: b.mr.addr + i * 8192, length: 8192, lkey: b.mr.lkey }] }]);
    for (let i = 0; i < a.mr.buf.length; i++) a.mr.buf[i] = (i * 7) & 0xff;
    for (let i = 0; i < n; i++) {
      a.qp.postSend([{ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr + i * 8192, length: 8000, lkey: a.mr.lkey }] }]);
    }
    a.qp.postSend([
      { wrId: 1000, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 300_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 600_000, rkey: b.mr.rkey } },
      { wrId: 1001, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 700_000, length: 100_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 600_000, rkey: b.mr.rkey } },
    ]);
    const wa = await completions(a, n + 2, 20_000);
    const wb = await completions(b, n, 20_000);
    expect([...wa, ...wb].filter((w) => w.status !== WcStatus.SUCCESS).map((w) => wcStatusName(w.status))).toEqual([]);
    for (let i = 0; i < n; i++) expect(Buffer.compare(b.mr.buf.subarray(i * 8192, i * 8192 + 8000), a.mr.buf.subarray(i * 8192, i * 8192 + 8000))).toBe(0);
    expect(Buffer.compare(b.mr.buf.subarray(600_000, 900_000), a.mr.buf.subarray(0, 300_000))).toBe(0);
    expect(Buffer.compare(a.mr.buf.subarray(700_000, 800_000), a.mr.buf.subarray(0, 100_000))).toBe(0);
    for (const s of [a, b]) {
      const w = s.dev.wire;
      expect(w.shm!.counters.txShm).toBe(w.counters.txPackets);
      expect(w.shm!.counters.rxShm).toBe(w.counters.rxPackets);
    }
    // Each 8000-byte SEND is two packets at MTU 4096; the WRITE and READ add
    // more, as packets or (when the single-copy path is reachable) as one
    // by-reference request each.
    expect(a.dev.wire.counters.txPackets).toBeGreaterThanOrEqual(2 * n + 1);
    // Both sides mapped both rings, so their names are gone already.
    expect(shmFiles(process.pid)).toEqual([]);
  });

  it('a peer process killed mid-transfer gives RETRY_EXC_ERR, not a hang, and leaves no segment', async () => {
    const peer = new PeerProcess({ PEER_QP_TYPE: String(QpType.RC), IBAL_SOFT_SHM: '1', PEER_MR_SIZE: String(16 << 20) });
    peers.push(peer);
    const hello = await peer.next<PeerHello>('hello');
    const s = await side({ qpType: QpType.RC, size: 16 << 20, maxSendWr: 4096 });
    sides.push(s);
    connectRemote(s, hello, { qpType: QpType.RC, sqPsn: 0, timeout: 14, retryCnt: 3 });
    peer.send({ qpn: s.qp.qpNum, gid: Buffer.from(s.ctx.queryGid(1, 0)).toString('hex'), port: s.ctx.queryPort(1).udpPort, psn: 0 });
    await peer.next('ready');
    const write = (i: number) => ({
      wrId: i,
      opcode: WrOpcode.RDMA_WRITE,
      sendFlags: SIG,
      sgList: [{ addr: s.mr.addr, length: 1 << 20, lkey: s.mr.lkey }],
      rdma: { remoteAddr: hello.addr, rkey: hello.rkey },
    });
    s.qp.postSend([write(0)]);
    const first = await completions(s, 1, 20_000);
    expect(wcStatusName(first[0]!.status)).toBe('SUCCESS');
    // Through the ring: as 256 packets, or as one by-reference WRITE once the link is up.
    expect(s.dev.wire.shm!.counters.txShm).toBeGreaterThan(0);
    expect(s.dev.wire.shm!.counters.txShm).toBe(s.dev.wire.counters.txPackets);
    for (let i = 1; i <= 8; i++) s.qp.postSend([write(i)]);
    peer.kill();
    const rest = await completions(s, 8, 30_000);
    const names = rest.map((w) => wcStatusName(w.status));
    expect(names).toContain('RETRY_EXC_ERR');
    expect(names.every((n) => n === 'SUCCESS' || n === 'RETRY_EXC_ERR' || n === 'WR_FLUSH_ERR')).toBe(true);
    await new Promise((r) => peer.child.exitCode !== null || peer.child.signalCode !== null ? r(undefined) : peer.child.once('exit', r));
    expect(shmFiles(peer.child.pid!)).toEqual([]);
    close(s);
    sides = [];
    expect(shmFiles(process.pid)).toEqual([]);
  });
});

// unshare(1) with a new PID namespace needs CAP_SYS_ADMIN (root, as the tests run here and in CI).
const unshare = ['unshare', '--pid', '--fork', '--kill-child'];
const canUnshare = !skip && spawnSync(unshare[0]!, [...unshare.slice(1), 'true']).status === 0;

describe.skipIf(!canUnshare)('soft HCA same-host fast path across PID namespaces', () => {
  it('a peer in another PID namespace stays on UDP: the pid it announces names another process here', async () => {
    const peer = new PeerProcess({ PEER_QP_TYPE: String(QpType.RC), IBAL_SOFT_SHM: '1' }, unshare);
    peers.push(peer);
    const hello = await peer.next<PeerHello>('hello');
    const s = await side({ qpType: QpType.RC, size: 1 << 20 });
    sides.push(s);
    connectRemote(s, hello, { qpType: QpType.RC, sqPsn: 0 });
    peer.send({ qpn: s.qp.qpNum, gid: Buffer.from(s.ctx.queryGid(1, 0)).toString('hex'), port: s.ctx.queryPort(1).udpPort, psn: 0 });
    await peer.next('ready');
    for (let i = 0; i < 4; i++) {
      s.qp.postSend([{ wrId: i, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: s.mr.addr, length: 4096, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr, rkey: hello.rkey } }]);
      const [w] = await completions(s, 1, 20_000);
      expect(wcStatusName(w!.status)).toBe('SUCCESS');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(s.dev.wire.counters.txPackets).toBeGreaterThan(0);
    expect(s.dev.wire.shm!.counters.txShm).toBe(0);
    expect(s.dev.wire.shm!.counters.linksUp).toBe(0);
    // Ended by closing its stdin, so it removes its device and the ring it offered: named by its pid in its own
    // namespace (1), no sweep here could tell when that segment is stale.
    s.qp.postSend([{ wrId: 99, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xd0e, sendFlags: SIG, sgList: [{ addr: s.mr.addr, length: 8, lkey: s.mr.lkey }] }]);
    await peer.next('done');
    const exited = new Promise((r) => peer.child.once('exit', r));
    peer.child.stdin!.end();
    await exited;
    expect(fs.readdirSync('/dev/shm').filter((f) => f.startsWith('ibal-1-'))).toEqual([]);
  });
});

describe('the shared-memory reader\'s poll window', () => {
  it('doubles after a sleep the peer ended soon, up to its ceiling, and halves after an idle one', () => {
    let w = POLL_MIN_MS;
    const seen: number[] = [];
    // A ping-pong whose answers come ~0.35 ms after the reader gave up (two VM wake-ups).
    for (let i = 0; i < 6; i++) seen.push((w = nextPollMs(w, 'ok', 0.35)));
    expect(seen).toEqual([0.4, 0.8, 1.6, POLL_MAX_MS, POLL_MAX_MS, POLL_MAX_MS]);
    // The peer went quiet: a wake long after, or the wait's own timeout, shrinks it back.
    expect((w = nextPollMs(w, 'ok', 50))).toBe(1);
    expect((w = nextPollMs(w, 'timed-out', 1000))).toBe(0.5);
    expect(nextPollMs(nextPollMs(w, 'ok', 20), 'ok', 20)).toBe(POLL_MIN_MS);
  });

  it('keeps the short window for traffic that only arrives every few milliseconds', () => {
    // A heartbeat every 1.5 ms: growing the window would poll all the time.
    let w = POLL_MIN_MS;
    for (let i = 0; i < 10; i++) w = nextPollMs(w, 'ok', 1.3);
    expect(w).toBe(POLL_MIN_MS);
    // A window that grew holds while sleeps stay between four and sixteen windows.
    expect(nextPollMs(0.4, 'ok', 5)).toBe(0.4);
  });

  it('stays short while this process and its local peers outnumber the cores', () => {
    expect(pollCeilingMs(1, 2)).toBe(POLL_MAX_MS);
    expect(pollCeilingMs(2, 2)).toBe(POLL_OVERSUBSCRIBED_MS);
    expect(pollCeilingMs(3, 4)).toBe(POLL_MAX_MS);
    const ceiling = pollCeilingMs(3, 2);
    // Answers that come soon after each sleep no longer grow it...
    let w = POLL_MIN_MS;
    for (let i = 0; i < 6; i++) w = nextPollMs(w, 'ok', 0.05, ceiling);
    expect(w).toBe(POLL_OVERSUBSCRIBED_MS);
    // ...a window grown before a third peer came is cut at once, whatever the sleep...
    expect(nextPollMs(POLL_MAX_MS, 'ok', 5, ceiling)).toBe(POLL_OVERSUBSCRIBED_MS);
    expect(nextPollMs(POLL_MAX_MS, 'timed-out', 1000, ceiling)).toBe(POLL_OVERSUBSCRIBED_MS);
    // ...and grows again once the peers fit the cores.
    expect(nextPollMs(w, 'ok', 0.05, pollCeilingMs(1, 2))).toBe(2 * POLL_OVERSUBSCRIBED_MS);
  });
});
