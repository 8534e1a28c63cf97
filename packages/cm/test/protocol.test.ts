// The CM's protocol as a peer sees it: a raw MAD agent on another device
// plays the active side message by message, so retransmission, duplicates,
// MRA, stale connections and timeouts are checked without luck or timing.
import { afterEach, describe, expect, it } from 'vitest';
import { openDevice, registerMadAgent, type MadAddress } from '@ibal/verbs';
import {
  CmAttr,
  CmTimeoutError,
  MsgRejected,
  PortSpace,
  RejReason,
  cmCounters,
  cmResources,
  decodeDrep,
  decodeDreq,
  decodeMra,
  decodeRej,
  decodeRep,
  encodeDreq,
  encodeDrep,
  encodeReq,
  encodeRtu,
  listen,
  newReq,
  readMadHeader,
  serviceId,
  writeCmaHeader,
  type Connection,
} from '../src/index.js';
import { FAST, device, until } from './helpers.js';

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(listenOpts: Record<string, unknown> = {}) {
  const a = device();
  const x = device();
  cleanup.push(() => a.remove(), () => x.remove());
  const l = await listen({ address: '127.0.0.1', port: 0 }, { ...FAST, device: a.name, ...listenOpts });
  cleanup.push(() => l.close());
  const ctx = await openDevice(x.name);
  const got: Uint8Array[] = [];
  const agent = registerMadAgent(ctx, { mgmtClass: 0x07, classVersion: 2 }, (m) => got.push(m));
  cleanup.push(() => {
    agent.unregister();
    ctx.close();
  });
  const dest: MadAddress = { dgid: ctx.queryGid(1, 0), udpPort: l.address.udpPort, remoteQpn: 1, remoteQkey: 0x80010000 };
  const gid = ctx.queryGid(1, 0);
  const req = newReq();
  req.localCommId = 0x1234;
  req.serviceId = serviceId(PortSpace.TCP, l.address.port);
  req.localCaGuid = 0xabcdefn;
  req.localQpn = 0x77;
  req.responderResources = 1;
  req.initiatorDepth = 1;
  req.remoteCmResponseTimeout = 14;
  req.localCmResponseTimeout = 14;
  req.startingPsn = 100;
  req.retryCount = 7;
  req.rnrRetryCount = 7;
  req.pathMtu = 3;
  req.maxCmRetries = 3;
  req.primary.localGid = gid;
  req.primary.remoteGid = gid;
  req.primary.localAckTimeout = 14;
  writeCmaHeader(req.privateData, { ipVersion: 4, srcPort: 5555, srcAddress: '127.0.0.1', dstAddress: '127.0.0.1' });
  req.privateData.set(Buffer.from('raw active'), 36);
  /** The next MAD of attribute `attr` to arrive (consumed), within `ms`. */
  const take = async (attr: number, ms = 5000): Promise<Uint8Array> => {
    let found: Uint8Array | undefined;
    await until(() => {
      const i = got.findIndex((m) => readMadHeader(m).attrId === attr);
      if (i >= 0) found = got.splice(i, 1)[0];
      return found !== undefined;
    }, ms, `a ${attr.toString(16)} MAD`);
    return found!;
  };
  const send = (m: Uint8Array) => agent.send(m, dest);
  return { a, l, req, send, take, got };
}

