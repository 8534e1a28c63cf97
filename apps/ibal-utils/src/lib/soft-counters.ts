// The soft HCA keeps rxe-style counters per device (packets, drops by
// reason, retransmissions, timeouts). perf puts them in its JSON so a slow
// run can be told apart from a lossy one; other providers have none.
import { SoftDevice, softProvider } from '@ibal/hca';

export function softCounters(deviceName: string): Record<string, number> | undefined {
  const dev = softProvider.devices().find((d) => d.name === deviceName);
  if (!(dev instanceof SoftDevice)) return undefined;
  const c = dev.counters.snapshot();
  if (dev.port === undefined) return c;
  const w = dev.wire.counters;
  return { ...c, wireTxPackets: w.txPackets, wireRxPackets: w.rxPackets, wireSendErrors: w.sendErrors };
}
