import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Access, QpAttrMask, QpState, QpType, SendFlags, WrOpcode, wcStatusName } from '../src/enums.js';
import { Directory, PeerDirectory } from '../src/soft/directory.js';
import { allocRegionMemory, mapPeerRegion, mappedPeerRegions, sharedRegionOf, sweepPeerRegions } from '../src/soft/mr-memory.js';
import { MrTable } from '../src/soft/mr.js';
import { vmCounters } from '../src/soft/vm-path.js';
import { sys as addon } from '../src/sys/load.js';
import { addressOf } from '../src/sys/vm.js';
import { sysStatus } from '../src/sys/status.js';
import { PeerProcess, type PeerHello } from './helpers/child.js';
import { close, completions, connectRemote, pair, side, type Side } from './helpers/pair.js';
import { useShmMode } from './helpers/shm-mode.js';

// A large READ from a same-host peer whose directory (directory.ts) says
// its responder would accept it is copied by the requester alone: the
// responder's process sees no packet. Anything its responder would refuse
// goes to it, and is refused as before.
const sys = sysStatus();
const skip = !(sys.shm.on && sys.futex.on && sys.vm.on && sys.sameHostKey) && process.env.IBAL_NATIVE_REQUIRED !== '1';
const SIG = SendFlags.SIGNALED;
const MiB = 1 << 20;
let sides: Side[] = [];
let peers: PeerProcess[] = [];
useShmMode();
afterEach(() => {
  peers.forEach((p) => p.kill());
  peers = [];
  close(...sides);
  sides = [];
});

/** Two linked sides with provider (shared-region) memory or heap memory, b's filled with a pattern. */
async function linked(providerMemory = true): Promise<[Side, Side]> {
  const [a, b] = await pair({ size: 4 * MiB, providerMemory });
  sides.push(a, b);
  b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
  a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
  await completions(a, 1);
  await completions(b, 1);
  for (let i = 0; i < b.mr.buf.length; i++) b.mr.buf[i] = (i * 7 + (i >>> 11)) & 0xff;
  return [a, b];
}

function read(a: Side, wrId: number, rkey: number, remoteAddr: number, length: number, at = 0) {
  a.qp.postSend([{ wrId, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + at, length, lkey: a.mr.lkey }], rdma: { remoteAddr, rkey } }]);
}

const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length));