describe('CM protocol, message by message', () => {
  it('REP answers the REQ with its TID; a repeated REQ gets the stored REP bit for bit; RTU establishes; a REQ from the same QPN is a stale connection', async () => {
    const { l, req, send, take } = await setup();
    const accepted = (async () => {
      for await (const r of l) {
        expect(Buffer.from(r.privateData.subarray(0, 10)).toString()).toBe('raw active');
        expect(r.peerAddr!.port).toBe(5555);
        return r.accept({ privateData: Buffer.from('ok') });
      }
      throw new Error('no request');
    })();
    send(encodeReq(req, 0x51n));
    const rep1 = await take(CmAttr.REP);
    expect(readMadHeader(rep1).tid).toBe(0x51n);
    const rep = decodeRep(rep1);
    expect(rep.remoteCommId).toBe(0x1234);
    expect(Buffer.from(rep.privateData.subarray(0, 2)).toString()).toBe('ok');
    expect(rep.responderResources).toBe(1);
    const dupsBefore = cmCounters().duplicates;
    send(encodeReq(req, 0x51n));
    const rep2 = await take(CmAttr.REP);
    expect(Buffer.from(rep2).equals(Buffer.from(rep1))).toBe(true);
    expect(cmCounters().duplicates).toBe(dupsBefore + 1);
    send(encodeRtu({ localCommId: 0x1234, remoteCommId: rep.localCommId, privateData: new Uint8Array(0) }, 0x51n));
    const conn: Connection = await accepted;
    expect(conn.qp.queryQp().destQpNum).toBe(0x77);
    expect(conn.qp.queryQp().rqPsn).toBe(100);

    // The same peer QPN asks again under a new comm ID: it has lost the old connection.
    send(encodeReq({ ...req, localCommId: 0x5678 }, 0x52n));
    const rej = decodeRej(await take(CmAttr.REJ));
    expect(rej.reason).toBe(RejReason.STALE_CONN);
    expect(rej.remoteCommId).toBe(0x5678);
    expect(rej.messageRejected).toBe(MsgRejected.REQ);
    // ...and the stale connection is torn down: DISCONNECTED locally, a DREQ to the peer.
    const dreq = decodeDreq(await take(CmAttr.DREQ));
    expect(dreq.remoteCommId).toBe(0x1234);
    expect(dreq.remoteQpn).toBe(0x77);
    expect((await conn.disconnected).eventName).toBe('DISCONNECTED');
    send(encodeDrep({ localCommId: 0x1234, remoteCommId: dreq.localCommId, privateData: new Uint8Array(0) }, 0x53n));
    await conn.close();
  });

  it('a REQ the user has not answered yet gets an MRA when repeated; the listener then accepts', async () => {
    const { l, req, send, take } = await setup({ mraServiceTimeout: 17 });
    send(encodeReq(req, 0x61n));
    const first = await l.next();
    send(encodeReq(req, 0x61n));
    const mra = decodeMra(await take(CmAttr.MRA));
    expect(mra.messageMraed).toBe(MsgRejected.REQ);
    expect(mra.serviceTimeout).toBe(17);
    expect(mra.remoteCommId).toBe(0x1234);
    const accepting = first!.accept();
    const rep = decodeRep(await take(CmAttr.REP));
    send(encodeRtu({ localCommId: 0x1234, remoteCommId: rep.localCommId, privateData: new Uint8Array(0) }, 0x61n));
    const c = await accepting;
    // We answer its DREQ at once, so the close is quick.
    const closing = c.close();
    const dreq = decodeDreq(await take(CmAttr.DREQ));
    send(encodeDrep({ localCommId: 0x1234, remoteCommId: dreq.localCommId, privateData: new Uint8Array(0) }, 0x62n));
    await closing;
  });

  it('an active side that never sends the RTU: REP retransmitted maxCmRetries times, then REJ TIMEOUT and UNREACHABLE', async () => {
    const { l, req, send, take } = await setup();
    send(encodeReq(req, 0x71n));
    const r = await l.next();
    const result = r!.accept().catch((e: unknown) => e);
    for (let i = 0; i <= req.maxCmRetries; i++) await take(CmAttr.REP);
    const rej = decodeRej(await take(CmAttr.REJ));
    expect(rej.reason).toBe(RejReason.TIMEOUT);
    expect(rej.messageRejected).toBe(MsgRejected.REP);
    expect(await result).toBeInstanceOf(CmTimeoutError);
  });

  it('DREQ for an unknown connection is answered with DREP; ClassPortInfo GET is answered', async () => {
    const { send, take } = await setup();
    send(encodeDreq({ localCommId: 0x99, remoteCommId: 0x4242, remoteQpn: 5, privateData: new Uint8Array(0) }, 0x81n));
    const drep = decodeDrep(await take(CmAttr.DREP));
    expect(drep.remoteCommId).toBe(0x99);
    const get = new Uint8Array(256);
    get.set([1, 0x07, 2, 0x01], 0);
    get[17] = CmAttr.CLASS_PORT_INFO;
    send(get);
    const resp = await take(CmAttr.CLASS_PORT_INFO);
    const h = readMadHeader(resp);
    expect(h.method).toBe(0x81);
    expect(h.status).toBe(0);
    expect(resp[25]).toBe(2);
  });

  it('nothing is held once every id is gone', async () => {
    await until(() => cmResources().devices === 0, 5000, 'devices released');
    expect(cmResources()).toEqual({ devices: 0, ids: 0, timers: 0, connections: 0, listeners: 0 });
  });
});
