import { Device, type Context } from '../src/index.js';
import { kHandle } from '../src/internal.js';
import { ContextDouble, ProviderDouble } from './provider-double.js';

/** Opens a context on a fresh provider double, bypassing the registry. */
export async function openDouble(): Promise<{ ctx: Context; hctx: ContextDouble; provider: ProviderDouble }> {
  const provider = new ProviderDouble('double');
  const ctx = await new Device(provider.devs[0]!).open();
  return { ctx, hctx: ctx[kHandle] as ContextDouble, provider };
}

/** Resolves after queued microtasks and one macrotask turn. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
