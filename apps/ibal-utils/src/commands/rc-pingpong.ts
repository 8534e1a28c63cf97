// ibal rc-pingpong: ibv_rc_pingpong over any ibal device.
import { QpType } from '@ibal/verbs';
import { connectedTransport } from '../lib/pingpong/connected.js';
import { pingpongCommand } from '../lib/pingpong/options.js';
import { runPingpongSession } from '../lib/pingpong/session.js';

const rc = connectedTransport(QpType.RC);

export const { help: rcPingpongHelp, run: rcPingpong } = pingpongCommand('rc', (o, print) => runPingpongSession(o, rc, print));
