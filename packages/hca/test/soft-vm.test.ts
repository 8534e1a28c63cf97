import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Access, MwType, SendFlags, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { sharedRegionOf } from '../src/soft/mr-memory.js';
import { vmCounters } from '../src/soft/vm-path.js';
import { sysStatus } from '../src/sys/status.js';
import { close, completions, pair, type Side } from './helpers/pair.js';
import { useShmMode } from './helpers/shm-mode.js';

// Large RDMA WRITE/READ between same-host soft devices move by reference:
// one process_vm_readv/writev instead of MTU packets (vm-path.ts).
const sys = sysStatus();
const skip = !(sys.shm.on && sys.futex.on && sys.vm.on && sys.sameHostKey) && process.env.IBAL_NATIVE_REQUIRED !== '1';
const SIG = SendFlags.SIGNALED;
let sides: Side[] = [];
useShmMode();
afterEach(() => {
  close(...sides);
  sides = [];
});

async function linked(providerMemory = false): Promise<[Side, Side]> {
  const [a, b] = await pair({ size: 8 << 20, providerMemory });
  sides.push(a, b);
  // A small SEND both ways completes the negotiation before the timed part.
  b.qp.postRecv([{ wrId: 1, sgList: [{ addr: b.mr.addr, length: 64, lkey: b.mr.lkey }] }]);
  a.qp.postSend([{ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey }] }]);
  await completions(a, 1);
  await completions(b, 1);
  for (let i = 0; i < a.mr.buf.length; i++) a.mr.buf[i] = (i * 13 + (i >>> 12)) & 0xff;
  return [a, b];
}

