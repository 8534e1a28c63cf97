import { Access, SendFlags, WrOpcode, regMr, type MR } from '@ibal/verbs';
import { afterEach, describe, expect, it } from 'vitest';
import { SdpConnection, type ConnectionOptions } from '../src/connection.js';
import { SdpProtocolError, SdpSocketError } from '../src/errors.js';
import { BSDH_SIZE, Mid, writeBsdh } from '../src/protocol/bsdh.js';
import { RDMA_RD_COMPL_SIZE, SRC_AVAIL_HEADER_SIZE, writeRdmaRdCompl, writeSrcAvail } from '../src/protocol/messages.js';
import { Collector } from './helpers/collector.js';
import { qpPair, type QpPair } from './helpers/qp-pair.js';
import { seeded } from '@ibal/tooling/seeded';

// A peer that breaks SDP: the connection is driven from the other end of its
// QP by hand, with messages no SdpConnection would send. Each must end the
// connection with ECONNRESET (an SdpProtocolError as its cause, or the READ's
// completion status), after every byte that came before it, and nothing may
// throw out of the connection or stop the process.

const OPTS: ConnectionOptions = { rxBufs: 8, rxBufSize: 4096, txBufs: 8, zcopyThreshold: 32 * 1024 };
const SLOT = 4096;
const RAW_RECVS = 32;

let pair: QpPair | undefined;
let conn: SdpConnection | undefined;
let rawMr: MR | undefined;

function teardown(): void {
  conn?.close();
  pair?.destroy();
  conn?.releaseMemory();
  rawMr?.dereg();
  pair?.dealloc();
  pair = conn = rawMr = undefined;
}
afterEach(teardown);

/** The connection under test on one QP; on the other, raw SENDs of whatever bytes a case writes. */
async function hostile() {
  pair = await qpPair();
  const sink = new Collector();
  conn = new SdpConnection(pair.b, sink, OPTS);
  // Memory the raw side sends from, receives the connection's messages into, and lets it READ.
  const mr = (rawMr = regMr(pair.a.pd, 2 << 20, Access.LOCAL_WRITE | Access.REMOTE_READ));
  for (let i = 0; i < RAW_RECVS; i++) pair.a.qp.postRecv({ wrId: 1000 + i, sgList: [mr.sge((1 << 20) + i * SLOT, SLOT)] });
  conn.start({ bufs: RAW_RECVS, rcvSz: SLOT });
  let mseq = 0;
  let slot = 0;
  const a = pair.a;
  return {
    sink,
    mr,
    /** The next MSeq, as a well-behaved peer would number its message. */
    mseq: () => ++mseq,
    /** Sends `len` bytes that `fill` writes (at the offset it is given) as one SEND. */
    send(len: number, fill: (buf: Uint8Array, at: number) => void): void {
      const at = (slot++ % 64) * SLOT;
      fill(mr.buf, at);
      a.qp.postSend({ wrId: slot, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [mr.sge(at, len)] });
    },
    data(text: string, mseqValue = ++mseq): void {
      const bytes = Buffer.from(text);
      this.send(BSDH_SIZE + bytes.length, (buf, at) => {
        writeBsdh(buf, at, Mid.Data, 0, RAW_RECVS, BSDH_SIZE + bytes.length, mseqValue, 0);
        buf.set(bytes, at + BSDH_SIZE);
      });
    },
  };
}

async function failure(sink: Collector): Promise<SdpSocketError> {
  await sink.until(() => sink.error !== undefined, 20_000);
  const err = sink.error as SdpSocketError;
  expect(err).toBeInstanceOf(SdpSocketError);
  expect(err.code).toBe('ECONNRESET');
  return err;
}

async function protocolFailure(sink: Collector, message: RegExp): Promise<void> {
  const err = await failure(sink);
  expect(err.cause).toBeInstanceOf(SdpProtocolError);
  expect((err.cause as Error).message).toMatch(message);
}

