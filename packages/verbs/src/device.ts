// ibv_get_device_list / ibv_open_device.

import { InvalidArgumentError, NoDeviceError, NotFoundError } from '@ibal/hca';
import type { HcaDevice } from '@ibal/hca';
import { Context } from './context.js';
import { PROVIDER_ENV, listProviderDevices, registeredProviders, selectedProviderName } from './providers.js';

/** An RDMA device some registered provider offers (ibv_device). */
export class Device {
  readonly name: string;
  readonly guid: bigint;
  /** A NodeType value. */
  readonly nodeType: number;
  /** The provider's name, e.g. "soft" or "native". */
  readonly provider: string;
  readonly #hca: HcaDevice;

  /** @internal Use getDeviceList(). */
  constructor(hca: HcaDevice) {
    this.#hca = hca;
    this.name = hca.name;
    this.guid = hca.guid;
    this.nodeType = hca.nodeType;
    this.provider = hca.provider;
  }

  /** Opens a context on this device (ibv_open_device). */
  async open(): Promise<Context> {
    return new Context(this, await this.#hca.open());
  }
}

/**
 * Every device of the registered providers, or of the one IBAL_PROVIDER
 * names (then an empty result is a NoDeviceError instead).
 */
export function getDeviceList(): Device[] {
  return listProviderDevices().map((d) => new Device(d));
}

/**
 * Opens a device: the one given, the one with this name, or (with no
 * argument) the first device listed.
 */
export async function openDevice(device?: Device | string): Promise<Context> {
  if (device instanceof Device) return device.open();
  if (device !== undefined && typeof device !== 'string') {
    throw new InvalidArgumentError('openDevice: expected a Device, a device name or nothing');
  }
  const devices = getDeviceList();
  if (devices.length === 0) {
    const names = registeredProviders().map((p) => p.name);
    throw new NoDeviceError(
      names.length === 0
        ? 'no RDMA device found: no provider is registered (call registerProvider)'
        : `no RDMA device found: providers ${names.join(', ')} have no devices`,
    );
  }
  if (device === undefined) return devices[0]!.open();
  const found = devices.find((d) => d.name === device);
  if (!found) {
    const scope = selectedProviderName() === undefined ? '' : ` (${PROVIDER_ENV}=${selectedProviderName()})`;
    throw new NotFoundError(`no RDMA device named "${device}"${scope}; available: ${devices.map((d) => d.name).join(', ')}`);
  }
  return found.open();
}
