// Device selection as the rdma-core examples do it (-d NAME or the first
// device), with their messages, plus what ibal knows about the soft wire.
import { ipFromGid } from '@ibal/hca';
import { getDeviceList, LinkLayer, NoDeviceError, type Context, type Device, type PortAttr } from '@ibal/verbs';
import { CliError } from './cli-error.js';

/** RoCEv2's UDP destination port. */
export const ROCE_UDP_PORT = 4791;

export function listDevices(): Device[] {
  try {
    return getDeviceList();
  } catch (err) {
    if (err instanceof NoDeviceError) throw new CliError(err.message);
    throw err;
  }
}

export function findDevice(name: string | undefined): Device {
  const devices = listDevices();
  if (devices.length === 0) throw new CliError('No IB devices found');
  if (name === undefined) return devices[0]!;
  const found = devices.find((d) => d.name === name);
  if (!found) throw new CliError(`IB device ${name} not found (available: ${devices.map((d) => d.name).join(', ')})`);
  return found;
}

export async function openContext(name: string | undefined): Promise<Context> {
  const device = findDevice(name);
  try {
    return await device.open();
  } catch (err) {
    throw new CliError(`Couldn't get context for ${device.name}: ${(err as Error).message}`);
  }
}

export function queryPortOrFail(ctx: Context, ibPort: number): PortAttr {
  try {
    return ctx.queryPort(ibPort);
  } catch (err) {
    throw new CliError(`Couldn't get port info for port ${ibPort}: ${(err as Error).message}`);
  }
}

export function queryGidOrFail(ctx: Context, ibPort: number, gidIndex: number): Uint8Array {
  try {
    return ctx.queryGid(ibPort, gidIndex);
  } catch (err) {
    throw new CliError(`can't read sgid of index ${gidIndex}: ${(err as Error).message}`);
  }
}

/**
 * The LID this side announces. RoCE ports have LID 0, so ibal uses the
 * field for the UDP port the soft device listens on when that is not 4791
 * (LID 0 keeps meaning 4791); an InfiniBand port announces its real LID.
 */
export function announcedLid(port: PortAttr): number {
  if (port.linkLayer !== LinkLayer.ETHERNET) return port.lid;
  return port.udpPort === ROCE_UDP_PORT ? 0 : port.udpPort;
}

/** The UDP port a peer listens on, from the LID it announced. */
export function udpPortFromLid(lid: number): number {
  return lid === 0 ? ROCE_UDP_PORT : lid;
}

/** "udp4 127.0.0.1:4791" / "udp6 [::1]:4791": where the device's wire is bound. */
export function wireDescription(port: PortAttr, gid: Uint8Array): string {
  const ip = ipFromGid(gid);
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return `${port.wire} ${host}:${port.udpPort}`;
}

/** The IP address a GID stands for, for binding the TCP side next to the device. */
export function ipOfGid(gid: Uint8Array): string {
  return ipFromGid(gid);
}
