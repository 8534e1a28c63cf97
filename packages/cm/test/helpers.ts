// Shared set-up for CM tests: soft devices on loopback with ephemeral UDP
// ports, removed after each test, and fast CM timing.
import { addSoftDevice, type SoftDevice } from '@ibal/verbs';

let n = 0;
export function device(address = '127.0.0.1'): SoftDevice {
  return addSoftDevice({ name: `cm_${process.pid}_${n++}`, address, port: 0 });
}

export const FAST = { cmResponseTimeout: 14, maxCmRetries: 4, timewaitMs: 20 } as const;

export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
