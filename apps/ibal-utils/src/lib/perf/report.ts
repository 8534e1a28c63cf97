// perftest's look: a banner with the test parameters and both addresses,
// then one row per size under its column headers; or, with --json, one
// document holding the same facts and every row (perftest's JSON keys).
import { LinkLayer, gidToString, mtuBytes } from '@ibal/verbs';
import { hex } from '../format.js';
import { softCounters } from '../soft-counters.js';
import type { PerfMode, PerfOptions, PerfTest } from './options.js';
import type { PerfDest } from './protocol.js';
import type { PerfSide } from './resources.js';
import type { BwRow, LatRow } from './stats.js';

export const RESULT_LINE = '-'.repeat(87);
export const BW_HEADER = ' #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]';
export const LAT_HEADER =
  ' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec]';

const titles: Record<PerfTest, string> = { write: 'RDMA_Write', read: 'RDMA_Read', send: 'Send', atomic: 'Atomic FETCH_AND_ADD' };

export function testTitle(test: PerfTest, mode: PerfMode): string {
  return `${titles[test]} ${mode === 'bw' ? 'BW' : 'Latency'} Test`;
}

export interface RunInfo {
  test: PerfTest;
  mode: PerfMode;
  device: string;
  linkLayer: string;
  mtu: number;
  txDepth: number;
  cqMod: number;
  gidIndex: number;
  inline: number;
  local: PerfDest;
  remote: PerfDest;
}

export function runInfo(o: PerfOptions, side: PerfSide, local: PerfDest, remote: PerfDest): RunInfo {
  return {
    test: o.test,
    mode: o.mode,
    device: side.ctx.device.name,
    linkLayer: side.port.linkLayer === LinkLayer.ETHERNET ? 'Ethernet' : 'IB',
    mtu: side.mtu,
    txDepth: o.txDepth,
    cqMod: o.cqMod,
    gidIndex: o.gidIdx,
    inline: side.inline,
    local,
    remote,
  };
}

function addressLines(which: string, d: PerfDest): string[] {
  return [
    ` ${which} address: LID 0x${hex(d.lid, 4)} QPN 0x${hex(d.qpn, 6)} PSN 0x${hex(d.psn, 6)} RKey 0x${hex(d.rkey, 8)} VAddr 0x${hex(d.addr, 16)}`,
    ` GID: ${gidToString(Uint8Array.from(Buffer.from(d.gid, 'hex')))}`,
  ];
}

export function banner(r: RunInfo): string[] {
  const lines = [
    RESULT_LINE,
    `                    ${testTitle(r.test, r.mode)}`,
    ` Device          : ${r.device}`,
    ` Number of qps   : 1\t\tTransport type : IB`,
    ` Connection type : RC\t\tUsing SRQ      : OFF`,
  ];
  if (r.mode === 'bw') lines.push(` TX depth        : ${r.txDepth}`, ` CQ Moderation   : ${r.cqMod}`);
  lines.push(
    ` Mtu             : ${mtuBytes(r.mtu)}[B]`,
    ` Link type       : ${r.linkLayer}`,
    ` GID index       : ${r.gidIndex}`,
    ` Max inline data : ${r.inline}[B]`,
    ` Data ex. method : Ethernet (ibal JSON over TCP)`,
    RESULT_LINE,
    ...addressLines('local', r.local),
    ...addressLines('remote', r.remote),
    RESULT_LINE,
    r.mode === 'bw' ? BW_HEADER : LAT_HEADER,
  );
  return lines;
}

const BW_LABELS = ['#bytes', '#iterations', 'BW peak', 'BW average', 'MsgRate'];
const LAT_LABELS = ['#bytes', '#iterations', 't_min', 't_max', 't_typical', 't_avg', 't_stdev', '99%', '99.9%'];

/** Places each value where its label starts in the header, at least two spaces after the previous one. */
function underHeader(header: string, labels: string[], values: string[]): string {
  let line = '';
  values.forEach((v, i) => {
    const at = header.indexOf(labels[i]!);
    line = i > 0 && line.length + 2 > at ? `${line}  ${v}` : line.padEnd(at) + v;
  });
  return line;
}

export function bwLine(row: BwRow): string {
  return underHeader(BW_HEADER, BW_LABELS, [
    String(row.MsgSize),
    String(row.n_iterations),
    row.BW_peak.toFixed(2),
    row.BW_average.toFixed(2),
    row.MsgRate.toFixed(6),
  ]);
}

export function latLine(row: LatRow): string {
  return underHeader(LAT_HEADER, LAT_LABELS, [
    String(row.MsgSize),
    String(row.n_iterations),
    row.t_min.toFixed(2),
    row.t_max.toFixed(2),
    row.t_typical.toFixed(2),
    row.t_avg.toFixed(2),
    row.t_stdev.toFixed(2),
    row.percentile_99.toFixed(2),
    row['percentile_99.9'].toFixed(2),
  ]);
}

export function rowLine(mode: PerfMode, row: BwRow | LatRow): string {
  return mode === 'bw' ? bwLine(row as BwRow) : latLine(row as LatRow);
}

/** perftest's JSON precision: %.6f for the message rate, %.2f for bandwidth and times. */
function rounded(row: BwRow | LatRow): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(row)) {
    const digits = k === 'MsgSize' || k === 'n_iterations' ? 0 : k === 'MsgRate' ? 6 : 2;
    out[k] = Number(v.toFixed(digits));
  }
  return out;
}

export function jsonDocument(r: RunInfo, side: 'client' | 'server', rows: (BwRow | LatRow)[]): string {
  const doc = {
    test_info: {
      test: testTitle(r.test, r.mode).replace(/ /g, '_'),
      side,
      Device: r.device,
      Transport_type: 'IB',
      Connection_type: 'RC',
      Link_type: r.linkLayer,
      Mtu: mtuBytes(r.mtu),
      ...(r.mode === 'bw' ? { TX_depth: r.txDepth, CQ_Moderation: r.cqMod } : {}),
      GID_index: r.gidIndex,
      Max_inline_data: r.inline,
      units: r.mode === 'bw' ? { BW: 'MB/sec (2^20 bytes)', MsgRate: 'Mpps' } : { t: 'usec' },
      local: r.local,
      remote: r.remote,
    },
    results: rows.map(rounded),
    ...(softCounters(r.device) ? { soft_counters: softCounters(r.device) } : {}),
  };
  return JSON.stringify(doc, null, 2);
}
