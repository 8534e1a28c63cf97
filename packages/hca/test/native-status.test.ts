// The native provider on whatever this machine has: the addon is built
// wherever the rdma-core headers are, and without an HCA it lists zero
// devices and says why instead of failing.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeProvider, nativeAllocBuffer } from '../src/native/provider.js';
import { nativeStatus } from '../src/native/status.js';
import { tryVerbs } from '../src/native/load.js';

const headers = fs.existsSync('/usr/include/infiniband/verbs.h');

describe('native provider status', () => {
  it.runIf(headers)('builds and loads the ibal_verbs addon where the rdma-core headers are installed', () => {
    const s = nativeStatus();
    expect(s.addon).toEqual({ on: true });
    expect(tryVerbs()).toBeDefined();
  });

  it('reports the device count and, with none, why the verbs provider is off', () => {
    const s = nativeStatus();
    if (!s.addon.on) {
      expect(s.verbs.on).toBe(false);
      expect(s.verbs.reason).toMatch(/ibal_verbs|disabled|Linux/);
      return;
    }
    expect(s.deviceCount).toBe(s.deviceNames.length);
    if (s.deviceCount === 0) {
      expect(s.verbs.on).toBe(false);
      expect(s.verbs.reason).toMatch(/no RDMA device/);
      expect(nativeProvider.noDeviceReason()).toBe(s.verbs.reason);
    } else {
      expect(s.verbs).toEqual({ on: true, reason: `${s.deviceCount} device(s)` });
      expect(nativeProvider.noDeviceReason()).toBeUndefined();
    }
  });

  it('lists exactly the devices libibverbs lists, with stable identities', () => {
    const s = nativeStatus();
    const devs = nativeProvider.devices();
    expect(devs.map((d) => d.name)).toEqual(s.deviceNames);
    expect(nativeProvider.devices()).toEqual(devs);
    for (const d of devs) {
      expect(d.provider).toBe('native');
      expect(typeof d.guid).toBe('bigint');
    }
  });

  it.runIf(headers)('hands out page-aligned, zeroed binding-owned memory the addon recognises', () => {
    const addon = tryVerbs()!;
    const ab = nativeAllocBuffer(10_000);
    expect(ab.byteLength).toBe(10_000);
    expect(new Uint8Array(ab).every((b) => b === 0)).toBe(true);
    expect(addon.isBindingBuffer(ab)).toBe(true);
    expect(addon.isBindingBuffer(new ArrayBuffer(16))).toBe(false);
  });

  it.runIf(headers)('refuses lengths past 4 GiB or not integers, and leaves a large buffer untouched until it is used', () => {
    // Past 4 GiB Node would free the memory twice; 1 TiB used to be allowed and zeroed, which ran the machine out of memory.
    for (const bad of [2 ** 32 + 1, 2 ** 40, -1, 1.5, NaN, '8', null]) {
      expect(() => nativeAllocBuffer(bad as number), String(bad)).toThrow(expect.objectContaining({ code: 'ERR_IBAL_INVALID_ARGUMENT' }));
    }
    const before = process.memoryUsage().rss;
    const big = nativeAllocBuffer(1 << 30);
    // Zeroing touched every page: a GiB of resident memory before anything used it.
    expect(process.memoryUsage().rss - before).toBeLessThan(256 << 20);
    const v = new Uint8Array(big);
    expect([v.length, v[0], v[v.length - 1]]).toEqual([1 << 30, 0, 0]);
  });
});
