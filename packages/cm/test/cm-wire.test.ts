// The CM on the wire: bit-exact MADs (codec round trips, the IBTA offsets),
// tshark decoding a captured session as IB CM with no malformed packet, and
// fuzzed or truncated MADs dropped and counted without harming the CM.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { gsiCounters, type SoftDevice } from '@ibal/hca';
import { Access, QpAttrMask as M, QpState, QpType, SendFlags, WrOpcode, createAh, createQp, openDevice, regMr, registerMadAgent } from '@ibal/verbs';
import {
  CmAttr,
  PortSpace,
  RejReason,
  cmCounters,
  cmResources,
  connect,
  decodeDrep,
  decodeDreq,
  decodeMra,
  decodeRej,
  decodeRep,
  decodeReq,
  decodeRtu,
  decodeSidrRep,
  decodeSidrReq,
  encodeDrep,
  encodeDreq,
  encodeMra,
  encodeRej,
  encodeRep,
  encodeReq,
  encodeRtu,
  encodeSidrRep,
  encodeSidrReq,
  listen,
  newReq,
  readMadHeader,
  serviceId,
} from '../src/index.js';
import { FAST, device, until } from './helpers.js';

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const bits = (n: number) => fc.integer({ min: 0, max: (1 << n) - 1 });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe('MAD codec', () => {
  it('REQ fields sit at IBTA table 106 offsets (MAD header 24 bytes, then the message)', () => {
    const r = newReq();
    r.localCommId = 0x11223344;
    r.serviceId = serviceId(PortSpace.TCP, 0x1234);
    r.localQpn = 0xabcdef;
    r.responderResources = 4;
    r.startingPsn = 0x123456;
    r.retryCount = 7;
    r.localCmResponseTimeout = 20;
    r.pathMtu = 5;
    r.rnrRetryCount = 6;
    r.maxCmRetries = 15;
    r.primary.localAckTimeout = 14;
    r.privateData.set([0xaa, 0xbb], 0);
    const m = encodeReq(r, 0x0102030405060708n);
    expect(m.length).toBe(256);
    expect([...m.subarray(0, 4)]).toEqual([1, 0x07, 2, 0x03]);
    expect([...m.subarray(8, 16)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((m[16]! << 8) | m[17]!).toBe(CmAttr.REQ);
    expect([...m.subarray(24, 28)]).toEqual([0x11, 0x22, 0x33, 0x44]);
    expect([...m.subarray(32, 40)]).toEqual([0, 0, 0, 0, 0x01, 0x06, 0x12, 0x34]);
    expect([...m.subarray(56, 60)]).toEqual([0xab, 0xcd, 0xef, 4]);
    expect([...m.subarray(68, 72)]).toEqual([0x12, 0x34, 0x56, (20 << 3) | 7]);
    expect(m[74]).toBe((5 << 4) | 6);
    expect(m[75]! >> 4).toBe(15);
    expect(m[24 + 52 + 43]! >> 3).toBe(14);
    expect([...m.subarray(164, 166)]).toEqual([0xaa, 0xbb]);
  });

  it('every message round-trips through encode/decode', () => {
    fc.assert(
      fc.property(u32, u32, u24, u24, u8, u8, bits(5), bits(3), u64, bytes(196), u64, (lc, rc, qpn, psn, rr, id, t, rnr, guid, pd, tid) => {
        const rep = { localCommId: lc, remoteCommId: rc, localQkey: lc, localQpn: qpn, localEecn: psn, startingPsn: psn, responderResources: rr, initiatorDepth: id, targetAckDelay: t, failoverAccepted: rnr & 3, endToEndFlowControl: rnr & 1, rnrRetryCount: rnr, srq: 1, localCaGuid: guid, privateData: pd };
        expect(decodeRep(encodeRep(rep, tid))).toEqual(rep);
        expect(readMadHeader(encodeRep(rep, tid)).tid).toBe(tid);
        const rej = { localCommId: lc, remoteCommId: rc, messageRejected: rnr % 3, rejectedInfoLength: id & 0x7f, reason: rr, ari: pd.slice(0, 72), privateData: pd.slice(0, 148) };
        expect(decodeRej(encodeRej(rej, tid))).toEqual(rej);
        const mra = { localCommId: lc, remoteCommId: rc, messageMraed: rnr % 3, serviceTimeout: t, privateData: pd.slice(0, 196) };
        expect(decodeMra(encodeMra({ ...mra }, tid)).serviceTimeout).toBe(t);
        expect(decodeRtu(encodeRtu({ localCommId: lc, remoteCommId: rc, privateData: pd }, tid)).privateData.subarray(0, 196)).toEqual(pd);
        expect(decodeDreq(encodeDreq({ localCommId: lc, remoteCommId: rc, remoteQpn: qpn, privateData: pd }, tid)).remoteQpn).toBe(qpn);
        expect(decodeDrep(encodeDrep({ localCommId: lc, remoteCommId: rc, privateData: pd }, tid)).remoteCommId).toBe(rc);
        const sreq = { requestId: lc, pkey: rr << 8, serviceId: guid, privateData: pd.slice(0, 196) };
        const dsreq = decodeSidrReq(encodeSidrReq(sreq, tid));
        expect([dsreq.requestId, dsreq.pkey, dsreq.serviceId]).toEqual([lc, rr << 8, guid]);
        const srep = { requestId: lc, status: rnr, addInfoLength: id, qpn, serviceId: guid, qkey: rc, addInfo: pd.slice(0, 72), privateData: pd.slice(0, 136) };
        expect(decodeSidrRep(encodeSidrRep(srep, tid))).toEqual(srep);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(u32, u64, u24, u24, bits(5), bits(3), bits(4), bytes(92), (lc, sid, qpn, psn, t, r, mtu, pd) => {
        const req = newReq();
        Object.assign(req, { localCommId: lc, serviceId: sid, localQpn: qpn, startingPsn: psn, remoteCmResponseTimeout: t, localCmResponseTimeout: t, retryCount: r, rnrRetryCount: r, pathMtu: mtu, maxCmRetries: mtu, privateData: pd });
        req.primary.localAckTimeout = t;
        req.primary.flowLabel = qpn & 0xfffff;
        req.primary.sl = mtu;
        expect(decodeReq(encodeReq(req, 1n))).toEqual(req);
      }),
      { numRuns: 200 },
    );
  });
});

function hasTshark(): boolean {
  return spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
}

describe('on the wire', () => {
  it.skipIf(!hasTshark())('tshark decodes a captured session as IB CM: REQ with the rdma_cm IP header, MRA, REP, RTU, REJ, DREQ, DREP, SIDR; nothing malformed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-cm-cap-'));
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'cm.pcap');
    process.env.IBAL_PCAP = file;
    const ports = new Set<number>();
    let clientPort = 0;
    let clientQpn = 0;
    let listenPort = 0;
    try {
      const a = device();
      const b = device();
      cleanup.push(() => a.remove(), () => b.remove());
      const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name });
      listenPort = l.address.port;
      const server = (async () => {
        let n = 0;
        for await (const req of l) {
          if (n++ === 0) {
            // Sit on the first request long enough for the client to retry it: the duplicate gets an MRA.
            await new Promise((r) => setTimeout(r, 3 * 64 + 50));
            return req.accept({ privateData: new TextEncoder().encode('rep') });
          }
        }
        throw new Error('listener ended');
      })();
      const c = await connect(l.address, { ...FAST, maxCmRetries: 8, device: b.name, privateData: new TextEncoder().encode('req') });
      clientPort = c.localAddr!.port;
      ports.add(a.port!).add(b.port!);
      clientQpn = c.qp.qpNum;
      const s = await server;
      await Promise.all([c.close(), s.disconnected.then(() => s.close())]);
      // REJ: nobody listens on this port (the listening device's CM answers for it).
      const err = await connect({ ...l.address, port: listenPort + 1 }, { ...FAST, device: b.name }).catch((e: unknown) => e);
      expect((err as { reason?: number }).reason).toBe(RejReason.INVALID_SERVICE_ID);
      await l.close();
      // SIDR.
      const ul = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name, portSpace: PortSpace.UDP });
      const us = (async () => {
        for await (const req of ul) return req.accept();
        throw new Error('no SIDR request');
      })();
      const uc = await connect(ul.address, { ...FAST, device: b.name, portSpace: PortSpace.UDP });
      ports.add(a.port!).add(b.port!);
      await uc.close();
      await (await us).close();
      await ul.close();
    } finally {
      delete process.env.IBAL_PCAP;
    }
    const decodeAs = [...ports].flatMap((p) => ['-d', `udp.port==${p},infiniband`]);
    const fields = ['infiniband.mad.attributeid', '_ws.malformed', '_ws.expert.severity', 'infiniband.cm.req.serviceid.dport', 'infiniband.cm.req.ip_cm.sport', 'infiniband.cm.req.ip_cm.sip4', 'infiniband.cm.req.localqpn', 'infiniband.cm.rej.reason', 'infiniband.mad.mgmtclass'];
    const out = spawnSync('tshark', ['-n', '-r', file, ...decodeAs, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const rows = out.stdout.trim().split('\n').map((l) => l.split('\t'));
    const attrs = new Set<number>();
    for (const [attr, malformed, severity, dport, sport, sip4, qpn, reason, cls] of rows) {
      expect(malformed ?? '').toBe('');
      expect(severity ?? '').not.toMatch(/8388608/);
      if (!attr) continue; // data packets of the connection
      expect(Number(cls)).toBe(0x07);
      const id = Number(attr);
      attrs.add(id);
      if (id === CmAttr.REQ) {
        expect(Number(dport)).toBe(listenPort === Number(dport) ? listenPort : listenPort + 1);
        expect(sip4).toBe('127.0.0.1');
        if (Number(dport) === listenPort) {
          expect(Number(sport)).toBe(clientPort);
          expect(Number(qpn)).toBe(clientQpn);
        }
      }
      if (id === CmAttr.REJ) expect(Number(reason)).toBe(RejReason.INVALID_SERVICE_ID);
    }
    expect([...attrs].sort((x, y) => x - y)).toEqual([CmAttr.REQ, CmAttr.MRA, CmAttr.REJ, CmAttr.REP, CmAttr.RTU, CmAttr.DREQ, CmAttr.DREP, CmAttr.SIDR_REQ, CmAttr.SIDR_REP]);
    await until(() => cmResources().devices === 0, 5000, 'devices released');
  });

  it('fuzzed and truncated MADs are dropped and counted; the CM keeps serving', async () => {
    const a = device();
    const x = device();
    cleanup.push(() => a.remove(), () => x.remove());
    const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name });
    const served = (async () => {
      for await (const req of l) {
        if (new TextDecoder().decode(req.privateData.subarray(0, 4)) === 'real') return req.accept();
        req.reject();
      }
      throw new Error('listener ended');
    })();
    const before = cmCounters();
    const gsiBefore = { ...gsiCounters(a as SoftDevice) };
    // A port of our own on another device speaks raw MADs to the listener's CM.
    const ctx = await openDevice(x.name);
    cleanup.push(() => ctx.close());
    const agent = registerMadAgent(ctx, { mgmtClass: 0x07, classVersion: 2 }, () => {});
    cleanup.push(() => agent.unregister());
    const dest = { dgid: ctx.queryGid(1, 0), udpPort: a.port, remoteQpn: 1, remoteQkey: 0x80010000 };
    // Real messages to mutate, and pure noise with a valid header.
    const req = newReq();
    req.localCommId = 7;
    req.serviceId = serviceId(PortSpace.TCP, l.address.port);
    const seeds = [encodeReq(req, 1n), encodeRep({ ...decodeRep(new Uint8Array(256)), localCommId: 9 }, 2n), encodeDreq({ localCommId: 1, remoteCommId: 2, remoteQpn: 3, privateData: new Uint8Array(0) }, 3n), encodeSidrReq({ requestId: 1, pkey: 0xffff, serviceId: serviceId(PortSpace.UDP, 1), privateData: new Uint8Array(0) }, 4n)];
    const rnd = fc.sample(fc.tuple(fc.nat(seeds.length - 1), fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), u8), { minLength: 1, maxLength: 12 }), fc.boolean(), bytes(232)), { numRuns: 1500, seed: 42 });
    let sent = 0;
    for (const [seed, flips, noise, body] of rnd) {
      const m = Uint8Array.from(seeds[seed]!);
      if (noise) m.set(body, 24);
      for (const [at, v] of flips) m[at] = v;
      agent.send(m, dest);
      if (++sent % 100 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    // Truncated and oversized MADs: a UD QP with the GSI's controlled Q_Key sends them to QP1.
    const pd = ctx.allocPd();
    const cq = ctx.createCq(64);
    const qp = createQp(pd, { qpType: QpType.UD, sendCq: cq, recvCq: cq, cap: { maxSendWr: 32, maxRecvWr: 1 } });
    qp.modifyQp({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x80010000 }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
    qp.modifyQp({ qpState: QpState.RTR }, M.STATE);
    qp.modifyQp({ qpState: QpState.RTS, sqPsn: 0 }, M.STATE | M.SQ_PSN);
    const mr = regMr(pd, 1024, Access.LOCAL_WRITE);
    mr.buf.set(seeds[0]!, 0);
    const ah = createAh(pd, { dgid: ctx.queryGid(1, 0), portNum: 1, udpPort: a.port });
    const lengths = [0, 1, 23, 24, 100, 255, 257, 512];
    for (const [i, len] of lengths.entries()) {
      qp.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: len ? [mr.sge(0, len)] : [], ud: { ah, remoteQpn: 1, remoteQkey: 0x80010000 } });
    }
    for (let i = 0; i < lengths.length; i++) await cq.next({ throwOnError: true });
    cleanup.push(() => {
      ah.destroy();
      mr.dereg();
      qp.destroy();
      cq.destroy();
      pd.dealloc();
    });
    await until(() => gsiCounters(a as SoftDevice).rxBadLength - gsiBefore.rxBadLength >= lengths.length, 5000, 'truncated MADs counted');
    // Every fuzzed MAD is accounted for: refused by the GSI (version, class) or taken by the CM.
    const gsiTaken = () => {
      const g = gsiCounters(a as SoftDevice);
      return g.rxBadVersion - gsiBefore.rxBadVersion + (g.rxNoAgent - gsiBefore.rxNoAgent);
    };
    await until(() => cmCounters().rxMads - before.rxMads + gsiTaken() >= sent, 20_000, 'fuzzed MADs received');
    const after = cmCounters();
    const dropped = after.rxBadHeader + after.rxUnknownAttr + after.rxUnmatched + after.rxInvalid + after.rxBadState + after.rejectsSent + after.duplicates - (before.rxBadHeader + before.rxUnknownAttr + before.rxUnmatched + before.rxInvalid + before.rxBadState + before.rejectsSent + before.duplicates);
    expect(dropped).toBeGreaterThan(sent / 2);
    // And the CM still does its job.
    const c = await connect(l.address, { ...FAST, privateData: new TextEncoder().encode('real') });
    const s = await served;
    await Promise.all([c.close(), s.disconnected.then(() => s.close())]);
    await l.close();
  });
});