describe.skipIf(skip)('soft HCA direct READ between local processes', () => {
  it.each([
    ['a shared region', true],
    ['the heap (process_vm_readv)', false],
  ])('copies a READ of %s into every SGE with no packet to the responder, which does nothing', async (_, providerMemory) => {
    const [a, b] = await linked(providerMemory);
    const before = { ...vmCounters };
    const rx = b.dev.wire.counters.rxPackets;
    a.qp.postSend([
      {
        wrId: 2,
        opcode: WrOpcode.RDMA_READ,
        sendFlags: SIG,
        sgList: [
          { addr: a.mr.addr + 5, length: 100_000, lkey: a.mr.lkey },
          { addr: a.mr.addr + 2 * MiB, length: MiB - 3, lkey: a.mr.lkey },
        ],
        rdma: { remoteAddr: b.mr.addr + 77, rkey: b.mr.rkey },
      },
    ]);
    // Done before postSend returned: the completion is already there.
    const [w] = await completions(a, 1);
    expect(wcStatusName(w!.status)).toBe('SUCCESS');
    expect(w!.byteLen).toBe(100_000 + MiB - 3);
    expect(same(a.mr.buf.subarray(5, 100_005), b.mr.buf.subarray(77, 100_077))).toBe(true);
    expect(same(a.mr.buf.subarray(2 * MiB, 3 * MiB - 3), b.mr.buf.subarray(100_077, 100_077 + MiB - 3))).toBe(true);
    expect(vmCounters.direct - before.direct).toBe(1);
    expect(vmCounters.readPulls).toBe(before.readPulls);
    expect(vmCounters.pushes).toBe(before.pushes);
    expect(b.dev.wire.counters.rxPackets).toBe(rx);
    // The QP goes on as usual afterwards, both ways.
    b.qp.postRecv([{ wrId: 3, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    a.qp.postSend([{ wrId: 4, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 16, lkey: a.mr.lkey }] }]);
    expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('SUCCESS');
    expect(wcStatusName((await completions(b, 1))[0]!.status)).toBe('SUCCESS');
  });

  it('never passes a WRITE of ours to memory the responder lets be written; read-only memory it may', async () => {
    const [a, b] = await linked();
    const before = { ...vmCounters };
    // b's MR allows remote writes: a READ behind a WRITE to it must see the WRITE.
    a.mr.buf.fill(0xc3, 0, MiB);
    a.qp.postSend([
      { wrId: 10, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: MiB, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + MiB, rkey: b.mr.rkey } },
      { wrId: 11, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 2 * MiB, length: MiB, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + MiB, rkey: b.mr.rkey } },
    ]);
    const ws = await completions(a, 2);
    expect(ws.map((w) => [w.wrId, wcStatusName(w.status)])).toEqual([
      [10, 'SUCCESS'],
      [11, 'SUCCESS'],
    ]);
    expect(a.mr.buf.subarray(2 * MiB, 3 * MiB).every((x) => x === 0xc3)).toBe(true);
    expect(vmCounters.direct).toBe(before.direct);

    // Memory only readable remotely cannot change under any request of ours: a READ of it may pass a SEND still unanswered.
    const ro = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.REMOTE_READ);
    ro.buf.fill(0x3c);
    b.qp.postRecv([{ wrId: 12, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    const mid = { ...vmCounters };
    const tx = a.dev.wire.counters.txPackets;
    a.qp.postSend([
      { wrId: 13, opcode: WrOpcode.SEND, sendFlags: 0, sgList: [{ addr: a.mr.addr, length: 32, lkey: a.mr.lkey }] },
      { wrId: 14, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: MiB, lkey: a.mr.lkey }], rdma: { remoteAddr: ro.addr, rkey: ro.rkey } },
    ]);
    expect(vmCounters.direct - mid.direct).toBe(1);
    // The READ completes after the SEND's ACK, which the unsignaled SEND did not ask for: it was asked for
    // at once (the SEND again, with AckReq), as the READ's request would have, not by the idle probe later.
    expect(a.dev.wire.counters.txPackets - tx).toBe(2);
    const ws2 = await completions(a, 1);
    expect(ws2.map((w) => [w.wrId, wcStatusName(w.status)])).toEqual([[14, 'SUCCESS']]);
    expect(a.mr.buf.subarray(0, MiB).every((x) => x === 0x3c)).toBe(true);
    await completions(b, 1);
    ro.dereg();
  });

  it.each([
    ['a READ', WrOpcode.RDMA_READ],
    ['an atomic', WrOpcode.ATOMIC_FETCH_AND_ADD],
  ])('follows %s that went to the responder behind an unsignaled SEND; that request is what asks for the ACK', async (_, op) => {
    const [a, b] = await linked();
    const ro = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.REMOTE_READ);
    for (let i = 0; i < MiB; i++) ro.buf[i] = (i * 13) & 0xff;
    b.qp.postRecv([{ wrId: 30, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
    const before = { ...vmCounters };
    // The READ (below the direct size) or atomic in the middle is the responder's to execute; its
    // response acknowledges the SEND, so the direct READ after it must not ask again (it used to, by
    // resending that request, again and again, until the stack overflowed inside postSend).
    const middle =
      op === WrOpcode.RDMA_READ
        ? { wrId: 32, opcode: op, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 64, length: 4096, lkey: a.mr.lkey }], rdma: { remoteAddr: ro.addr + 8, rkey: ro.rkey } }
        : { wrId: 32, opcode: op, sendFlags: SIG, sgList: [{ addr: a.mr.addr + 64, length: 8, lkey: a.mr.lkey }], atomic: { remoteAddr: b.mr.addr + 1024, rkey: b.mr.rkey, compareAdd: 1n } };
    a.qp.postSend([
      { wrId: 31, opcode: WrOpcode.SEND, sendFlags: 0, sgList: [{ addr: a.mr.addr, length: 32, lkey: a.mr.lkey }] },
      middle,
      { wrId: 33, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + MiB, length: MiB - 64, lkey: a.mr.lkey }], rdma: { remoteAddr: ro.addr + 64, rkey: ro.rkey } },
    ]);
    expect(vmCounters.direct - before.direct).toBe(1);
    const ws = await completions(a, 2);
    expect(ws.map((w) => [w.wrId, wcStatusName(w.status)])).toEqual([
      [32, 'SUCCESS'],
      [33, 'SUCCESS'],
    ]);
    if (op === WrOpcode.RDMA_READ) expect(same(a.mr.buf.subarray(64, 64 + 4096), ro.buf.subarray(8, 8 + 4096))).toBe(true);
    expect(same(a.mr.buf.subarray(MiB, 2 * MiB - 64), ro.buf.subarray(64))).toBe(true);
    expect(wcStatusName((await completions(b, 1))[0]!.status)).toBe('SUCCESS');
    ro.dereg();
  });

  it("unmaps a peer's region once no MR is over it, instead of keeping the memory its owner let go", async () => {
    const [a, b] = await linked();
    const mem = b.pd.allocBuffer!(MiB);
    mem.fill(0x3c);
    // Mappings of this region in this process (the test holds both ends): the owner's, and the requester's while cached.
    const fd = sharedRegionOf(mem)!.fd;
    const inode = fs.statSync(`/proc/self/fd/${fd}`).ino;
    const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.split(/\s+/)[4] === String(inode)).length;
    const readAll = async (mr: { rkey: number; addr: number }, wrId: number) => {
      a.mr.buf.fill(0, 0, MiB);
      read(a, wrId, mr.rkey, mr.addr, MiB);
      expect(wcStatusName((await completions(a, 1))[0]!.status)).toBe('SUCCESS');
      expect(a.mr.buf.subarray(0, MiB).every((x) => x === 0x3c)).toBe(true);
    };
    sweepPeerRegions();
    const base = mappedPeerRegions();
    const first = b.pd.regMr(mem, Access.REMOTE_READ);
    const second = b.pd.regMr(mem, Access.REMOTE_READ);
    const direct = vmCounters.direct;
    await readAll(first, 40);
    expect(vmCounters.direct - direct).toBe(1);
    expect(mappedPeerRegions()).toBe(base + 1);
    expect(maps()).toBe(2);
    // Kept while any MR is over the region: a sweep leaves it, and later READs reuse it.
    first.dereg();
    sweepPeerRegions();
    expect(mappedPeerRegions()).toBe(base + 1);
    await readAll(second, 41);
    expect(maps()).toBe(2);
    // The last MR gone, the sweep that runs every second unmaps it with nothing else happening.
    second.dereg();
    for (let i = 0; i < 60 && mappedPeerRegions() > base; i++) await new Promise((r) => setTimeout(r, 50));
    expect(mappedPeerRegions()).toBe(base);
    expect(maps()).toBe(1);
    // Its descriptor went with the last MR (peers can no longer map it); the memory stays the owner's.
    const fdNow = () => {
      try {
        return fs.statSync(`/proc/self/fd/${fd}`).ino;
      } catch {
        return undefined;
      }
    };
    expect(fdNow()).not.toBe(inode);
    expect(sharedRegionOf(mem)).toBeUndefined();
    expect(mem.every((x) => x === 0x3c)).toBe(true);
    // Registered again it is plain memory: still READ directly, through process_vm_readv.
    const third = b.pd.regMr(mem, Access.REMOTE_READ);
    await readAll(third, 42);
    expect(vmCounters.direct - direct).toBe(3);
    expect(mappedPeerRegions()).toBe(base);
    expect(maps()).toBe(1);
    third.dereg();
  });

  const refused: [string, (a: Side, b: Side) => void][] = [
    ['a wrong rkey', (a, b) => read(a, 20, (b.mr.rkey ^ 0x80) >>> 0, b.mr.addr, MiB)],
    ['a range past the MR', (a, b) => read(a, 21, b.mr.rkey, b.mr.addr + b.mr.buf.length - MiB + 1, MiB)],
    [
      'an MR without remote read',
      (a, b) => {
        const mr = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.LOCAL_WRITE | Access.REMOTE_WRITE);
        read(a, 22, mr.rkey, mr.addr, MiB);
      },
    ],
    [
      'a deregistered MR',
      (a, b) => {
        const mr = b.pd.regMr(b.pd.allocBuffer!(MiB), Access.REMOTE_READ);
        const { rkey, addr } = mr;
        mr.dereg();
        read(a, 23, rkey, addr, MiB);
      },
    ],
    [
      'a QP that no longer allows remote reads',
      (a, b) => {
        b.qp.modify({ qpAccessFlags: Access.REMOTE_WRITE }, QpAttrMask.ACCESS_FLAGS);
        read(a, 24, b.mr.rkey, b.mr.addr, MiB);
      },
    ],
    [
      'an MR of another PD',
      (a, b) => {
        const pd2 = b.ctx.allocPd();
        const mr = pd2.regMr(pd2.allocBuffer!(MiB), Access.REMOTE_READ);
        read(a, 25, mr.rkey, mr.addr, MiB);
      },
    ],
  ];
  for (const [what, post] of refused) {
    it(`leaves ${what} to the responder, which answers REM_ACCESS_ERR; nothing is copied`, async () => {
      const [a, b] = await linked();
      a.mr.buf.fill(0x11, 0, MiB);
      const before = { ...vmCounters };
      post(a, b);
      const [w] = await completions(a, 1);
      expect(wcStatusName(w!.status)).toBe('REM_ACCESS_ERR');
      expect(vmCounters.direct).toBe(before.direct);
      expect(a.mr.buf.subarray(0, MiB).every((x) => x === 0x11)).toBe(true);
    });
  }
});