describe.skipIf(skip)('soft HCA single-copy RDMA between local processes', () => {
  it('WRITE, WRITE_WITH_IMM and READ of large messages land in one copy, with two SGEs', async () => {
    const [a, b] = await linked();
    const before = { ...vmCounters };
    b.qp.postRecv([{ wrId: 7, sgList: [] }]);
    a.qp.postSend([
      { wrId: 10, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 4096, rkey: b.mr.rkey } },
      {
        wrId: 11,
        opcode: WrOpcode.RDMA_WRITE_WITH_IMM,
        immData: 0xabc,
        sendFlags: SIG,
        sgList: [
          { addr: a.mr.addr + (2 << 20), length: 100_000, lkey: a.mr.lkey },
          { addr: a.mr.addr + (3 << 20) + 7, length: 33_333, lkey: a.mr.lkey },
        ],
        rdma: { remoteAddr: b.mr.addr + (2 << 20), rkey: b.mr.rkey },
      },
      { wrId: 12, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + (5 << 20), length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 4096, rkey: b.mr.rkey } },
    ]);
    const wa = await completions(a, 3, 20_000);
    const wb = await completions(b, 1, 20_000);
    expect([...wa, ...wb].map((w) => wcStatusName(w.status))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
    expect(wb[0]!.immData).toBe(0xabc);
    expect(wb[0]!.byteLen).toBe(133_333);
    const A = Buffer.from(a.mr.buf.buffer, a.mr.buf.byteOffset, a.mr.buf.length);
    const B = Buffer.from(b.mr.buf.buffer, b.mr.buf.byteOffset, b.mr.buf.length);
    expect(B.subarray(4096, 4096 + (1 << 20)).equals(A.subarray(0, 1 << 20))).toBe(true);
    expect(B.subarray(2 << 20, (2 << 20) + 100_000).equals(A.subarray(2 << 20, (2 << 20) + 100_000))).toBe(true);
    expect(B.subarray((2 << 20) + 100_000, (2 << 20) + 133_333).equals(A.subarray((3 << 20) + 7, (3 << 20) + 7 + 33_333))).toBe(true);
    expect(A.subarray(5 << 20, (5 << 20) + (1 << 20)).equals(A.subarray(0, 1 << 20))).toBe(true);
    // A resent WRITE is acknowledged, not executed again; a resent READ may be read afresh.
    expect(vmCounters.pulls - before.pulls).toBe(2);
    expect(vmCounters.pushes - before.pushes).toBeGreaterThanOrEqual(1);
    // 2 MiB and more of WRITE and READ took a handful of packets, not 500.
    expect(a.dev.wire.counters.txPackets).toBeLessThan(64);
  });

  it('keeps the rkey, bounds and permission checks: REM_ACCESS_ERR, nothing written', async () => {
    const [a, b] = await linked();
    const before = { ...vmCounters };
    b.mr.buf.fill(0);
    a.qp.postSend([
      { wrId: 20, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + b.mr.buf.length - 1000, rkey: b.mr.rkey } },
    ]);
    const [w] = await completions(a, 1, 20_000);
    expect(wcStatusName(w!.status)).toBe('REM_ACCESS_ERR');
    expect(w!.status).toBe(WcStatus.REM_ACCESS_ERR);
    expect(b.mr.buf.every((x) => x === 0)).toBe(true);
    expect(vmCounters.pulls).toBe(before.pulls);
  });

  it("a memory window's rkey goes by reference too, checked against the window, not the MR", async () => {
    const [a, b] = await linked();
    const target = b.pd.regMr(new Uint8Array(4 << 20), Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.MW_BIND);
    const mw = b.pd.allocMw!(MwType.TYPE_1);
    const rkey = ((mw.rkey & ~0xff) | ((mw.rkey + 1) & 0xff)) >>> 0;
    const start = target.addr + 65536;
    mw.bind(b.qp, 1, SIG, rkey, { mr: target, addr: start, length: 2 << 20, mwAccessFlags: Access.REMOTE_WRITE | Access.REMOTE_READ });
    expect((await completions(b, 1))[0]!.status).toBe(WcStatus.SUCCESS);
    const before = { ...vmCounters };
    a.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: start + 8, rkey } },
      { wrId: 2, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + (2 << 20), length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: start + 8, rkey } },
    ]);
    expect((await completions(a, 2, 20_000)).map((w) => wcStatusName(w.status))).toEqual(['SUCCESS', 'SUCCESS']);
    expect(vmCounters.pulls - before.pulls).toBe(1);
    expect(vmCounters.pushes - before.pushes).toBe(1);
    expect(Buffer.compare(target.buf.subarray(65536 + 8, 65536 + 8 + (1 << 20)), a.mr.buf.subarray(0, 1 << 20))).toBe(0);
    expect(Buffer.compare(a.mr.buf.subarray(2 << 20, 3 << 20), a.mr.buf.subarray(0, 1 << 20))).toBe(0);
    // Inside the MR, past the window: refused before a byte moves.
    target.buf.fill(0);
    a.qp.postSend([{ wrId: 3, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: start + (2 << 20) - 1000, rkey } }]);
    expect(wcStatusName((await completions(a, 1, 20_000))[0]!.status)).toBe('REM_ACCESS_ERR');
    expect(target.buf.every((x) => x === 0)).toBe(true);
    expect(vmCounters.pulls - before.pulls).toBe(1);
    mw.dealloc();
    target.dereg();
  });

  it('messages under 64 KiB still go as packets', async () => {
    const [a, b] = await linked();
    const before = { ...vmCounters };
    a.qp.postSend([{ wrId: 30, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 60_000, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr, rkey: b.mr.rkey } }]);
    const [w] = await completions(a, 1, 20_000);
    expect(wcStatusName(w!.status)).toBe('SUCCESS');
    expect(vmCounters.pulls).toBe(before.pulls);
    expect(Buffer.compare(b.mr.buf.subarray(0, 60_000), a.mr.buf.subarray(0, 60_000))).toBe(0);
  });

  it('memory the provider allocated is mapped by the peer and copied with memcpy, not process_vm', async () => {
    const named = () => fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`ibal-${process.pid}-`)).length;
    const namedBefore = named();
    const [a, b] = await linked(true);
    expect(sharedRegionOf(a.mr.buf)).toBeDefined();
    expect(sharedRegionOf(b.mr.buf)).toBeDefined();
    // Regions have no name: a process that dies leaves nothing in /dev/shm.
    expect(named()).toBeLessThanOrEqual(namedBefore);
    const before = { ...vmCounters };
    b.qp.postRecv([{ wrId: 8, sgList: [] }]);
    a.qp.postSend([
      { wrId: 40, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey } },
      {
        wrId: 41,
        opcode: WrOpcode.RDMA_WRITE_WITH_IMM,
        immData: 5,
        sendFlags: SIG,
        sgList: [
          { addr: a.mr.addr + (2 << 20) + 3, length: 70_001, lkey: a.mr.lkey },
          { addr: a.mr.addr + (4 << 20), length: 65_536, lkey: a.mr.lkey },
        ],
        rdma: { remoteAddr: b.mr.addr + (3 << 20), rkey: b.mr.rkey },
      },
      { wrId: 42, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr + (6 << 20) + 5, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey } },
    ]);
    const wa = await completions(a, 3, 20_000);
    const wb = await completions(b, 1, 20_000);
    expect([...wa, ...wb].map((w) => wcStatusName(w.status))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
    const A = Buffer.from(a.mr.buf.buffer, a.mr.buf.byteOffset, a.mr.buf.length);
    const B = Buffer.from(b.mr.buf.buffer, b.mr.buf.byteOffset, b.mr.buf.length);
    expect(B.subarray(8, 8 + (1 << 20)).equals(A.subarray(0, 1 << 20))).toBe(true);
    expect(B.subarray(3 << 20, (3 << 20) + 70_001).equals(A.subarray((2 << 20) + 3, (2 << 20) + 3 + 70_001))).toBe(true);
    expect(B.subarray((3 << 20) + 70_001, (3 << 20) + 70_001 + 65_536).equals(A.subarray(4 << 20, (4 << 20) + 65_536))).toBe(true);
    expect(A.subarray((6 << 20) + 5, (6 << 20) + 5 + (1 << 20)).equals(A.subarray(0, 1 << 20))).toBe(true);
    // Every range of the WRITEs and the READ's went through the mapping.
    expect(vmCounters.mapped - before.mapped).toBeGreaterThanOrEqual(4);
    expect(vmCounters.pulls - before.pulls).toBe(2);
    // The READ's source is b's shared region: a copied it out itself, b pushed nothing.
    expect(vmCounters.readPulls - before.readPulls).toBeGreaterThanOrEqual(1);
    expect(vmCounters.pushes).toBe(before.pushes);
  });

  it('a READ of a shared region is copied by the requester into every SGE; from the heap it is read with process_vm_readv or pushed', async () => {
    const [a, b] = await linked(true);
    for (let i = 0; i < b.mr.buf.length; i++) b.mr.buf[i] = (i * 7 + 3) & 0xff;
    const before = { ...vmCounters };
    a.qp.postSend([
      {
        wrId: 60,
        opcode: WrOpcode.RDMA_READ,
        sendFlags: SIG,
        sgList: [
          { addr: a.mr.addr + 11, length: 70_000, lkey: a.mr.lkey },
          { addr: a.mr.addr + (3 << 20), length: 200_001, lkey: a.mr.lkey },
        ],
        rdma: { remoteAddr: b.mr.addr + 999, rkey: b.mr.rkey },
      },
    ]);
    const [w] = await completions(a, 1, 20_000);
    expect(wcStatusName(w!.status)).toBe('SUCCESS');
    const A = Buffer.from(a.mr.buf.buffer, a.mr.buf.byteOffset, a.mr.buf.length);
    const B = Buffer.from(b.mr.buf.buffer, b.mr.buf.byteOffset, b.mr.buf.length);
    expect(A.subarray(11, 11 + 70_000).equals(B.subarray(999, 999 + 70_000))).toBe(true);
    expect(A.subarray(3 << 20, (3 << 20) + 200_001).equals(B.subarray(999 + 70_000, 999 + 270_001))).toBe(true);
    // With nothing before it outstanding, b's directory let a read it without b (soft-direct-read.test.ts).
    expect(vmCounters.direct - before.direct).toBe(1);
    expect(vmCounters.pushes).toBe(before.pushes);
    close(a, b);
    sides = [];

    // Heap memory on the responder: no region to name; with nothing before it outstanding the requester reads it
    // with process_vm_readv, and behind a WRITE of ours to it (which the responder must execute first) the responder pushes it.
    const [c, d] = await linked(false);
    const heapBefore = { ...vmCounters };
    c.qp.postSend([{ wrId: 61, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: c.mr.addr, length: 1 << 20, lkey: c.mr.lkey }], rdma: { remoteAddr: d.mr.addr, rkey: d.mr.rkey } }]);
    const [w2] = await completions(c, 1, 20_000);
    expect(wcStatusName(w2!.status)).toBe('SUCCESS');
    expect(Buffer.compare(c.mr.buf.subarray(0, 1 << 20), d.mr.buf.subarray(0, 1 << 20))).toBe(0);
    expect(vmCounters.readPulls).toBe(heapBefore.readPulls);
    expect(vmCounters.direct - heapBefore.direct).toBe(1);
    expect(vmCounters.pushes).toBe(heapBefore.pushes);
    c.qp.postSend([
      { wrId: 62, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: c.mr.addr + (2 << 20), length: 1 << 20, lkey: c.mr.lkey }], rdma: { remoteAddr: d.mr.addr, rkey: d.mr.rkey } },
      { wrId: 63, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: c.mr.addr + (4 << 20), length: 1 << 20, lkey: c.mr.lkey }], rdma: { remoteAddr: d.mr.addr, rkey: d.mr.rkey } },
    ]);
    expect((await completions(c, 2, 20_000)).map((w) => wcStatusName(w.status))).toEqual(['SUCCESS', 'SUCCESS']);
    expect(Buffer.compare(c.mr.buf.subarray(4 << 20, 5 << 20), c.mr.buf.subarray(2 << 20, 3 << 20))).toBe(0);
    expect(vmCounters.direct - heapBefore.direct).toBe(1);
    expect(vmCounters.pushes - heapBefore.pushes).toBeGreaterThanOrEqual(1);
  });

  it('the checks hold for mapped memory too: a READ past the region is REM_ACCESS_ERR and writes nothing', async () => {
    const [a, b] = await linked(true);
    const before = { ...vmCounters };
    a.mr.buf.fill(0x5a, 0, 1 << 20);
    a.qp.postSend([
      { wrId: 50, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: a.mr.addr, length: 1 << 20, lkey: a.mr.lkey }], rdma: { remoteAddr: b.mr.addr + b.mr.buf.length - 4096, rkey: b.mr.rkey } },
    ]);
    const [w] = await completions(a, 1, 20_000);
    expect(wcStatusName(w!.status)).toBe('REM_ACCESS_ERR');
    expect(a.mr.buf.subarray(0, 1 << 20).every((x) => x === 0x5a)).toBe(true);
    expect(vmCounters.mapped).toBe(before.mapped);
    expect(vmCounters.readPulls).toBe(before.readPulls);
  });
});
