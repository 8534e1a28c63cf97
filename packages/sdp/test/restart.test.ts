// A server process that restarts on the same port, again and again, while
// this process keeps connecting to it: each new run's CM numbers its QPs as
// the last run's did, and this side may still hold connections of earlier
// runs (their peer died before answering our DREQ). Every connection must
// still succeed, as TCP's would to a restarted server.

import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type SdpSocket } from '../src/index.js';
import { Peer, fixtures } from './helpers/child.js';
import { once } from './helpers/wait.js';

// Over UDP, where every run of the peer binds the RoCE port 4791. Imports run first, but no
// device opens before the first connect below, which reads this.
process.env.IBAL_SOFT_SHM = '0';

const peers: Peer[] = [];
afterAll(() => {
  for (const p of peers) p.kill();
});

describe('a peer restarted on the same port', () => {
  it('takes a new connection after each of 40 restarts, each killed right after its connection closed', async () => {
    const ports = new Set<number>();
    for (let run = 0; run < 40; run++) {
      const p = new Peer([`${fixtures}/sdp-peer.mjs`, 'echo'], { IBAL_SOFT_SHM: '0' });
      peers.push(p);
      const m = await p.message<{ port: number; udpPort: number }>('port');
      ports.add(m.udpPort);
      const c: SdpSocket = connect({ port: m.port, host: '127.0.0.1', udpPort: m.udpPort });
      await once(c, 'connect');
      const got: Buffer[] = [];
      c.on('data', (d: Buffer) => got.push(d));
      const ended = once(c, 'end');
      const b = randomBytes(100_000 + run);
      c.end(b);
      await ended;
      expect(Buffer.concat(got).equals(b)).toBe(true);
      c.destroy();
      p.kill();
    }
    // The same RoCE port each run, or the restarts did not collide.
    expect(ports.size).toBe(1);
  }, 120_000);
});
