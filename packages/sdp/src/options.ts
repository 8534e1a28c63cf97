// Ring sizes and the zero-copy threshold: per socket, with defaults that
// IBAL_SDP_* environment variables may change for a whole process.

import { InvalidArgumentError } from '@ibal/hca';
import { DEFAULT_CONNECTION_OPTIONS, type ConnectionOptions } from './connection.js';

export interface SdpOptions {
  /** Receive buffers per connection (the credits the peer gets), 4..1024. Env IBAL_SDP_RX_BUFS. */
  rxBufs?: number;
  /** Bytes per receive buffer, BSDH included, 64..1 MiB. Env IBAL_SDP_RX_BUF_SIZE. */
  rxBufSize?: number;
  /** Send (bounce) buffers per connection, 2..1024. Env IBAL_SDP_TX_BUFS. */
  txBufs?: number;
  /** Writes at least this big go zero-copy (SrcAvail + RDMA READ). Env IBAL_SDP_ZCOPY_THRESHOLD. */
  zcopyThreshold?: number;
}

function pick(name: keyof SdpOptions, given: number | undefined, env: string, min: number, max: number): number {
  const raw = given ?? (process.env[env] !== undefined && process.env[env] !== '' ? Number(process.env[env]) : DEFAULT_CONNECTION_OPTIONS[name]);
  if (!Number.isInteger(raw) || raw < min || raw > max) {
    throw new InvalidArgumentError(`SDP option ${name}${given === undefined ? ` (from ${env})` : ''} must be an integer in ${min}..${max}, got ${String(raw)}`);
  }
  return raw;
}

export function resolveOptions(o: SdpOptions = {}): ConnectionOptions {
  return {
    rxBufs: pick('rxBufs', o.rxBufs, 'IBAL_SDP_RX_BUFS', 4, 1024),
    rxBufSize: pick('rxBufSize', o.rxBufSize, 'IBAL_SDP_RX_BUF_SIZE', 64, 1 << 20),
    txBufs: pick('txBufs', o.txBufs, 'IBAL_SDP_TX_BUFS', 2, 1024),
    zcopyThreshold: pick('zcopyThreshold', o.zcopyThreshold, 'IBAL_SDP_ZCOPY_THRESHOLD', 64, 2 ** 31),
  };
}
