// The librdmacm backend: ids of native devices (IBAL_PROVIDER=native, or a
// native device named with `device`) go through librdmacm instead of this
// package's CM. Without kernel RDMA support (no /dev/infiniband/rdma_cm)
// every way in fails with a typed error or an ADDR_ERROR event, never a crash
// or a hang, and leaves no fd, id or context behind. With a native device and
// an IP address on it, a server in a second process (fixtures/
// native-cm-peer.mjs) and this process connect, exchange data and private
// data, reject and resolve a UD service through the kernel's CM. No device is
// faked: those cases are skipped where libibverbs lists none.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NoDeviceError, nativeStatus } from '@ibal/hca';
import { Access, PROVIDER_ENV, SendFlags, WrOpcode, createAh, getDeviceList, regMr, type Context } from '@ibal/verbs';
import {
  CmEventType,
  ConnectionError,
  ConnectionRejectedError,
  PortSpace,
  RDMA_UDP_QKEY,
  RdmaCmState,
  connect,
  createEventChannel,
  createId,
  listen,
  nativeCmResources,
  type CmAddress,
  type Connection,
} from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, 'fixtures', 'native-cm-peer.mjs');

const status = nativeStatus();
const saved = process.env[PROVIDER_ENV];
function restoreProvider(): void {
  if (saved === undefined) delete process.env[PROVIDER_ENV];
  else process.env[PROVIDER_ENV] = saved;
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function expectNothingHeld(): void {
  expect(nativeCmResources()).toEqual({ channels: 0, ids: 0, contexts: 0 });
}

const ENODEV = -19;

describe('librdmacm backend without kernel RDMA support', () => {
  beforeEach(() => {
    process.env[PROVIDER_ENV] = 'native';
  });
  afterEach(restoreProvider);

  it.runIf(status.addon.on)('librdmacm is loaded with the addon, and the status says why it has no device here', () => {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toMatch(/librdmacm\.so/);
    if (!status.rdmacm.on) expect(status.rdmacm.reason).toMatch(/rdma_cm|librdmacm/);
  });

  describe.runIf(!status.rdmacm.on)(`no RDMA CM device (${status.rdmacm.reason ?? ''})`, () => {
    it('resolveAddr reports ADDR_ERROR (ENODEV) with the reason, the id stays usable and is released', async () => {
      const ch = createEventChannel();
      const id = createId(ch);
      id.resolveAddr('192.0.2.1:7471');
      const ev = await ch.getCmEvent({ timeoutMs: 10_000 });
      expect(ev.event).toBe(CmEventType.ADDR_ERROR);
      expect(ev.eventName).toBe('ADDR_ERROR');
      expect(ev.id).toBe(id);
      expect(ev.status).toBe(ENODEV);
      expect(ev.reason).toContain(status.rdmacm.reason!);
      expect(id.state).toBe(RdmaCmState.IDLE);
      expect(id.describe()).toMatch(/^CmId native/);
      expect(id.localAddr).toBeUndefined();
      expect(() => id.resolveRoute()).toThrow(/not ADDR_RESOLVED/);
      expect(() => id.connect({ qpNum: 1 })).toThrow(/resolve the route first/);
      expect(() => id.createQp()).toThrow(/no device yet/);
      expect(ch.pending).toBe(0);
      id.destroy();
      ch.destroy();
      expectNothingHeld();
    });

    it('a UDP port-space id fails the same way', async () => {
      const ch = createEventChannel();
      const id = createId(ch, { portSpace: PortSpace.UDP });
      id.resolveAddr({ address: '::1', port: 9 });
      const ev = await ch.getCmEvent({ timeoutMs: 10_000 });
      expect([ev.eventName, ev.status]).toEqual(['ADDR_ERROR', ENODEV]);
      id.destroy();
      ch.destroy();
      expectNothingHeld();
    });

    it('bindAddr and listen() reject with NoDeviceError', async () => {
      const ch = createEventChannel();
      const id = createId(ch);
      const err = await id.bindAddr('127.0.0.1:7471').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoDeviceError);
      expect((err as NoDeviceError).code).toBe('ERR_IBAL_NO_DEVICE');
      expect((err as Error).message).toContain(status.rdmacm.reason!);
      expect(id.state).toBe(RdmaCmState.IDLE);
      id.destroy();
      ch.destroy();
      await expect(listen('0.0.0.0:7471')).rejects.toThrow(NoDeviceError);
      expectNothingHeld();
    });

    it('connect() rejects with a ConnectionError naming ADDR_ERROR and why', async () => {
      const err = await connect('192.0.2.1:7471', { privateData: Buffer.from('hi') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      expect((err as Error).message).toMatch(/^resolveAddr: ADDR_ERROR \(native rdma_cm id: /);
      expectNothingHeld();
    });

    it('port spaces the kernel has no use for are refused before librdmacm is asked', async () => {
      const ch = createEventChannel();
      const id = createId(ch, { portSpace: PortSpace.SDP });
      await expect(id.bindAddr('127.0.0.1:1')).rejects.toThrow(/no SDP port space/);
      id.destroy();
      ch.destroy();
      expectNothingHeld();
    });

    it('hundreds of attempts leave no fd behind', async () => {
      // One attempt first: libibverbs and librdmacm set up their process-wide state once.
      await connect('192.0.2.1:1').catch(() => undefined);
      const before = openFds();
      for (let i = 0; i < 200; i++) {
        const ch = createEventChannel();
        const id = createId(ch, { portSpace: i % 2 ? PortSpace.UDP : PortSpace.TCP });
        if (i % 3 === 0) {
          await id.bindAddr('127.0.0.1:0').catch(() => undefined);
        } else {
          id.resolveAddr('192.0.2.1:7471');
          await ch.getCmEvent({ timeoutMs: 10_000 });
        }
        id.destroy();
        ch.destroy();
      }
      await connect('192.0.2.1:1').catch(() => undefined);
      await listen('0.0.0.0:0').catch(() => undefined);
      expect(openFds()).toBe(before);
      expectNothingHeld();
    });
  });
});

describe('backend choice', () => {
  afterEach(restoreProvider);

  // IPv6: the default soft device (soft0) is IPv4 only, so no soft device has a route there.
  it.runIf(status.deviceCount === 0)('without IBAL_PROVIDER and without native devices, an address no soft device has stays a soft ADDR_ERROR', async () => {
    delete process.env[PROVIDER_ENV];
    const ch = createEventChannel();
    const id = createId(ch);
    id.resolveAddr('[2001:db8::1]:7471');
    const ev = await ch.getCmEvent({ timeoutMs: 10_000 });
    expect([ev.eventName, ev.status]).toEqual(['ADDR_ERROR', -99]);
    expect(id.describe()).not.toMatch(/native/);
    id.destroy();
    ch.destroy();
    expectNothingHeld();
  });

  it('IBAL_PROVIDER=soft never takes the native path', async () => {
    process.env[PROVIDER_ENV] = 'soft';
    const ch = createEventChannel();
    const id = createId(ch);
    id.resolveAddr('[2001:db8::1]:7471');
    const ev = await ch.getCmEvent({ timeoutMs: 10_000 });
    expect(ev.eventName).toBe('ADDR_ERROR');
    expect(ev.status).toBe(-99);
    id.destroy();
    ch.destroy();
    expectNothingHeld();
  });
});

// ---- two processes over a native device ---------------------------------------

/** An IPv4 address of the native device: IBAL_NATIVE_CM_ADDR, or the first IPv4-mapped GID of port 1 (RoCE). */
async function nativeAddress(): Promise<{ device: string; address: string } | undefined> {
  const name = status.deviceNames[0];
  if (!name || !status.rdmacm.on) return undefined;
  if (process.env.IBAL_NATIVE_CM_ADDR) return { device: name, address: process.env.IBAL_NATIVE_CM_ADDR };
  const dev = getDeviceList().find((d) => d.provider === 'native' && d.name === name);
  if (!dev) return undefined;
  const ctx: Context = await dev.open();
  try {
    const n = ctx.queryPort(1).gidTblLen;
    for (let i = 0; i < n; i++) {
      let g: Uint8Array;
      try {
        g = ctx.queryGid(1, i);
      } catch {
        continue;
      }
      const mapped = g.subarray(0, 10).every((b) => b === 0) && g[10] === 0xff && g[11] === 0xff;
      if (mapped && g[12] !== 127) return { device: name, address: `${g[12]}.${g[13]}.${g[14]}.${g[15]}` };
    }
  } finally {
    ctx.close();
  }
  return undefined;
}

const target = await nativeAddress();
const skipWhy = !status.deviceNames[0]
  ? `libibverbs lists no RDMA device on this machine: ${status.verbs.reason}`
  : !status.rdmacm.on
    ? `librdmacm is off: ${status.rdmacm.reason}`
    : 'the native device has no IPv4 address (set IBAL_NATIVE_CM_ADDR)';

interface Peer {
  child: ChildProcess;
  addr: CmAddress;
  next(pred: (o: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  send(o: object): void;
}

const peers: ChildProcess[] = [];
afterAll(() => {
  for (const c of peers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function startPeer(mode: string): Promise<Peer> {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, [PROVIDER_ENV]: 'native', CM_PEER_MODE: mode, CM_PEER_ADDR: target!.address },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  peers.push(child);
  const seen: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const rl = readline.createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    seen.push(JSON.parse(line) as Record<string, unknown>);
    wake?.();
  });
  rl.on('close', () => {
    ended = true;
    wake?.();
  });
  const next = async (pred: (o: Record<string, unknown>) => boolean, ms = 30_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const i = seen.findIndex((o) => !o.__claimed && pred(o));
      if (i >= 0) {
        seen[i]!.__claimed = true;
        return seen[i]!;
      }
      if (ended) throw new Error('peer exited');
      const left = end - Date.now();
      if (left <= 0) throw new Error('peer said nothing in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  };
  const hello = await next((o) => o.listening === true);
  return {
    child,
    next,
    addr: { address: hello.address as string, port: hello.port as number },
    send: (o) => child.stdin!.write(JSON.stringify(o) + '\n'),
  };
}

async function stopPeer(p: Peer): Promise<Record<string, unknown>> {
  p.send({ exit: true });
  const bye = await p.next((o) => o.bye === true);
  await new Promise((r) => (p.child.exitCode !== null ? r(undefined) : p.child.once('exit', r)));
  return bye;
}

async function echo(c: Connection, msg: Uint8Array): Promise<Uint8Array> {
  const mr = regMr(c.pd, 8192, Access.LOCAL_WRITE);
  try {
    mr.buf.set(msg, 0);
    c.qp.postRecv({ wrId: 1, sgList: [mr.sge(4096, 4096)] });
    c.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [mr.sge(0, msg.length)] });
    await c.sendCq.next({ throwOnError: true });
    const wc = await c.recvCq.next({ throwOnError: true });
    return mr.buf.slice(4096, 4096 + wc.byteLen);
  } finally {
    mr.dereg();
  }
}

describe.skipIf(target === undefined)(`librdmacm across two processes on ${target?.device ?? `(skipped: ${skipWhy})`}`, () => {
  beforeEach(() => {
    process.env[PROVIDER_ENV] = 'native';
  });
  afterEach(restoreProvider);

  it('connects, exchanges data and private data both ways, disconnects; nothing is left behind', async () => {
    const fds = openFds();
    const p = await startPeer('echo');
    const c = await connect(p.addr, { privateData: Buffer.from('client-1'), responderResources: 1, initiatorDepth: 1, retryCount: 7, rnrRetryCount: 7 });
    expect(c.id.describe()).toMatch(/^CmId native/);
    expect(c.context.device.provider).toBe('native');
    expect(Buffer.from(c.privateData.subarray(0, 12)).toString()).toBe('srv:client-1');
    expect(c.peerAddr).toEqual(p.addr);
    const accepted = await p.next((o) => o.accepted === true);
    expect(accepted.peerQpNum).toBe(c.qp.qpNum);
    expect(c.id.remoteQpn).toBe(accepted.qpNum);
    const req = await p.next((o) => o.request === true);
    expect(req.privateData).toBe(Buffer.from('client-1').toString('hex'));
    const back = await echo(c, Buffer.from('over a librdmacm-made RC connection'));
    expect(Buffer.from(back).toString()).toBe('over a librdmacm-made RC connection');
    await c.close();
    expectNothingHeld();
    p.send({ report: true });
    const r = await p.next((o) => o.report === true && o.served === 1);
    expect(r.failed).toBe(0);
    await stopPeer(p);
    expect(openFds()).toBe(fds);
  });

  it('a port nobody listens on is refused with REJ INVALID_SERVICE_ID', async () => {
    const p = await startPeer('echo');
    const err = await connect({ ...p.addr, port: p.addr.port + 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionRejectedError);
    expect((err as ConnectionRejectedError).reasonName).toBe('INVALID_SERVICE_ID');
    expectNothingHeld();
    await stopPeer(p);
  });

  it('reject carries the reason and private data back', async () => {
    const p = await startPeer('reject');
    const err = await connect(p.addr, { privateData: Buffer.from('please!!') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionRejectedError);
    expect((err as ConnectionRejectedError).reasonName).toBe('CONSUMER_DEFINED');
    expect(Buffer.from((err as ConnectionRejectedError).privateData!.subarray(0, 11)).toString()).toBe('no:please!!');
    expectNothingHeld();
    await stopPeer(p);
  });

  it('UD: SIDR learns the service QP number and Q_Key; a datagram reaches it', async () => {
    const p = await startPeer('ud');
    const c = await connect(p.addr, { portSpace: PortSpace.UDP, privateData: Buffer.from('sidr-req') });
    const ready = await p.next((o) => o.udReady === true);
    expect(c.ud!.qpNum).toBe(ready.qpNum);
    expect(c.ud!.qkey).toBe(RDMA_UDP_QKEY);
    expect(Buffer.from(c.privateData.subarray(0, 11)).toString()).toBe('ud:sidr-req');
    const ah = createAh(c.pd, c.ud!.ahAttr);
    const mr = regMr(c.pd, 64, Access.LOCAL_WRITE);
    mr.buf.set(Buffer.from('datagram'), 0);
    c.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [mr.sge(0, 8)], ud: { ah, remoteQpn: c.ud!.qpNum, remoteQkey: c.ud!.qkey } });
    await c.sendCq.next({ throwOnError: true });
    const got = await p.next((o) => 'datagram' in o);
    expect(got.datagram).toBe('datagram');
    ah.destroy();
    mr.dereg();
    await c.close();
    expectNothingHeld();
    await stopPeer(p);
  });
});