describe.skipIf(skip)('soft HCA direct READ from another process', () => {
  /** A peer process with an MR of 2 MiB (in a shared region or on its heap), connected, its first MiB from 4096 written with a pattern and read back directly once. */
  async function remotePeer(provider: string, env: Record<string, string> = {}) {
    const peer = new PeerProcess({ PEER_QP_TYPE: '2', PEER_MR_SIZE: String(2 * MiB), PEER_MR_PROVIDER: provider, ...env });
    peers.push(peer);
    const hello = await peer.next<PeerHello & { rkey: number; addr: number }>('hello');
    // Local ACK timeout 14 (4.096 us << 14, 67 ms) and 2 retries: a killed
    // peer's READ still ends RETRY_EXC_ERR in a fraction of a second, while a
    // peer just started, on two cores busy with the rest of CI, has time to
    // answer the first WRITE (timeout 10, 4 ms a try, once failed it there).
    const opts = { size: 4 * MiB, providerMemory: true, timeout: 14, retryCnt: 2 };
    const s = await side(opts);
    sides.push(s);
    connectRemote(s, hello, { ...opts, sqPsn: 0x500 });
    peer.send({ qpn: s.qp.qpNum, gid: Buffer.from(s.ctx.queryGid(1, 0)).toString('hex'), port: s.ctx.queryPort(1).udpPort, psn: 0x500 });
    await peer.next('ready');
    for (let i = 0; i < MiB; i++) s.mr.buf[i] = (i * 31 + 5) & 0xff;
    s.qp.postSend([{ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: s.mr.addr, length: MiB, lkey: s.mr.lkey }], rdma: { remoteAddr: hello.addr + 4096, rkey: hello.rkey } }]);
    expect(wcStatusName((await completions(s, 1))[0]!.status)).toBe('SUCCESS');
    // The link and the peer's directory are known once that WRITE went through its ring; a READ may take a few to get there.
    let direct = 0;
    for (let i = 0; i < 20 && direct === 0; i++) {
      const before = vmCounters.direct;
      s.mr.buf.fill(0, 2 * MiB, 3 * MiB);
      read(s, 2 + i, hello.rkey, hello.addr + 4096, MiB, 2 * MiB);
      expect(wcStatusName((await completions(s, 1))[0]!.status)).toBe('SUCCESS');
      expect(same(s.mr.buf.subarray(2 * MiB, 3 * MiB), s.mr.buf.subarray(0, MiB))).toBe(true);
      direct = vmCounters.direct - before;
    }
    expect(direct).toBe(1);
    return { peer, hello, s };
  }

  it.each([
    ['a shared region', '1'],
    ['the heap', '0'],
  ])('reads its memory in %s without it; once it is killed, a READ ends RETRY_EXC_ERR and copies nothing', async (_, provider) => {
    const { peer, hello, s } = await remotePeer(provider);
    const exited = new Promise((r) => peer.child.once('exit', r));
    peer.kill();
    await exited;
    const before = vmCounters.direct;
    s.mr.buf.fill(0x77, 2 * MiB, 3 * MiB);
    read(s, 99, hello.rkey, hello.addr + 4096, MiB, 2 * MiB);
    const [w] = await completions(s, 1, 20_000);
    expect(wcStatusName(w!.status)).toBe('RETRY_EXC_ERR');
    expect(vmCounters.direct).toBe(before);
    expect(s.mr.buf.subarray(2 * MiB, 3 * MiB).every((x) => x === 0x77)).toBe(true);
  });

  it('completes a READ while the other process is stopped, running no JavaScript at all', async () => {
    const flag = path.join(os.tmpdir(), `ibal-direct-read-${process.pid}-${Date.now()}`);
    const { peer, hello, s } = await remotePeer('0', { PEER_BLOCK_FILE: flag });
    try {
      // The peer stops its thread until `flag` exists (peer.mjs).
      peer.send({ block: true });
      await peer.next('blocked');
      s.mr.buf.fill(0, 2 * MiB, 3 * MiB);
      read(s, 52, hello.rkey, hello.addr + 4096, MiB, 2 * MiB);
      const [w] = await completions(s, 1, 5_000);
      expect(wcStatusName(w!.status)).toBe('SUCCESS');
      expect(same(s.mr.buf.subarray(2 * MiB, 3 * MiB), s.mr.buf.subarray(0, MiB))).toBe(true);
    } finally {
      fs.writeFileSync(flag, '');
    }
    // It was the flag, written after the READ completed, that let the peer go on.
    expect((await peer.next<{ byFlag: boolean }>('unblocked')).byFlag).toBe(true);
    fs.rmSync(flag, { force: true });
  });
});