describe('SDP against a peer that breaks the protocol', () => {
  it('refuses a message shorter than a BSDH, after the data before it', async () => {
    const p = await hostile();
    p.data('before');
    p.send(8, (buf, at) => buf.fill(0xee, at, at + 8));
    await protocolFailure(p.sink, /shorter than the 16-byte BSDH/);
    expect(Buffer.concat(p.sink.chunks).toString()).toBe('before');
  });

  it('refuses a BSDH whose Len disagrees with what arrived', async () => {
    const p = await hostile();
    p.send(100, (buf, at) => writeBsdh(buf, at, Mid.Data, 0, RAW_RECVS, 60, p.mseq(), 0));
    await protocolFailure(p.sink, /BSDH.Len 60 does not match the 100 bytes/);
  });

  it('refuses a skipped or repeated MSeq', async () => {
    const p = await hostile();
    p.data('one');
    p.data('three', 3);
    await protocolFailure(p.sink, /MSeq 3 after 1/);
    expect(Buffer.concat(p.sink.chunks).toString()).toBe('one');
  });

  it('refuses a message it does not know', async () => {
    const p = await hostile();
    p.send(BSDH_SIZE, (buf, at) => writeBsdh(buf, at, 0x42, 0, RAW_RECVS, BSDH_SIZE, p.mseq(), 0));
    await protocolFailure(p.sink, /unsupported message MID 0x42/);
  });

  it('refuses data after DisConn, and a second DisConn', async () => {
    const p = await hostile();
    p.send(BSDH_SIZE, (buf, at) => writeBsdh(buf, at, Mid.DisConn, 0, RAW_RECVS, BSDH_SIZE, p.mseq(), 0));
    p.data('late');
    await protocolFailure(p.sink, /Data after DisConn/);
    expect(p.sink.ended).toBe(true);

    const q = await replaced();
    q.send(BSDH_SIZE, (buf, at) => writeBsdh(buf, at, Mid.DisConn, 0, RAW_RECVS, BSDH_SIZE, q.mseq(), 0));
    q.send(BSDH_SIZE, (buf, at) => writeBsdh(buf, at, Mid.DisConn, 0, RAW_RECVS, BSDH_SIZE, q.mseq(), 0));
    await protocolFailure(q.sink, /a second DisConn/);
  });

  it('refuses an RdmaRdCompl for bytes it never advertised', async () => {
    const p = await hostile();
    p.send(RDMA_RD_COMPL_SIZE, (buf, at) => writeRdmaRdCompl(buf, at, RAW_RECVS, p.mseq(), 0, 4096));
    await protocolFailure(p.sink, /RdmaRdCompl for 4096 bytes matches no outstanding SrcAvail/);
  });

  it('refuses a SrcAvail whose in-line bytes pass its length', async () => {
    const p = await hostile();
    p.send(SRC_AVAIL_HEADER_SIZE + 64, (buf, at) => writeSrcAvail(buf, at, RAW_RECVS, p.mseq(), 0, { len: 10, rkey: p.mr.rkey, vaddr: p.mr.addr, inlineLen: 64 }));
    await failure(p.sink);
  });

  it.each([
    ['a wrong rkey', (mr: MR) => ({ rkey: (mr.rkey ^ 0x80) >>> 0, vaddr: mr.addr, len: 200_000 })],
    ['a range past the MR', (mr: MR) => ({ rkey: mr.rkey, vaddr: mr.addr + mr.length - 1000, len: 200_000 })],
    ['a length of 2 GiB', (mr: MR) => ({ rkey: mr.rkey, vaddr: mr.addr, len: 2 ** 31 - 1 })],
  ])('ends with the READ status when a SrcAvail names %s, after the in-line bytes and the data before', async (_, target) => {
    const p = await hostile();
    p.data('before');
    const sa = target(p.mr);
    p.send(SRC_AVAIL_HEADER_SIZE + 32, (buf, at) => {
      writeSrcAvail(buf, at, RAW_RECVS, p.mseq(), 0, { ...sa, inlineLen: 32 });
      buf.fill(0x61, at + SRC_AVAIL_HEADER_SIZE, at + SRC_AVAIL_HEADER_SIZE + 32);
    });
    const err = await failure(p.sink);
    expect(err.message).toMatch(/RDMA READ completed with (REM_ACCESS_ERR|REM_INV_REQ_ERR)/);
    expect(Buffer.concat(p.sink.chunks).toString().startsWith('before')).toBe(true);
  });

  it('survives random bytes: each message ends the connection cleanly or is taken as valid', async () => {
    const r = seeded(0x9e3779b9);
    let failed = 0;
    for (let round = 0; round < 20; round++) {
      const p = round === 0 ? await hostile() : await replaced();
      // A valid header with a random MID, flags, Bufs and tail, or bytes that are random throughout.
      const len = BSDH_SIZE + Math.floor(r() * 200);
      p.send(len, (buf, at) => {
        for (let i = 0; i < len; i++) buf[at + i] = Math.floor(r() * 256);
        if (r() < 0.7) writeBsdh(buf, at, Math.floor(r() * 256), Math.floor(r() * 256), Math.floor(r() * 64), len, p.mseq(), 0);
      });
      p.data('after');
      await p.sink.until(() => p.sink.error !== undefined || Buffer.concat(p.sink.chunks).toString().endsWith('after'), 20_000);
      if (p.sink.error) {
        failed++;
        expect((p.sink.error as SdpSocketError).code).toBe('ECONNRESET');
      }
    }
    expect(failed).toBeGreaterThan(10);
  });
});

/** Tears down the case's connection and makes a new one. */
function replaced() {
  teardown();
  return hostile();
}
