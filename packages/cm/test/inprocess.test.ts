// The CM between two soft devices of one process: the event API and the
// promise API, private data both ways, rejects, SIDR.
import { afterEach, describe, expect, it } from 'vitest';
import { WrOpcode, SendFlags, regMr, Access, createAh } from '@ibal/verbs';
import { InvalidArgumentError } from '@ibal/verbs';
import {
  CmEventType,
  ConnectionRejectedError,
  PortSpace,
  RejReason,
  SidrError,
  cmResources,
  connect,
  createEventChannel,
  createId,
  listen,
} from '../src/index.js';
import { FAST, device, until } from './helpers.js';

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function pair() {
  const a = device();
  const b = device();
  cleanup.push(() => a.remove(), () => b.remove());
  return [a, b] as const;
}

describe('CM in one process', () => {
  it('event API: resolve, route, connect, accept, ESTABLISHED both sides, disconnect, TIMEWAIT_EXIT', async () => {
    const [a, b] = await pair();
    const sch = createEventChannel();
    const lid = createId(sch, { ...FAST, device: a.name });
    await lid.bindAddr({ address: '127.0.0.1', port: 0 });
    lid.listen(4);
    const laddr = lid.localAddr!;
    const cch = createEventChannel();
    const cid = createId(cch, { ...FAST, device: b.name });
    cid.resolveAddr({ address: '127.0.0.1', port: laddr.port, udpPort: laddr.udpPort });
    let ev = await cch.getCmEvent({ timeoutMs: 5000 });
    expect(ev.eventName).toBe('ADDR_RESOLVED');
    cid.resolveRoute();
    ev = await cch.getCmEvent({ timeoutMs: 5000 });
    expect(ev.eventName).toBe('ROUTE_RESOLVED');
    cid.createQp();
    cid.connect({ privateData: new TextEncoder().encode('hello from the client') });
    const req = await sch.getCmEvent({ timeoutMs: 5000 });
    expect(req.event).toBe(CmEventType.CONNECT_REQUEST);
    expect(req.listenId).toBe(lid);
    expect(new TextDecoder().decode(req.conn!.privateData.subarray(0, 21))).toBe('hello from the client');
    expect(req.conn!.privateData.length).toBe(56);
    const sid = req.id;
    sid.createQp();
    sid.accept({ privateData: new TextEncoder().encode('welcome') });
    const est = await cch.getCmEvent({ timeoutMs: 5000 });
    expect(est.eventName).toBe('ESTABLISHED');
    expect(new TextDecoder().decode(est.conn!.privateData.subarray(0, 7))).toBe('welcome');
    const est2 = await sch.getCmEvent({ timeoutMs: 5000 });
    expect(est2.eventName).toBe('ESTABLISHED');
    expect(est2.id).toBe(sid);
    expect(cid.localAddr!.udpPort).toBe(b.port);
    expect(sid.peerAddr).toEqual({ address: '127.0.0.1', port: cid.localAddr!.port, udpPort: b.port });

    // Data over the CM-driven QPs.
    const mr = regMr(sid.pd!, 4096, Access.LOCAL_WRITE);
    const cmr = regMr(cid.pd!, 4096, Access.LOCAL_WRITE);
    cmr.buf.set([1, 2, 3, 4], 0);
    sid.qp!.postRecv({ wrId: 1, sgList: [mr.sge(0, 4096)] });
    cid.qp!.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [cmr.sge(0, 4)] });
    const wc = await sid.recvCq!.next({ throwOnError: true });
    expect(wc.byteLen).toBe(4);
    expect([...mr.buf.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    await cid.sendCq!.next({ throwOnError: true });

    cid.disconnect();
    const d1 = await sch.getCmEvent({ timeoutMs: 5000 });
    expect(d1.eventName).toBe('DISCONNECTED');
    sid.disconnect();
    const d2 = await cch.getCmEvent({ timeoutMs: 5000 });
    expect(d2.eventName).toBe('DISCONNECTED');
    expect((await cch.getCmEvent({ timeoutMs: 5000 })).eventName).toBe('TIMEWAIT_EXIT');
    expect((await sch.getCmEvent({ timeoutMs: 5000 })).eventName).toBe('TIMEWAIT_EXIT');
    // A QP (or PD, CQ, MR) the user still holds keeps the device's context open, and it shows.
    for (const id of [cid, sid, lid]) id.destroy();
    expect(cmResources().devices).toBe(2);
    mr.dereg();
    cmr.dereg();
    for (const id of [cid, sid, lid]) id.destroyQp();
    sch.destroy();
    cch.destroy();
    expect(cmResources()).toEqual({ devices: 0, ids: 0, timers: 0, connections: 0, listeners: 0 });
  });

  it('promise API: connect/listen with private data both ways, then close', async () => {
    const [a, b] = await pair();
    const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name });
    const server = (async () => {
      for await (const req of l) {
        expect(new TextDecoder().decode(req.privateData.subarray(0, 4))).toBe('ping');
        return req.accept({ privateData: new TextEncoder().encode('pong') });
      }
      throw new Error('listener ended');
    })();
    const c = await connect({ ...l.address }, { ...FAST, device: b.name, privateData: new TextEncoder().encode('ping'), initiatorDepth: 2, responderResources: 3, rnrRetryCount: 5 });
    expect(new TextDecoder().decode(c.privateData.subarray(0, 4))).toBe('pong');
    const s = await server;
    // The QPs were moved to RTS with what REQ and REP negotiated.
    const ca = c.qp.queryQp();
    const sa = s.qp.queryQp();
    expect([ca.destQpNum, sa.destQpNum]).toEqual([s.qp.qpNum, c.qp.qpNum]);
    expect([ca.sqPsn, ca.rqPsn]).toEqual([sa.rqPsn, sa.sqPsn]);
    expect([ca.maxRdAtomic, ca.maxDestRdAtomic, sa.maxRdAtomic, sa.maxDestRdAtomic]).toEqual([2, 3, 3, 2]);
    expect(sa.rnrRetry).toBe(5);
    expect(ca.timeout).toBe(14);
    await Promise.all([c.close(), s.disconnected.then(() => s.close())]);
    await l.close();
    await until(() => cmResources().devices === 0, 5000, 'devices released');
    expect(cmResources()).toEqual({ devices: 0, ids: 0, timers: 0, connections: 0, listeners: 0 });
  });

  it('reject with private data and a reason; no listener is REJ INVALID_SERVICE_ID', async () => {
    const [a] = await pair();
    const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name });
    void (async () => {
      for await (const req of l) req.reject(new TextEncoder().encode('go away'), RejReason.NO_RESOURCES);
    })();
    const err = (await connect(l.address, FAST).catch((e: unknown) => e)) as ConnectionRejectedError;
    expect(err).toBeInstanceOf(ConnectionRejectedError);
    expect(err.reasonName).toBe('NO_RESOURCES');
    expect(new TextDecoder().decode(err.privateData!.subarray(0, 7))).toBe('go away');
    const nobody = (await connect({ ...l.address, port: l.address.port + 1 }, FAST).catch((e: unknown) => e)) as ConnectionRejectedError;
    expect(nobody).toBeInstanceOf(ConnectionRejectedError);
    expect(nobody.reason).toBe(RejReason.INVALID_SERVICE_ID);
    await l.close();
  });

  it('UDP port space: SIDR learns the QPN and Q_Key; unknown service is SIDR_UNSUPPORTED', async () => {
    const [a] = await pair();
    const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name, portSpace: PortSpace.UDP });
    const served = (async () => {
      for await (const req of l) return req.accept({ privateData: new TextEncoder().encode('ud ok') });
      throw new Error('no request');
    })();
    const c = await connect(l.address, { ...FAST, portSpace: PortSpace.UDP });
    const s = await served;
    expect(c.ud!.qpNum).toBe(s.qp.qpNum);
    expect(c.ud!.qkey).toBe(0x01234567);
    expect(new TextDecoder().decode(c.privateData.subarray(0, 5))).toBe('ud ok');
    // What SIDR learned is enough to send: an AH from ahAttr, the QPN and the Q_Key.
    const ah = createAh(c.pd, c.ud!.ahAttr);
    const smr = regMr(s.pd, 4096, Access.LOCAL_WRITE);
    const cmr = regMr(c.pd, 64, Access.LOCAL_WRITE);
    cmr.buf.set(new TextEncoder().encode('datagram'));
    s.qp.postRecv({ wrId: 1, sgList: [smr.sge(0, 4096)] });
    c.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [cmr.sge(0, 8)], ud: { ah, remoteQpn: c.ud!.qpNum, remoteQkey: c.ud!.qkey } });
    const wc = await s.recvCq.next({ throwOnError: true });
    expect(new TextDecoder().decode(smr.buf.subarray(40, wc.byteLen))).toBe('datagram');
    await c.sendCq.next({ throwOnError: true });
    ah.destroy();
    smr.dereg();
    cmr.dereg();
    const bad = await connect({ ...l.address, port: l.address.port + 1 }, { ...FAST, portSpace: PortSpace.UDP }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(SidrError);
    expect((bad as SidrError).statusName).toBe('SIDR_UNSUPPORTED');
    await c.close();
    await s.close();
    await l.close();
  });

  it('SDP port space: no rdma_cm header, all 92 bytes of REQ private data are the user\'s; librdmacm\'s limits are enforced', async () => {
    const [a, b] = await pair();
    const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name, portSpace: PortSpace.SDP });
    const hello = new Uint8Array(92).map((_, i) => i + 1);
    const served = (async () => {
      for await (const req of l) {
        expect([...req.privateData]).toEqual([...hello]);
        return req.accept();
      }
      throw new Error('no request');
    })();
    const c = await connect(l.address, { ...FAST, device: b.name, portSpace: PortSpace.SDP, privateData: hello });
    const s = await served;
    await Promise.all([c.close(), s.disconnected.then(() => s.close())]);
    await expect(connect(l.address, { ...FAST, device: b.name, portSpace: PortSpace.SDP, privateData: new Uint8Array(93) })).rejects.toThrow(InvalidArgumentError);
    await expect(connect(l.address, { ...FAST, device: b.name, privateData: new Uint8Array(57) })).rejects.toThrow(/at most 56/);
    await l.close();
  });

  it("binds '::' to an IPv6 device when there is one, else to an IPv4 one; a bound id refuses the other IP version at once", async () => {
    const d4 = device('127.0.0.1');
    cleanup.push(() => d4.remove());
    const ch = createEventChannel();
    cleanup.push(() => ch.destroy());
    const v4 = createId(ch);
    cleanup.push(() => v4.destroy());
    await v4.bindAddr({ address: '::', port: 0 });
    expect(v4.localAddr!.address).not.toContain(':');
    v4.resolveAddr({ address: '::1', port: 9 });
    const ev = await ch.getCmEvent({ timeoutMs: 2000 });
    expect(ev.eventName).toBe('ADDR_ERROR');
    expect(ev.reason).toMatch(/IPv4.*::1 is IPv6/);
    // The id is still bound and usable for its own family.
    v4.resolveAddr({ address: '127.0.0.1', port: 9 });
    expect((await ch.getCmEvent({ timeoutMs: 2000 })).eventName).toBe('ADDR_RESOLVED');

    const d6 = device('::1');
    cleanup.push(() => d6.remove());
    const v6 = createId(ch);
    cleanup.push(() => v6.destroy());
    await v6.bindAddr({ address: '::', port: 0 });
    expect(v6.localAddr!.address).toBe('::1');
  });

  it('IPv6: the rdma_cm header carries the 16-byte addresses', async () => {
    const a = device('::1');
    const b = device('::1');
    cleanup.push(() => a.remove(), () => b.remove());
    const l = await listen({ address: '::1', port: 0 }, { ...FAST, device: a.name });
    const served = (async () => {
      for await (const req of l) {
        expect(req.peerAddr!.address).toBe('::1');
        return req.accept();
      }
      throw new Error('no request');
    })();
    const c = await connect(l.address, { ...FAST, device: b.name });
    const s = await served;
    expect(s.peerAddr!.port).toBe(c.localAddr!.port);
    await Promise.all([c.close(), s.disconnected.then(() => s.close())]);
    await l.close();
  });
});

