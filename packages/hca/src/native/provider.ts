// The native provider: libibverbs devices through the ibal_verbs addon. It
// implements HcaProvider exactly as the soft HCA does, so @ibal/verbs and
// its tests run unchanged on an HCA. Nothing is loaded until devices() is
// called; without the addon or without a device the list is empty and
// noDeviceReason() says why.
import { InvalidArgumentError } from '../errors.js';
import type { HcaProvider } from '../provider.js';
import { NativeDevice } from './device.js';
import { NativeUnavailableError } from './errno.js';
import { tryVerbs } from './load.js';
import { nativeStatus } from './status.js';

const known = new Map<string, NativeDevice>();

export const nativeProvider: HcaProvider & { noDeviceReason(): string | undefined } = {
  name: 'native',
  devices(): NativeDevice[] {
    const addon = tryVerbs();
    if (!addon) return [];
    const list = addon.getDevices().devices;
    const out: NativeDevice[] = [];
    for (const d of list) {
      let dev = known.get(d.name);
      if (!dev || dev.guid !== d.guid) {
        dev = new NativeDevice(addon, d.name, d.guid, d.nodeType);
        known.set(d.name, dev);
      }
      out.push(dev);
    }
    return out;
  },
  noDeviceReason(): string | undefined {
    const s = nativeStatus();
    return s.verbs.on ? undefined : s.verbs.reason;
  },
};

/**
 * Page-aligned memory owned by the binding, as an ArrayBuffer: regMr on the
 * native provider registers it in place (other memory is copied into such a
 * buffer). Throws when the addon is unavailable.
 */
export function nativeAllocBuffer(length: number): ArrayBuffer {
  // Node hands out no ArrayBuffer over external memory past 4 GiB (its kMaxLength).
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > 2 ** 32) {
    throw new InvalidArgumentError(`nativeAllocBuffer: the length must be an integer from 0 to 4 GiB, got ${String(length)}`);
  }
  const addon = tryVerbs();
  if (!addon) throw new NativeUnavailableError(`native memory is unavailable: ${nativeStatus().addon.reason}`);
  return addon.allocBuffer(length);
}
