import { createHash, randomFillSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../src/errors.js';
import { VmFaultError, VmNoProcessError } from '../src/sys/errors.js';
import { sysStatus } from '../src/sys/status.js';
import { addressOf, vmRead, vmWrite } from '../src/sys/vm.js';
import { SysChild } from './helpers/sys-child.js';

const skip = !sysStatus().vm.on && process.env.IBAL_NATIVE_REQUIRED !== '1';
const children: SysChild[] = [];
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function target(size = 1 << 20) {
  const child = new SysChild('vm-target', { SYS_SIZE: String(size) });
  children.push(child);
  const hello = await child.next<{ pid: number; addr: string }>('ready');
  return { child, pid: hello.pid, addr: BigInt(hello.addr) };
}

describe.skipIf(skip)('vmWrite / vmRead', () => {
  it('writes into and reads back from another process in one copy', async () => {
    const { child, pid, addr } = await target();
    const data = randomFillSync(new Uint8Array(1 << 20));
    expect(vmWrite(pid, addr, data)).toBe(1 << 20);
    child.send({ hash: true });
    expect((await child.next<{ hash: string }>('hash')).hash).toBe(sha(data));

    // A sub-range at an odd offset lands exactly there.
    const patch = randomFillSync(new Uint8Array(1000));
    vmWrite(pid, addr + 12345n, patch);
    data.set(patch, 12345);
    child.send({ hash: true });
    expect((await child.next<{ hash: string }>('hash')).hash).toBe(sha(data));

    child.send({ fill: 3 });
    const filled = await child.next<{ hash: string }>('filled');
    const back = new Uint8Array(1 << 20);
    expect(vmRead(pid, addr, back)).toBe(1 << 20);
    expect(sha(back)).toBe(filled.hash);
    expect(back[10]).toBe((10 * 7 + 3) & 0xff);
  });

  it('maps an unmapped remote range to VmFaultError and a dead pid to VmNoProcessError', async () => {
    const { child, pid, addr } = await target(4096);
    const err = (() => {
      try {
        vmWrite(pid, 16n, new Uint8Array(64));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(VmFaultError);
    expect((err as VmFaultError).code).toBe('ERR_IBAL_VM_FAULT');
    await child.kill();
    expect(() => vmWrite(pid, addr, new Uint8Array(64))).toThrow(VmNoProcessError);
    expect(() => vmRead(pid, addr, new Uint8Array(64))).toThrow(expect.objectContaining({ code: 'ERR_IBAL_VM_NO_PROCESS' }));
  });

  it('copies into and out of views of a SharedArrayBuffer (the addon refused them: "Invalid argument")', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(64)).fill(7);
    const mine = new Uint8Array(64);
    expect(vmRead(process.pid, addressOf(shared), mine)).toBe(64);
    expect(mine.every((b) => b === 7)).toBe(true);
    expect(vmWrite(process.pid, addressOf(shared) + 8n, new DataView(new SharedArrayBuffer(4), 0, 4))).toBe(4);
    expect([shared[7], shared[8], shared[12]]).toEqual([7, 0, 7]);
  });

  it('rejects bad arguments with InvalidArgumentError', () => {
    expect(() => vmWrite(0, 0n, new Uint8Array(1))).toThrow(InvalidArgumentError);
    expect(() => vmWrite(process.pid, -1n, new Uint8Array(1))).toThrow(InvalidArgumentError);
  });

  const root = process.getuid?.() === 0;
  it.skipIf(!root)('maps a refused process_vm_writev (another user) to VmPermissionError', async () => {
    // Run as root, the test starts an unprivileged child (uid nobody) that
    // tries to write into this process; the kernel's ptrace check refuses.
    const mine = new Uint8Array(4096);
    const child = new SysChild('vm-writer', { SYS_PID: String(process.pid), SYS_ADDR: addressOf(mine).toString() }, { uid: 65534, gid: 65534 });
    children.push(child);
    const r = await child.next<{ result: string; name: string; code: string }>('result');
    expect(r).toMatchObject({ result: 'error', name: 'VmPermissionError', code: 'ERR_IBAL_VM_PERMISSION' });
    expect(mine.every((b) => b === 0)).toBe(true);
  });
});
