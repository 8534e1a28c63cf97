// ibal devinfo: ibv_devinfo, with the same fields, tabs and value forms,
// followed by what ibal adds: the provider, where the soft wire is bound,
// and which native features are on (and, for each one off, why).
import { parseArgs } from 'node:util';
import {
  LinkLayer,
  NodeType,
  NotSupportedError,
  type Context,
  type Device,
  type DeviceAttr,
  type DeviceAttrEx,
  type PortAttr,
} from '@ibal/verbs';
import { gidToString } from '@ibal/verbs';
import { nativeStatus, sysStatus } from '@ibal/hca';
import { CliError, UsageError } from '../lib/cli-error.js';
import { listDevices, wireDescription } from '../lib/device.js';
import { guidColons, hex } from '../lib/format.js';
import { intOption } from '../lib/numbers.js';

export const devinfoHelp = [
  'Usage: ibal devinfo             print the ca attributes',
  '',
  'Options:',
  '  -d, --ib-dev=<dev>     use IB device <dev> (default all devices)',
  '  -i, --ib-port=<port>   use port <port> of IB device (default all ports)',
  '  -l, --list             print only the IB devices names',
  '  -v, --verbose          print all the attributes of the IB device(s)',
  '  -h, --help             show this help',
  '',
  'After rdma-core\'s fields ibal prints the provider of each device, the wire',
  'each port uses and, for a soft device, the address:port it is bound to:',
  '  raw4              IPv4 raw sockets, our own IP header (IBAL_SOFT_WIRE=raw|auto)',
  '  udp4 (sendmmsg)   UDP, datagrams batched by sendmmsg/recvmmsg',
  '  udp4, udp6        UDP through Node\'s dgram',
  'and whether the native libibverbs provider, librdmacm and the system',
  'primitives are on (and why not).',
].join('\n');

/**
 * One line per native feature: on, or off and why. The list is the place to
 * add a feature: a name and its { on, reason }.
 */
export function nativeFeatureLines(): string[] {
  const n = nativeStatus();
  const s = sysStatus();
  const features: [string, { on: boolean; reason?: string }][] = [
    ['native verbs provider', n.verbs],
    ['rdmacm', n.rdmacm],
    ['ibal_sys addon', s.addon],
    ['shm segments', s.shm],
    ['futex doorbells', s.futex],
    ['process_vm', s.vm],
    ['sendmmsg/recvmmsg', s.mmsg],
    ['raw RoCEv2 sockets', s.raw],
    ['UDP_NO_CHECK6_RX', s.noCheck6Rx],
  ];
  return ['native features:', ...features.map(([name, f]) => `\t${name}:\t${f.on ? 'on' : 'off'}${f.reason ? ` (${f.reason})` : ''}`)];
}

const portStates = ['PORT_NOP', 'PORT_DOWN', 'PORT_INIT', 'PORT_ARMED', 'PORT_ACTIVE', 'PORT_ACTIVE_DEFER'];
const physStates = ['', 'SLEEP', 'POLLING', 'DISABLED', 'PORT_CONFIGURATION TRAINNING', 'LINK_UP', 'LINK_ERROR_RECOVERY', 'PHY TEST'];
const atomicCaps = ['ATOMIC_NONE', 'ATOMIC_HCA', 'ATOMIC_GLOB'];
const vlNums: Record<number, string> = { 1: '1', 2: '2', 3: '4', 4: '8', 5: '15' };
const widths: Record<number, string> = { 1: '1', 2: '4', 4: '8', 8: '12', 16: '2' };
const speeds: Record<number, string> = {
  1: '2.5 Gbps', 2: '5.0 Gbps', 4: '10.0 Gbps', 8: '10.0 Gbps', 16: '14.0 Gbps', 32: '25.0 Gbps', 64: '50.0 Gbps', 128: '100.0 Gbps', 256: '200.0 Gbps',
};

const mtuStr = (m: number): string => (m >= 1 && m <= 5 ? String(128 << m) : 'invalid MTU');
const linkLayerStr = (l: number): string =>
  l === LinkLayer.INFINIBAND ? 'InfiniBand' : l === LinkLayer.ETHERNET ? 'Ethernet' : l === LinkLayer.UNSPECIFIED ? 'Unspecified' : 'Invalid link layer';

