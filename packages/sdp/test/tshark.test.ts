// Captured SDP traffic decodes in Wireshark as InfiniBand SDP: the CM REQ/REP
// in SDP's port space give the conversation its service ID, and every
// message after that is dissected with no malformed packet.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDevice } from '@ibal/verbs';
import { connect, createServer, type SdpSocket } from '../src/index.js';
import { errorOf, once } from './helpers/wait.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-sdp-cap-'));
const file = path.join(dir, 'sdp.pcap');
// Before the first device opens: the soft HCA reads it then.
process.env.IBAL_PCAP = file;

const hasTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

afterAll(() => {
  delete process.env.IBAL_PCAP;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasTshark)('tshark', () => {
  it('decodes Hello, HelloAck, Data, SrcAvail, RdmaRdCompl, DisConn and AbortConn with no malformed packet', async () => {
    const accepted: SdpSocket[] = [];
    const server = createServer({ allowHalfOpen: true }, (s) => {
      accepted.push(s);
      s.on('error', () => {});
      s.on('data', () => {});
      s.on('end', () => s.end('bye'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = server.address()!.port;

    // A graceful connection: small writes of many sizes (messages cut across packets), a zero-copy one, half-closes.
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(c, 'connect');
    for (const n of [1, 63, 64, 1000, 4079, 4080, 4081, 4100, 5000, 9000, 16_000]) c.write(Buffer.alloc(n, n & 0xff));
    c.write(Buffer.alloc(300_001, 0xfe));
    c.end();
    c.resume();
    await once(c, 'close');

    // A reset.
    const d = connect({ port, host: '127.0.0.1' });
    await once(d, 'connect');
    await new Promise((r) => setTimeout(r, 50));
    const reset = errorOf(accepted[accepted.length - 1]!);
    d.resetAndDestroy();
    expect((await reset).code).toBe('ECONNRESET');
    await new Promise<void>((r) => server.close(() => r()));

    const ctx = await openDevice();
    const udpPort = ctx.queryPort(1).udpPort ?? 4791;
    ctx.close();
    // The capture file is flushed as packets are written.
    const out = spawnSync(
      'tshark',
      ['-n', '-r', file, '-d', `udp.port==${udpPort},infiniband`, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.number', '-e', 'infiniband.bth.opcode', '-e', 'infiniband_sdp.bsdh.mid', '-e', '_ws.malformed', '-e', '_ws.expert.severity'],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    expect(out.status).toBe(0);
    const rows = out.stdout.trim().split('\n').map((l) => l.split('|'));
    expect(rows.length).toBeGreaterThan(50);
    const malformed = rows.filter((r) => r[3] !== '' || /8388608/.test(r[4] ?? ''));
    expect(malformed).toEqual([]);
    const mids = new Set(rows.flatMap((r) => (r[2] ? r[2].split(',').map((m) => parseInt(m, 16)) : [])));
    for (const mid of [0x00, 0x01, 0x02, 0x03, 0x06, 0xfe, 0xff]) expect(mids, `MID 0x${mid.toString(16)}`).toContain(mid);
    // Every SEND carries an SDP message that the dissector recognised.
    const sends = rows.filter((r) => ['4', '5'].includes(r[1] ?? ''));
    expect(sends.length).toBeGreaterThan(10);
    for (const r of sends) expect(r[2], `frame ${r[0]}`).not.toBe('');
  }, 120_000);
});
