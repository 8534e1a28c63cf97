// Provider registry: the part of libibverbs that loads provider libraries
// and asks each for its devices. Providers register themselves (or are
// registered by whoever wires the defaults); IBAL_PROVIDER=<name> restricts
// device listing to one of them and turns "that provider has no device" into
// an error instead of an empty list, so a run meant for hardware cannot
// silently fall back to the soft HCA.

import { InvalidArgumentError, NoDeviceError, nativeProvider, softProvider } from '@ibal/hca';
import type { HcaDevice, HcaProvider } from '@ibal/hca';

export const PROVIDER_ENV = 'IBAL_PROVIDER';

// The soft HCA is always there, as rxe is on any Linux box: the embedded default.
// The native provider is registered too, but loads libibverbs only when
// devices are first listed; without an HCA it simply lists none.
const registry = new Map<string, HcaProvider>([
  [softProvider.name, softProvider],
  [nativeProvider.name, nativeProvider],
]);

/**
 * Makes a provider's devices visible to getDeviceList/openDevice.
 * Registering the same provider again is a no-op; a different provider
 * under a taken name is refused.
 */
export function registerProvider(provider: HcaProvider): void {
  if (typeof provider !== 'object' || provider === null || typeof provider.devices !== 'function') {
    throw new InvalidArgumentError('registerProvider: not an HcaProvider (needs name and devices())');
  }
  if (typeof provider.name !== 'string' || provider.name === '') {
    throw new InvalidArgumentError('registerProvider: provider.name must be a non-empty string');
  }
  const existing = registry.get(provider.name);
  if (existing === provider) return;
  if (existing) throw new InvalidArgumentError(`a different provider named "${provider.name}" is already registered`);
  registry.set(provider.name, provider);
}

/** Removes a provider by name; open contexts on its devices stay usable. */
export function unregisterProvider(name: string): boolean {
  return registry.delete(name);
}

/** The registered providers, in registration order. */
export function registeredProviders(): HcaProvider[] {
  return [...registry.values()];
}

/** The provider IBAL_PROVIDER names, or undefined when it is unset or empty. */
export function selectedProviderName(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = env[PROVIDER_ENV]?.trim();
  return name ? name : undefined;
}

/**
 * The provider devices getDeviceList shows. Unrestricted, a provider that
 * reports no hardware by throwing NoDeviceError (a native provider on a
 * machine without an HCA) simply contributes nothing. With IBAL_PROVIDER
 * set, an unknown provider or one without devices throws NoDeviceError; a
 * provider's own NoDeviceError message (which can say what it looked for)
 * is kept as the explanation.
 */
export function listProviderDevices(env: NodeJS.ProcessEnv = process.env): HcaDevice[] {
  const selected = selectedProviderName(env);
  if (selected === undefined) {
    const all: HcaDevice[] = [];
    for (const p of registry.values()) {
      try {
        all.push(...p.devices());
      } catch (err) {
        if (!(err instanceof NoDeviceError)) throw err;
      }
    }
    return all;
  }
  const provider = registry.get(selected);
  if (!provider) {
    const known = [...registry.keys()];
    throw new NoDeviceError(
      `${PROVIDER_ENV}=${selected}: no provider named "${selected}" is registered (registered: ${known.length > 0 ? known.join(', ') : 'none'})`,
    );
  }
  let devices: HcaDevice[];
  try {
    devices = provider.devices();
  } catch (err) {
    if (err instanceof NoDeviceError) {
      throw new NoDeviceError(`${PROVIDER_ENV}=${selected}: ${err.message}`);
    }
    throw err;
  }
  if (devices.length === 0) {
    const why = provider.noDeviceReason?.();
    throw new NoDeviceError(`${PROVIDER_ENV}=${selected}: no RDMA device found${why ? `: ${why}` : ''}`);
  }
  return devices;
}
