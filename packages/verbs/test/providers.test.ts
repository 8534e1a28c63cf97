import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Device,
  InvalidArgumentError,
  NoDeviceError,
  NotFoundError,
  PROVIDER_ENV,
  getDeviceList,
  openDevice,
  registerProvider,
  registeredProviders,
  unregisterProvider,
} from '../src/index.js';
import { ProviderDouble } from './provider-double.js';

describe('provider registry and device selection', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env[PROVIDER_ENV];
    delete process.env[PROVIDER_ENV];
  });
  afterEach(() => {
    for (const p of registeredProviders()) unregisterProvider(p.name);
    if (saved === undefined) delete process.env[PROVIDER_ENV];
    else process.env[PROVIDER_ENV] = saved;
  });

  it('registers the soft HCA by default, as rxe is always there, and the native provider beside it', () => {
    expect(registeredProviders().map((p) => p.name)).toEqual(['soft', 'native']);
    expect(getDeviceList().some((d) => d.provider === 'soft')).toBe(true);
  });

  it('lists nothing and refuses to open when no provider is registered', async () => {
    for (const p of registeredProviders()) unregisterProvider(p.name);
    expect(getDeviceList()).toEqual([]);
    await expect(openDevice()).rejects.toThrow(new NoDeviceError('no RDMA device found: no provider is registered (call registerProvider)'));
  });

  it('lists the devices of every registered provider in registration order', () => {
    registerProvider(new ProviderDouble('soft', ['soft0', 'soft1']));
    registerProvider(new ProviderDouble('other', ['other0']));
    const devices = getDeviceList();
    expect(devices.map((d) => [d.name, d.provider])).toEqual([
      ['soft0', 'soft'],
      ['soft1', 'soft'],
      ['other0', 'other'],
    ]);
    expect(devices[0]).toBeInstanceOf(Device);
    expect(devices[1]!.guid).toBe(2n);
  });

  it('treats registering the same provider twice as a no-op and refuses a second one under the same name', () => {
    const p = new ProviderDouble('soft');
    registerProvider(p);
    registerProvider(p);
    expect(registeredProviders()).toEqual([p]);
    expect(() => registerProvider(new ProviderDouble('soft'))).toThrow(InvalidArgumentError);
    expect(() => registerProvider({ name: '', devices: () => [] })).toThrow(InvalidArgumentError);
    expect(() => registerProvider({} as never)).toThrow(InvalidArgumentError);
  });

  it('skips a provider that reports no hardware when unrestricted', () => {
    const native = new ProviderDouble('native');
    native.failWith = new NoDeviceError('no RDMA device found (no /sys/class/infiniband entries)');
    registerProvider(native);
    registerProvider(new ProviderDouble('soft'));
    expect(getDeviceList().map((d) => d.name)).toEqual(['soft0']);
  });

  it('does not swallow other provider failures', () => {
    const broken = new ProviderDouble('broken');
    broken.failWith = new TypeError('bug');
    registerProvider(broken);
    expect(() => getDeviceList()).toThrow(TypeError);
  });

  it('restricts listing to the provider IBAL_PROVIDER names', () => {
    registerProvider(new ProviderDouble('soft'));
    registerProvider(new ProviderDouble('native', ['mlx5_0']));
    process.env[PROVIDER_ENV] = 'native';
    expect(getDeviceList().map((d) => d.name)).toEqual(['mlx5_0']);
    process.env[PROVIDER_ENV] = ' ';
    expect(getDeviceList()).toHaveLength(2);
  });

  it('fails loudly when the named provider has no devices', () => {
    registerProvider(new ProviderDouble('soft'));
    registerProvider(new ProviderDouble('native', []));
    process.env[PROVIDER_ENV] = 'native';
    expect(() => getDeviceList()).toThrow(new NoDeviceError('IBAL_PROVIDER=native: no RDMA device found'));
  });

  it("keeps the provider's own explanation", () => {
    const native = new ProviderDouble('native');
    native.failWith = new NoDeviceError('no RDMA device found (no /sys/class/infiniband entries)');
    registerProvider(native);
    process.env[PROVIDER_ENV] = 'native';
    const err = (() => {
      try {
        getDeviceList();
      } catch (e) {
        return e as NoDeviceError;
      }
    })();
    expect(err).toBeInstanceOf(NoDeviceError);
    expect(err!.code).toBe('ERR_IBAL_NO_DEVICE');
    expect(err!.message).toBe('IBAL_PROVIDER=native: no RDMA device found (no /sys/class/infiniband entries)');
  });

  it('names the registered providers when IBAL_PROVIDER names an unknown one', () => {
    registerProvider(new ProviderDouble('soft'));
    process.env[PROVIDER_ENV] = 'nativ';
    expect(() => getDeviceList()).toThrow(new NoDeviceError('IBAL_PROVIDER=nativ: no provider named "nativ" is registered (registered: soft)'));
  });

  it('opens the first device, a named one, or a Device', async () => {
    const p = new ProviderDouble('soft', ['soft0', 'soft1']);
    registerProvider(p);
    const first = await openDevice();
    expect(first.device.name).toBe('soft0');
    const named = await openDevice('soft1');
    expect(named.device.name).toBe('soft1');
    const byDevice = await openDevice(getDeviceList()[1]!);
    expect(byDevice.device.name).toBe('soft1');
    expect(p.devs[1]!.contexts).toHaveLength(2);
    await expect(openDevice('mlx5_0')).rejects.toThrow(new NotFoundError('no RDMA device named "mlx5_0"; available: soft0, soft1'));
    await expect(openDevice(42 as never)).rejects.toThrow(InvalidArgumentError);
  });

  it('explains when registered providers have no devices', async () => {
    registerProvider(new ProviderDouble('soft', []));
    await expect(openDevice()).rejects.toThrow(new NoDeviceError('no RDMA device found: providers soft have no devices'));
  });
});
