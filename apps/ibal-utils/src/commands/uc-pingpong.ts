// ibal uc-pingpong: ibv_uc_pingpong over any ibal device. UC has no ACKs
// and no retransmission: a lost packet loses its message, and the ping-pong
// then stalls until --timeout, as the C example would hang.
import { QpType } from '@ibal/verbs';
import { connectedTransport } from '../lib/pingpong/connected.js';
import { pingpongCommand } from '../lib/pingpong/options.js';
import { runPingpongSession } from '../lib/pingpong/session.js';

const uc = connectedTransport(QpType.UC);

export const { help: ucPingpongHelp, run: ucPingpong } = pingpongCommand('uc', (o, print) => runPingpongSession(o, uc, print));
