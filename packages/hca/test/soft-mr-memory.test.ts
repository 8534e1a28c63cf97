// Shared-memory regions (mr-memory.ts) each keep a descriptor for peers to
// map them by. GC, which would close it with the memory, counts memory, not
// descriptors: a loop registering and deregistering 64 KiB MRs ran out of
// them at the default limit of 1024, and a device opened and closed in a
// loop kept its directory's. Both now go when nothing can use them.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Access } from '../src/enums.js';
import type { HcaContext } from '../src/provider.js';
import { addSoftDevice, type SoftDevice } from '../src/soft/device.js';
import { sharedRegionOf } from '../src/soft/mr-memory.js';
import { sysStatus } from '../src/sys/status.js';
import { useShmMode } from './helpers/shm-mode.js';

const skip = !sysStatus().shm.on && process.env.IBAL_NATIVE_REQUIRED !== '1';
const fds = () => fs.readdirSync('/proc/self/fd').length;
const memfdMappings = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:ibal-mr')).length;
let n = 0;
let open: HcaContext[] = [];
let devices: SoftDevice[] = [];
useShmMode();
afterEach(() => {
  open.forEach((c) => c.close());
  devices.forEach((d) => d.remove());
  open = [];
  devices = [];
});

function device(): SoftDevice {
  const d = addSoftDevice({ name: `mm${process.pid}_${n++}`, address: '127.0.0.1', port: 0 });
  devices.push(d);
  return d;
}

describe.skipIf(skip)('shared-memory regions', () => {
  it('give their descriptor back when their last MR is deregistered', async () => {
    const ctx = await device().open();
    open.push(ctx);
    const pd = ctx.allocPd();
    const before = fds();
    let most = before;
    for (let i = 0; i < 1500; i++) {
      const mem = pd.allocBuffer!(64 << 10);
      expect(sharedRegionOf(mem)).toBeDefined();
      const mr = pd.regMr(mem, Access.LOCAL_WRITE | Access.REMOTE_READ);
      mem[i] = 1;
      mr.dereg();
      expect(sharedRegionOf(mem)).toBeUndefined();
      if (i % 50 === 0) most = Math.max(most, fds());
    }
    expect(most - before).toBeLessThan(8);
  });

  it('of a device opened and closed in a loop are unmapped with it', async () => {
    const dev = device();
    open.push(await dev.open()); // a context kept open throughout, as an application's
    const before = { fds: fds(), maps: memfdMappings() };
    for (let i = 0; i < 60; i++) {
      const a = device();
      const ctx = await a.open();
      expect(a.directory).toBeDefined();
      ctx.close();
      expect(a.directory).toBeUndefined();
    }
    expect(fds() - before.fds).toBeLessThan(8);
    expect(memfdMappings() - before.maps).toBeLessThan(4);
  });
});
