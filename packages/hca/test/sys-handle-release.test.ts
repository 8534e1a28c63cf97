// A native handle whose callback closes over the JavaScript object that owns
// it (the usual shape: `this.#pipe = new WakePipe(() => this.#wake())`) must
// be collectable once closed. The addon held those callbacks through strong
// references until its own finalizer, which that very cycle kept from ever
// running: each closed UDP wire kept its 272 KiB of receive buffers, and a
// loop opening and closing a device grew by about that much a turn. A handle
// that is started stays, as a listening socket does, even if JavaScript
// dropped it. Runs in a child with --expose-gc.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { trySys } from '../src/sys/load.js';

const addon = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'native', 'sys', 'build', 'Release', 'ibal_sys.node');
const skip = !trySys() && process.env.IBAL_NATIVE_REQUIRED !== '1';

const script = `
  const dgram = require('node:dgram');
  const a = require(${JSON.stringify(addon)});
  const fired = { WakePipe: 0, LoopSpin: 0, BatchSocket: 0 };
  const make = {
    WakePipe: (o) => new a.WakePipe(() => { fired.WakePipe++; return o; }),
    LoopSpin: (o) => new a.LoopSpin(() => { fired.LoopSpin++; return o; }),
    BatchSocket: (o) => new a.BatchSocket({ kind: 'udp', family: 4, address: '127.0.0.1', port: 0, onRead: () => { fired.BatchSocket++; return o; }, onWritable: () => o }),
  };
  const refs = { closed: {}, stopped: {}, started: {} };
  let pipeFd, udpPort;
  for (const [k, f] of Object.entries(make)) {
    for (const state of Object.keys(refs)) {
      const o = {};
      o.h = f(o);
      o.h.start();
      if (state === 'closed') o.h.close();
      if (state === 'stopped') o.h.stop();
      if (state === 'started' && k === 'WakePipe') pipeFd = o.h.writeFd();
      if (state === 'started' && k === 'BatchSocket') udpPort = o.h.localPort();
      refs[state][k] = new WeakRef(o);
    }
  }
  const collected = () => {
    const out = {};
    for (const state in refs) for (const k in refs[state]) (out[k] ??= {})[state] = refs[state][k].deref() === undefined;
    return out;
  };
  // WeakRefs hold their targets until the job that made them ends.
  setImmediate(() => {
    gc();
    setImmediate(() => {
      gc();
      const out = collected();
      // Dropped by JavaScript but started, each still runs its callback.
      fired.LoopSpin = fired.WakePipe = fired.BatchSocket = 0;
      a.wakeKick(pipeFd);
      const tx = dgram.createSocket('udp4');
      tx.send(Buffer.alloc(8), udpPort, '127.0.0.1', () => tx.close());
      setTimeout(() => {
        console.log(JSON.stringify({ collected: out, fired }));
        process.exit(0);
      }, 200);
    });
  });`;

describe.skipIf(skip)('native handles once closed', () => {
  it('are collected with the object their callback closes over once closed or stopped, and kept while started', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { collected: Record<string, Record<string, boolean>>; fired: Record<string, number> };
    const each = { closed: true, stopped: true, started: false };
    expect(out.collected).toEqual({ WakePipe: each, LoopSpin: each, BatchSocket: each });
    expect(out.fired.WakePipe).toBe(1);
    expect(out.fired.LoopSpin).toBeGreaterThan(0);
    expect(out.fired.BatchSocket).toBe(1);
  });
});
