import { describe, expect, it } from 'vitest';
import {
  Access,
  QpType,
  ResourceBusyError,
  ResourceClosedError,
  createAh,
  createQp,
  createSrq,
  regMr,
  type CQ,
  type PD,
} from '../src/index.js';
import { kHandle } from '../src/internal.js';
import type { CqDouble, PdDouble, QpDouble } from './provider-double.js';
import { openDouble } from './helpers.js';

async function world() {
  const { ctx, hctx } = await openDouble();
  const pd = ctx.allocPd();
  const cq = ctx.createCq(16);
  return { ctx, hctx, pd, cq };
}

function rcQp(pd: PD, cq: CQ) {
  return createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 4, maxRecvWr: 4 } });
}

describe('busy parents (EBUSY)', () => {
  it('refuses to deallocate a PD with live MRs, QPs, SRQs and AHs, naming them', async () => {
    const { pd, cq } = await world();
    const mr = regMr(pd, 64, Access.LOCAL_WRITE);
    const mr2 = regMr(pd, 64, 0);
    const qp = rcQp(pd, cq);
    const srq = createSrq(pd, { maxWr: 4 });
    const ah = createAh(pd, { dgid: new Uint8Array(16) });
    expect(() => pd.dealloc()).toThrow(new ResourceBusyError('cannot deallocate PD: still used by 2 MRs, 1 QP, 1 SRQ, 1 AH'));
    expect((pd[kHandle] as PdDouble).deallocated).toBe(false);
    mr.dereg();
    mr2.dereg();
    qp.destroy();
    srq.destroy();
    ah.destroy();
    pd.dealloc();
    expect((pd[kHandle] as PdDouble).deallocated).toBe(true);
  });

  it('refuses to destroy a CQ a QP uses, and an SRQ a QP uses', async () => {
    const { pd, cq, ctx } = await world();
    const other = ctx.createCq(4);
    const srq = createSrq(pd, { maxWr: 4 });
    const qp = createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: other, srq, cap: { maxSendWr: 1, maxRecvWr: 0 } });
    expect(() => cq.destroy()).toThrow(/cannot destroy CQ: still used by 1 QP/);
    expect(() => other.destroy()).toThrow(ResourceBusyError);
    expect(() => srq.destroy()).toThrow(/cannot destroy SRQ: still used by 1 QP/);
    expect((cq[kHandle] as CqDouble).destroyed).toBe(false);
    qp.destroy();
    cq.destroy();
    other.destroy();
    srq.destroy();
  });

  it('refuses to close a context with live PDs, CQs or channels', async () => {
    const { ctx, hctx, pd, cq } = await world();
    const ch = ctx.createCompChannel();
    const cq2 = ctx.createCq(4, { channel: ch });
    expect(() => ctx.close()).toThrow(/cannot close Context double0: still used by 1 PD, 2 CQs, 1 CompChannel/);
    expect(() => ch.destroy()).toThrow(/cannot destroy CompChannel: still used by 1 CQ/);
    cq2.destroy();
    ch.destroy();
    cq.destroy();
    pd.dealloc();
    ctx.close();
    expect(hctx.closed).toBe(true);
  });

  it('leaves a resource usable when the provider refuses to destroy it', async () => {
    const { pd, cq } = await world();
    const qp = rcQp(pd, cq);
    const h = qp[kHandle] as QpDouble;
    h.destroy = () => {
      throw new Error('provider says no');
    };
    expect(() => qp.destroy()).toThrow('provider says no');
    expect(qp.closed).toBe(false);
    expect(() => cq.destroy()).toThrow(ResourceBusyError);
  });
});

describe('use after close', () => {
  it('throws ResourceClosedError from every object once closed', async () => {
    const { ctx, pd, cq } = await world();
    const mr = regMr(pd, 16, Access.LOCAL_WRITE);
    const ah = createAh(pd, { dgid: new Uint8Array(16) });
    const srq = createSrq(pd, { maxWr: 4 });
    const qp = rcQp(pd, cq);
    const ch = ctx.createCompChannel();

    qp.destroy();
    expect(() => qp.state).toThrow(new ResourceClosedError(`QP 0x${qp.qpNum.toString(16)}`));
    expect(() => qp.postSend({ wrId: 1, opcode: 2, sgList: [] })).toThrow(ResourceClosedError);
    expect(() => qp.postRecv({ wrId: 1, sgList: [] })).toThrow(ResourceClosedError);
    expect(() => qp.modifyQp({ qpState: 1 }, 1)).toThrow(ResourceClosedError);
    expect(() => qp.queryQp()).toThrow(ResourceClosedError);

    mr.dereg();
    expect(() => mr.lkey).toThrow(new ResourceClosedError('MR'));
    expect(() => mr.rkey).toThrow(ResourceClosedError);
    expect(() => mr.addr).toThrow(ResourceClosedError);
    expect(() => mr.buf).toThrow(ResourceClosedError);
    expect(() => mr.sge()).toThrow(ResourceClosedError);

    ah.destroy();
    expect(() => ah.attr).toThrow(ResourceClosedError);
    srq.destroy();
    expect(() => srq.postSrqRecv({ wrId: 1, sgList: [] })).toThrow(ResourceClosedError);
    expect(() => srq.querySrq()).toThrow(ResourceClosedError);

    cq.destroy();
    expect(() => cq.poll()).toThrow(ResourceClosedError);
    expect(() => cq.reqNotify()).toThrow(ResourceClosedError);
    await expect(cq.next()).rejects.toThrow(ResourceClosedError);

    ch.destroy();
    await expect(ch.getCqEvent()).rejects.toThrow(ResourceClosedError);

    regMr(pd, 16, 0).dereg(); // the PD itself is still open
    pd.dealloc();
    expect(() => regMr(pd, 16, 0)).toThrow(new ResourceClosedError('PD'));
    expect(() => createQp(pd, { qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1 } })).toThrow(ResourceClosedError);
    expect(() => createAh(pd, { dgid: new Uint8Array(16) })).toThrow(ResourceClosedError);
    expect(() => createSrq(pd, { maxWr: 1 })).toThrow(ResourceClosedError);

    ctx.close();
    expect(() => ctx.allocPd()).toThrow(ResourceClosedError);
    expect(() => ctx.createCq(4)).toThrow(ResourceClosedError);
    expect(() => ctx.queryPort()).toThrow(ResourceClosedError);
    expect(() => ctx.createCompChannel()).toThrow(ResourceClosedError);
  });

  it('makes close idempotent and wires Symbol.dispose', async () => {
    const { ctx, pd, cq } = await world();
    const mr = regMr(pd, 8, 0);
    mr[Symbol.dispose]();
    mr.dereg();
    expect(mr.closed).toBe(true);
    const qp = rcQp(pd, cq);
    qp[Symbol.dispose]();
    cq[Symbol.dispose]();
    pd[Symbol.dispose]();
    ctx[Symbol.dispose]();
    expect(ctx.closed).toBe(true);
  });

  it('refuses children across contexts', async () => {
    const a = await world();
    const b = await world();
    expect(() => createQp(a.pd, { qpType: QpType.RC, sendCq: b.cq, recvCq: a.cq, cap: { maxSendWr: 1, maxRecvWr: 1 } })).toThrow(
      /sendCq belongs to another context/,
    );
    const ch = b.ctx.createCompChannel();
    expect(() => a.ctx.createCq(4, { channel: ch })).toThrow(/another context/);
  });
});
