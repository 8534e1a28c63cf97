// ibal rc-pingpong: ibv_rc_pingpong over any ibal device.
import { QpType } from '@ibal/verbs';
import { connectedTransport } from '../lib/pingpong/connected.js';
import { parsePingpongArgs, pingpongUsage } from '../lib/pingpong/options.js';
import { runPingpongSession } from '../lib/pingpong/session.js';

const rc = connectedTransport(QpType.RC);

export const rcPingpongHelp = pingpongUsage('rc');

export async function rcPingpong(args: string[], print: (line: string) => void): Promise<void> {
  const o = parsePingpongArgs(args, 'rc');
  if (o.help) {
    print(rcPingpongHelp);
    return;
  }
  await runPingpongSession(o, rc, print);
}
