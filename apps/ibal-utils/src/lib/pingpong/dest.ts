// The address record the rdma-core ping-pong examples exchange over TCP:
// printf("%04x:%06x:%06x:%s", lid, qpn, psn, wire_gid), sent as the 52 bytes
// of a NUL-terminated char array. The wire GID is the 16 raw GID bytes in
// hex, in memory order (gid_to_wire_gid), so ibal interoperates with the C
// tools byte for byte.
import { gidToString } from '@ibal/verbs';
import { CliError } from '../cli-error.js';
import { hex } from '../format.js';

export interface PingpongDest {
  lid: number;
  qpn: number;
  psn: number;
  gid: Uint8Array;
}

/** sizeof "0000:000000:000000:00000000000000000000000000000000". */
export const DEST_MESSAGE_BYTES = 52;

export function encodeDest(d: PingpongDest): Buffer {
  const text = `${hex(d.lid, 4)}:${hex(d.qpn, 6)}:${hex(d.psn, 6)}:${Buffer.from(d.gid).toString('hex')}`;
  const out = Buffer.alloc(DEST_MESSAGE_BYTES);
  out.write(text, 'latin1');
  return out;
}

export function decodeDest(msg: Buffer): PingpongDest {
  const nul = msg.indexOf(0);
  const text = msg.subarray(0, nul < 0 ? msg.length : nul).toString('latin1');
  const m = /^([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,6}):([0-9a-fA-F]{1,6}):([0-9a-fA-F]{32})$/.exec(text);
  if (!m) throw new CliError(`Couldn't parse the remote address "${text}" (expected LID:QPN:PSN:GID in hex)`);
  return {
    lid: parseInt(m[1]!, 16),
    qpn: parseInt(m[2]!, 16),
    psn: parseInt(m[3]!, 16),
    gid: Uint8Array.from(Buffer.from(m[4]!, 'hex')),
  };
}

/** "  local address:  LID 0x%04x, QPN 0x%06x, PSN 0x%06x, GID %s" and the remote twin. */
export function destLine(which: 'local' | 'remote', d: PingpongDest): string {
  const label = which === 'local' ? '  local address: ' : '  remote address:';
  return `${label} LID 0x${hex(d.lid, 4)}, QPN 0x${hex(d.qpn, 6)}, PSN 0x${hex(d.psn, 6)}, GID ${gidToString(d.gid)}`;
}