/** ibv_transport_type: iWARP for RNICs, InfiniBand for CAs (RoCE included, as rxe and mlx5 report). */
function transport(d: Device): string {
  return d.nodeType === NodeType.RNIC ? 'iWARP (1)' : 'InfiniBand (0)';
}

function deviceLines(d: Device, a: DeviceAttr, verbose: boolean): string[] {
  const lines = [`hca_id:\t${d.name}`, `\ttransport:\t\t\t${transport(d)}`];
  if (a.fwVer) lines.push(`\tfw_ver:\t\t\t\t${a.fwVer}`);
  lines.push(
    `\tnode_guid:\t\t\t${guidColons(a.nodeGuid)}`,
    `\tsys_image_guid:\t\t\t${guidColons(a.sysImageGuid)}`,
    `\tvendor_id:\t\t\t0x${hex(a.vendorId, 4)}`,
    `\tvendor_part_id:\t\t\t${a.vendorPartId}`,
    `\thw_ver:\t\t\t\t0x${a.hwVer.toString(16).toUpperCase()}`,
    `\tphys_port_cnt:\t\t\t${a.physPortCnt}`,
  );
  if (!verbose) return lines;
  lines.push(
    `\tmax_mr_size:\t\t\t0x${a.maxMrSize.toString(16)}`,
    `\tpage_size_cap:\t\t\t0x${a.pageSizeCap.toString(16)}`,
    `\tmax_qp:\t\t\t\t${a.maxQp}`,
    `\tmax_qp_wr:\t\t\t${a.maxQpWr}`,
    `\tdevice_cap_flags:\t\t0x${hex(a.deviceCapFlags >>> 0, 8)}`,
    `\tmax_sge:\t\t\t${a.maxSge}`,
    `\tmax_cq:\t\t\t\t${a.maxCq}`,
    `\tmax_cqe:\t\t\t${a.maxCqe}`,
    `\tmax_mr:\t\t\t\t${a.maxMr}`,
    `\tmax_pd:\t\t\t\t${a.maxPd}`,
    `\tmax_qp_rd_atom:\t\t\t${a.maxQpRdAtom}`,
    `\tmax_res_rd_atom:\t\t${a.maxResRdAtom}`,
    `\tmax_qp_init_rd_atom:\t\t${a.maxQpInitRdAtom}`,
    `\tatomic_cap:\t\t\t${atomicCaps[a.atomicCap] ?? 'invalid atomic capability'} (${a.atomicCap})`,
    `\tmax_mw:\t\t\t\t${a.maxMw}`,
    `\tmax_ah:\t\t\t\t${a.maxAh}`,
    `\tmax_srq:\t\t\t${a.maxSrq}`,
  );
  if (a.maxSrq) lines.push(`\tmax_srq_wr:\t\t\t${a.maxSrqWr}`, `\tmax_srq_sge:\t\t\t${a.maxSrqSge}`);
  lines.push(`\tmax_pkeys:\t\t\t${a.maxPkeys}`, `\tmax_inline_data:\t\t${a.maxInlineData}`);
  return lines;
}

function portLines(ctx: Context, d: Device, portNum: number, p: PortAttr, verbose: boolean): string[] {
  const lines = [
    `\t\tport:\t${portNum}`,
    `\t\t\tstate:\t\t\t${portStates[p.state] ?? 'invalid state'} (${p.state})`,
    `\t\t\tmax_mtu:\t\t${mtuStr(p.maxMtu)} (${p.maxMtu})`,
    `\t\t\tactive_mtu:\t\t${mtuStr(p.activeMtu)} (${p.activeMtu})`,
    `\t\t\tsm_lid:\t\t\t${p.smLid}`,
    `\t\t\tport_lid:\t\t${p.lid}`,
    `\t\t\tport_lmc:\t\t0x${hex(p.lmc, 2)}`,
    `\t\t\tlink_layer:\t\t${linkLayerStr(p.linkLayer)}`,
  ];
  if (verbose) {
    lines.push(
      `\t\t\tmax_msg_sz:\t\t0x${p.maxMsgSz.toString(16)}`,
      `\t\t\tport_cap_flags:\t\t0x${hex(p.portCapFlags >>> 0, 8)}`,
      `\t\t\tmax_vl_num:\t\t${vlNums[p.maxVlNum] ?? 'invalid value'} (${p.maxVlNum})`,
      `\t\t\tpkey_tbl_len:\t\t${p.pkeyTblLen}`,
      `\t\t\tgid_tbl_len:\t\t${p.gidTblLen}`,
      `\t\t\tactive_width:\t\t${widths[p.activeWidth] ?? 'invalid width'}X (${p.activeWidth})`,
      `\t\t\tactive_speed:\t\t${speeds[p.activeSpeed] ?? 'invalid speed'} (${p.activeSpeed})`,
    );
    if (d.nodeType !== NodeType.RNIC) lines.push(`\t\t\tphys_state:\t\t${physStates[p.physState] || 'invalid physical state'} (${p.physState})`);
    for (let i = 0; i < p.gidTblLen; i++) {
      const gid = ctx.queryGid(portNum, i);
      if (gid.every((b) => b === 0)) continue;
      const type = p.linkLayer === LinkLayer.ETHERNET ? ', RoCE v2' : '';
      lines.push(`\t\t\tGID[${String(i).padStart(3)}]:\t\t${gidToString(gid)}${type}`);
    }
  }
  lines.push('');
  return lines;
}

