// UD multicast over the soft HCA: QPs attached to an IP multicast group on
// two devices get a copy of each send to it (destination QP 0xFFFFFF), with
// the group in the GRH; detached or foreign-Q_Key QPs get none; misuse fails
// as ibv_attach_mcast does.
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  NotFoundError,
  QpAttrMask as M,
  QpState,
  QpType,
  SendFlags,
  WcFlags,
  WcStatus,
  WrOpcode,
  createAh,
  gidFromString,
  type CQ,
  type QP,
  type WorkCompletion,
} from '../src/index.js';
import { endpoint, rcQp } from './soft-pair.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

const QKEY = 0x1111;
const MCAST_QPN = 0xffffff;

function toRts(qp: QP, qkey = QKEY): void {
  qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
  qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
  qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
}

async function recvWithin(cq: CQ, ms: number): Promise<WorkCompletion | undefined> {
  try {
    return await cq.next({ signal: AbortSignal.timeout(ms) });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return undefined;
    throw err;
  }
}

// A group of this process's own: test files run side by side on one host.
const group = `239.${(process.pid >> 8) & 0xff}.${process.pid & 0xff}.${1 + Math.floor(Math.random() * 250)}`;
const gid = gidFromString(`::ffff:${group}`);

describe('UD multicast', () => {
  it('delivers each send to the group to every attached QP, on two devices, with the group as GRH destination', async () => {
    const tx = await endpoint(cleanup, QpType.UD, 'verbs_mc');
    const b = await endpoint(cleanup, QpType.UD, 'verbs_mc');
    const c = await endpoint(cleanup, QpType.UD, 'verbs_mc');
    const b2 = rcQp(b.pd, b.cq, QpType.UD);
    const wrongKey = rcQp(c.pd, c.cq, QpType.UD);
    for (const qp of [tx.qp, b.qp, b2, c.qp]) toRts(qp);
    toRts(wrongKey, 0x2222);
    const members: [QP, number][] = [
      [b.qp, 0],
      [b2, 4096],
      [c.qp, 0],
      [wrongKey, 4096],
    ];
    for (const [qp] of members) await qp.attachMcast(gid);
    await b.qp.attachMcast(gid); // attaching twice changes nothing
    for (const [qp, off] of members) qp.postRecv({ wrId: qp.qpNum, sgList: [(qp.pd === b.pd ? b.mr : c.mr).sge(off, 2048)] });

    const ah = createAh(tx.pd, { dgid: gid, portNum: 1 });
    tx.mr.buf.set(new TextEncoder().encode('to everyone'), 0);
    tx.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 77, sendFlags: SendFlags.SIGNALED, sgList: [tx.mr.sge(0, 11)], ud: { ah, remoteQpn: MCAST_QPN, remoteQkey: QKEY } });
    expect((await tx.cq.next({ signal: AbortSignal.timeout(5000) })).status).toBe(WcStatus.SUCCESS);

    const gotB = [await b.cq.next({ signal: AbortSignal.timeout(5000) }), await b.cq.next({ signal: AbortSignal.timeout(5000) })];
    const gotC = await c.cq.next({ signal: AbortSignal.timeout(5000) });
    for (const wc of [...gotB, gotC]) {
      expect([wc.status, wc.byteLen, wc.immData, wc.srcQp, wc.wcFlags & WcFlags.GRH]).toEqual([WcStatus.SUCCESS, 40 + 11, 77, tx.qp.qpNum, WcFlags.GRH]);
    }
    expect(gotB.map((w) => w.wrId).sort()).toEqual([b.qp.qpNum, b2.qpNum].sort());
    expect(gotC.wrId).toBe(c.qp.qpNum);
    for (const [buf, off] of [[b.mr.buf, 0], [b.mr.buf, 4096], [c.mr.buf, 0]] as const) {
      // The GRH's IPv4 header: source the sender's device, destination the group.
      expect([...buf.subarray(off + 32, off + 36)].join('.')).toBe(tx.ctx.queryGid(1, 0).subarray(12).join('.'));
      expect([...buf.subarray(off + 36, off + 40)].join('.')).toBe(group);
      expect(new TextDecoder().decode(buf.subarray(off + 40, off + 51))).toBe('to everyone');
    }
    // A member with another Q_Key drops it, as any UD QP does.
    expect(await recvWithin(c.cq, 200)).toBeUndefined();

    // Detached, c gets no more; b's two still do.
    c.qp.detachMcast(gid);
    expect(() => c.qp.detachMcast(gid)).toThrow(NotFoundError);
    c.qp.postRecv({ wrId: 5, sgList: [c.mr.sge(0, 2048)] });
    for (const qp of [b.qp, b2]) qp.postRecv({ wrId: 6, sgList: [b.mr.sge(8192, 2048)] });
    tx.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [tx.mr.sge(0, 4)], ud: { ah, remoteQpn: MCAST_QPN, remoteQkey: QKEY } });
    expect((await tx.cq.next({ signal: AbortSignal.timeout(5000) })).status).toBe(WcStatus.SUCCESS);
    expect((await b.cq.next({ signal: AbortSignal.timeout(5000) })).wrId).toBe(6);
    expect((await b.cq.next({ signal: AbortSignal.timeout(5000) })).wrId).toBe(6);
    expect(await recvWithin(c.cq, 200)).toBeUndefined();
    // Destroying a member QP leaves the group for it.
    b2.destroy();
    wrongKey.destroy();
    ah.destroy();
  });

  it('refuses what ibv_attach_mcast refuses', async () => {
    const ud = await endpoint(cleanup, QpType.UD, 'verbs_mc');
    const rc = await endpoint(cleanup, QpType.RC, 'verbs_mc');
    toRts(ud.qp);
    await expect(rc.qp.attachMcast(gid)).rejects.toThrow(/only UD QPs/);
    await expect(ud.qp.attachMcast(gidFromString('::ffff:10.1.2.3'))).rejects.toThrow(/not an IPv4 multicast group/);
    await expect(ud.qp.attachMcast(new Uint8Array(4))).rejects.toThrow(InvalidArgumentError);
    await expect(ud.qp.attachMcast(gid, -1)).rejects.toThrow(/lid/);
    expect(() => ud.qp.detachMcast(gid)).toThrow(NotFoundError);
  });
});
