// ibal devices: ibv_devices.
import { parseArgs } from 'node:util';
import { UsageError } from '../lib/cli-error.js';
import { listDevices } from '../lib/device.js';
import { hex } from '../lib/format.js';

export const devicesHelp = [
  'Usage: ibal devices',
  '',
  'Lists the RDMA devices of every registered provider with their node GUIDs,',
  'like rdma-core\'s ibv_devices. The soft devices come from IBAL_SOFT_DEVICES',
  '(e.g. soft0=127.0.0.1:4791,soft1=127.0.0.1:0); without it there is one,',
  'soft0 on 127.0.0.1.',
].join('\n');

export function devices(args: string[], print: (line: string) => void): void {
  let help = false;
  try {
    help = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } }, strict: true }).values.help === true;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (help) {
    print(devicesHelp);
    return;
  }
  const list = listDevices();
  print(`    ${'device'.padEnd(16)}\t   node GUID`);
  print(`    ${'------'.padEnd(16)}\t----------------`);
  for (const d of list) print(`    ${d.name.padEnd(16)}\t${hex(BigInt.asUintN(64, d.guid), 16)}`);
}