/** The transport a port uses; a soft device adds where it is bound (ibal's addition to ibv_devinfo). */
function wireLine(ctx: Context, d: Device, portNum: number, p: PortAttr, several: boolean): string {
  const what = d.provider === 'soft' ? wireDescription(p, ctx.queryGid(portNum, 0)) : p.wire;
  return several ? `${what} (port ${portNum})` : what;
}

async function describe(d: Device, onlyPort: number, verbose: boolean, print: (line: string) => void): Promise<void> {
  let ctx: Context;
  try {
    ctx = await d.open();
  } catch (err) {
    throw new CliError(`Failed to open device ${d.name}: ${(err as Error).message}`);
  }
  try {
    const a = ctx.queryDevice();
    if (onlyPort > a.physPortCnt) throw new CliError('Invalid port requested for device');
    const out = deviceLines(d, a, verbose);
    if (verbose) {
      // ibv_devinfo -v's extended lines, where the provider has ibv_query_device_ex.
      let ex: DeviceAttrEx | undefined;
      try {
        ex = ctx.queryDeviceEx();
      } catch (err) {
        if (!(err instanceof NotSupportedError)) throw err;
      }
      if (ex) out.push(`\tcompletion timestamp_mask:\t\t\t0x${ex.completionTimestampMask.toString(16).padStart(16, '0')}`, `\thca_core_clock:\t\t\t${ex.hcaCoreClock}kHZ`);
    }
    const ports: [number, PortAttr][] = [];
    for (let portNum = 1; portNum <= a.physPortCnt; portNum++) {
      if (onlyPort && portNum !== onlyPort) continue;
      const p = ctx.queryPort(portNum);
      ports.push([portNum, p]);
      out.push(...portLines(ctx, d, portNum, p, verbose));
    }
    out.push(`\tprovider:\t\t\t${d.provider}`);
    for (const [portNum, p] of ports) out.push(`\twire:\t\t\t\t${wireLine(ctx, d, portNum, p, ports.length > 1)}`);
    out.push('');
    for (const line of out) print(line);
  } finally {
    ctx.close();
  }
}

export async function devinfo(args: string[], print: (line: string) => void): Promise<void> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        'ib-dev': { type: 'string', short: 'd' },
        'ib-port': { type: 'string', short: 'i' },
        list: { type: 'boolean', short: 'l' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    print(devinfoHelp);
    return;
  }
  const devices = listDevices();
  if (values.list) {
    print(`${devices.length} HCA${devices.length !== 1 ? 's' : ''} found:`);
    for (const d of devices) print(`\t${d.name}`);
    print('');
    return;
  }
  const port = intOption('-i/--ib-port', values['ib-port'], 0, 1, 255);
  let chosen = devices;
  if (values['ib-dev'] !== undefined) {
    chosen = devices.filter((d) => d.name === values['ib-dev']);
    if (chosen.length === 0) throw new CliError(`IB device '${values['ib-dev']}' wasn't found`);
  } else if (devices.length === 0) {
    throw new CliError('No IB devices found');
  }
  for (const d of chosen) await describe(d, port, values.verbose === true, print);
  for (const line of nativeFeatureLines()) print(line);
}