describe.skipIf(skip)('the directory a device publishes', () => {
  it('lives with the device\'s wire: dropped when its last context closes, made anew when it opens again', async () => {
    const [a, b] = await pair({ size: MiB, providerMemory: true });
    sides.push(a, b);
    const first = a.dev.directory;
    expect(first).toBeDefined();
    a.ctx.close();
    expect(a.dev.directory).toBeUndefined();
    const ctx = await a.dev.open();
    expect(a.dev.directory).toBeDefined();
    // (Compared by identity: the first one's memory went with its wire, detached.)
    expect(a.dev.directory === first).toBe(false);
    ctx.close();
  });

  it('lets a check through only while both entries stay as they were', () => {
    const dir = Directory.create()!;
    expect(dir).toBeDefined();
    const pd = { id: 7 };
    const mrs = new MrTable();
    const mem = allocRegionMemory(1 << 16);
    mem.set([1, 2, 3, 4], 100);
    const mr = mrs.register(pd, mem, Access.REMOTE_READ);
    mrs.publishIn(dir);
    const qp = { qpNum: 0x42, qpType: QpType.RC, state: QpState.RTS, accessFlags: Access.REMOTE_READ, maxDestRdAtomic: 4, pd, destQpNum: 0x99, peer: { token: 1234 } };
    dir.publishQp(qp);
    const mapping = mapPeerRegion(process.pid, dir.desc.fd, dir.desc.hi, dir.desc.lo)!;
    const peer = PeerDirectory.of(mapping)!;
    try {
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr + 100, 4)).toBe(true);
      expect([...peer.view!]).toEqual([1, 2, 3, 4]);
      expect(peer.valid()).toBe(true);
      // Anything the responder would refuse.
      expect(peer.check(process.pid, 0x42, 0x99, 4321, mr.rkey, mr.addr, 4)).toBe(false); // another peer
      expect(peer.check(process.pid, 0x42, 0x98, 1234, mr.rkey, mr.addr, 4)).toBe(false); // another QP of ours
      expect(peer.check(process.pid, 0x43, 0x99, 1234, mr.rkey, mr.addr, 4)).toBe(false); // another QP of theirs
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr - 1, 4)).toBe(false);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr + (1 << 16) - 3, 4)).toBe(false);
      // An entry rewritten after the check: what was copied may not be what a READ returns.
      peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr, 4);
      dir.publishQp(qp);
      expect(peer.valid()).toBe(false);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr, 4)).toBe(true);
      dir.publishQp({ ...qp, state: QpState.ERR });
      expect(peer.valid()).toBe(false);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr, 4)).toBe(false);
      dir.publishQp(qp);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr, 4)).toBe(true);
      mr.dereg();
      expect(peer.valid()).toBe(false);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, mr.rkey, mr.addr, 4)).toBe(false);
      // Another PD's MR in a QP's name.
      const other = mrs.register({ id: 8 }, mem, Access.REMOTE_READ);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, other.rkey, other.addr, 4)).toBe(false);
      // Memory on the heap: named by its address in the process, for process_vm_readv.
      const heap = new Uint8Array(4096);
      const hmr = mrs.register(pd, heap, Access.REMOTE_READ);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, hmr.rkey, hmr.addr + 10, 20)).toBe(true);
      expect(peer.view).toBeUndefined();
      expect(peer.address).toBe(Number(addressOf(heap)) + 10);
      // Not remotely readable: not published.
      const local = mrs.register(pd, new Uint8Array(4096), Access.LOCAL_WRITE);
      expect(peer.check(process.pid, 0x42, 0x99, 1234, local.rkey, local.addr, 4)).toBe(false);
    } finally {
      addon().detach(mapping.buffer as ArrayBuffer);
    }
  });
});