describe('multicast (rdma_join_multicast)', () => {
  it('joins a group, names it in MULTICAST_JOIN for createAh, attaches the QP, and leaves it', async () => {
    const [a, b] = await pair();
    const group = `239.${(process.pid >> 8) & 0xff}.${process.pid & 0xff}.${1 + Math.floor(Math.random() * 250)}`;
    const ch = createEventChannel();
    const ids = [createId(ch, { ...FAST, device: a.name, portSpace: PortSpace.UDP }), createId(ch, { ...FAST, device: b.name, portSpace: PortSpace.UDP })];
    cleanup.push(() => {
      for (const id of ids) {
        id.destroyQp();
        id.destroy();
      }
    });
    const [tx, rx] = ids as [(typeof ids)[0], (typeof ids)[0]];
    for (const id of ids) await id.bindAddr({ address: '127.0.0.1', port: 0 });
    rx.createQp();
    tx.createQp();
    const ctx = { mine: true };
    rx.joinMulticast({ address: group, port: 0 }, ctx);
    const joined = await ch.getCmEvent({ timeoutMs: 5000 });
    expect([joined.eventName, joined.id, joined.context]).toEqual(['MULTICAST_JOIN', rx, ctx]);
    expect(joined.ud!.qpNum).toBe(0xffffff);
    expect(joined.ud!.ahAttr.dgid.subarray(12).join('.')).toBe(group);

    const rmr = regMr(rx.pd!, 4096, Access.LOCAL_WRITE);
    const smr = regMr(tx.pd!, 64, Access.LOCAL_WRITE);
    rx.qp!.postRecv([{ wrId: 1, sgList: [rmr.sge(0, 2048)] }, { wrId: 2, sgList: [rmr.sge(2048, 2048)] }]);
    const ah = createAh(tx.pd!, joined.ud!.ahAttr);
    smr.buf.set(new TextEncoder().encode('group news'));
    const send = () => tx.qp!.postSend({ wrId: 9, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [smr.sge(0, 10)], ud: { ah, remoteQpn: joined.ud!.qpNum, remoteQkey: joined.ud!.qkey } });
    send();
    expect((await tx.sendCq!.next({ throwOnError: true })).wrId).toBe(9);
    const got = await rx.recvCq!.next({ throwOnError: true });
    expect([got.wrId, got.byteLen, got.srcQp]).toEqual([1, 50, tx.qp!.qpNum]);
    expect(new TextDecoder().decode(rmr.buf.subarray(40, 50))).toBe('group news');

    // Left: the next send reaches nobody.
    rx.leaveMulticast({ address: group, port: 0 });
    expect(() => rx.leaveMulticast({ address: group, port: 0 })).toThrow(InvalidArgumentError);
    send();
    await tx.sendCq!.next({ throwOnError: true });
    await expect(rx.recvCq!.next({ signal: AbortSignal.timeout(200) })).rejects.toThrow(/timeout|aborted/i);

    // What rdma_join_multicast refuses.
    expect(() => rx.joinMulticast({ address: '127.0.0.1', port: 0 })).toThrow(/not a multicast address/);
    const tcp = createId(ch, { ...FAST, device: a.name });
    cleanup.push(() => tcp.destroy());
    await tcp.bindAddr({ address: '127.0.0.1', port: 0 });
    expect(() => tcp.joinMulticast({ address: group, port: 0 })).toThrow(/UDP port space/);
    const unbound = createId(ch, { ...FAST, portSpace: PortSpace.UDP });
    cleanup.push(() => unbound.destroy());
    expect(() => unbound.joinMulticast({ address: group, port: 0 })).toThrow(/bind or resolve/);
    // A group the device cannot join (IPv6 on an IPv4 device): MULTICAST_ERROR.
    rx.joinMulticast({ address: 'ff15::1234', port: 0 });
    const failed = await ch.getCmEvent({ timeoutMs: 5000 });
    expect(failed.eventName).toBe('MULTICAST_ERROR');
    expect(failed.reason).toMatch(/not an IPv4 multicast group/);
    ah.destroy();
    rmr.dereg();
    smr.dereg();
  });
});
