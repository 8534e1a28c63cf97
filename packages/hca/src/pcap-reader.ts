import { InvalidArgumentError } from './errors.js';
import { locateUdp, ROCE_V2_UDP_PORT, type UdpInIp } from './packet/ip-frame.js';

// Reads the capture files people bring (tcpdump's pcap, Wireshark's pcapng)
// and digs RoCEv2 packets out of them, to hold our codec against other
// implementations' traffic. Not a data path: it allocates freely.

export const LinkType = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export interface CaptureRecord {
  linkType: number;
  /** Seconds since the epoch, fractional. */
  timestamp: number;
  data: Uint8Array;
  originalLength: number;
}

/** Every packet of a pcap or pcapng file, in file order. */
export function readCapture(file: Uint8Array): CaptureRecord[] {
  if (!(file instanceof Uint8Array)) throw new InvalidArgumentError('readCapture takes the file as a Uint8Array (a Buffer from fs.readFileSync)');
  if (file.length < 4) throw new InvalidArgumentError('capture file too short');
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (dv.getUint32(0, true) === 0x0a0d0d0a) return readPcapng(file, dv);
  return readPcap(file, dv);
}

function readPcap(file: Uint8Array, dv: DataView): CaptureRecord[] {
  if (file.length < 24) throw new InvalidArgumentError('pcap header truncated');
  const magicLe = dv.getUint32(0, true);
  const magicBe = dv.getUint32(0, false);
  let le: boolean;
  let fracScale: number;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) {
    le = true;
    fracScale = magicLe === 0xa1b23c4d ? 1e-9 : 1e-6;
  } else if (magicBe === 0xa1b2c3d4 || magicBe === 0xa1b23c4d) {
    le = false;
    fracScale = magicBe === 0xa1b23c4d ? 1e-9 : 1e-6;
  } else {
    throw new InvalidArgumentError('not a pcap or pcapng file');
  }
  // The link type is the low 16 bits; the high ones may describe an FCS.
  const linkType = dv.getUint32(20, le) & 0xffff;
  const out: CaptureRecord[] = [];
  let o = 24;
  while (o + 16 <= file.length) {
    const sec = dv.getUint32(o, le);
    const frac = dv.getUint32(o + 4, le);
    const incl = dv.getUint32(o + 8, le);
    const orig = dv.getUint32(o + 12, le);
    o += 16;
    if (o + incl > file.length) throw new InvalidArgumentError('pcap record truncated');
    out.push({ linkType, timestamp: sec + frac * fracScale, data: file.subarray(o, o + incl), originalLength: orig });
    o += incl;
  }
  return out;
}

interface PcapngInterface {
  linkType: number;
  /** Seconds per timestamp unit. */
  unit: number;
}

function readPcapng(file: Uint8Array, dv: DataView): CaptureRecord[] {
  const out: CaptureRecord[] = [];
  let ifaces: PcapngInterface[] = [];
  let le = true;
  let o = 0;
  while (o + 12 <= file.length) {
    let type = dv.getUint32(o, le);
    if (type === 0x0a0d0d0a) {
      // Each section states its own byte order.
      const bom = dv.getUint32(o + 8, true);
      if (bom === 0x1a2b3c4d) le = true;
      else if (bom === 0x4d3c2b1a) le = false;
      else throw new InvalidArgumentError('pcapng byte-order magic not recognised');
      type = 0x0a0d0d0a;
      ifaces = [];
    }
    const len = dv.getUint32(o + 4, le);
    if (len < 12 || len % 4 !== 0 || o + len > file.length) throw new InvalidArgumentError('pcapng block truncated');
    const body = o + 8;
    const bodyEnd = o + len - 4;
    if (type === 1) {
      ifaces.push({ linkType: dv.getUint16(body, le), unit: interfaceUnit(file, dv, body + 8, bodyEnd, le) });
    } else if (type === 6 || type === 3) {
      const enhanced = type === 6;
      const iface = ifaces[enhanced ? dv.getUint32(body, le) : 0];
      if (!iface) throw new InvalidArgumentError('pcapng packet on an undeclared interface');
      let timestamp = 0;
      let caplen: number;
      let orig: number;
      let dataAt: number;
      if (enhanced) {
        timestamp = (dv.getUint32(body + 4, le) * 4294967296 + dv.getUint32(body + 8, le)) * iface.unit;
        caplen = dv.getUint32(body + 12, le);
        orig = dv.getUint32(body + 16, le);
        dataAt = body + 20;
      } else {
        orig = dv.getUint32(body, le);
        dataAt = body + 4;
        caplen = Math.min(orig, bodyEnd - dataAt);
      }
      if (dataAt + caplen > bodyEnd) throw new InvalidArgumentError('pcapng packet overruns its block');
      out.push({ linkType: iface.linkType, timestamp, data: file.subarray(dataAt, dataAt + caplen), originalLength: orig });
    }
    o += len;
  }
  return out;
}

/** The if_tsresol option of an Interface Description Block: 10^-n, or 2^-n with the top bit set; µs by default. */
function interfaceUnit(file: Uint8Array, dv: DataView, o: number, end: number, le: boolean): number {
  while (o + 4 <= end) {
    const code = dv.getUint16(o, le);
    const len = dv.getUint16(o + 2, le);
    if (code === 0) break;
    if (code === 9 && len >= 1) {
      const v = file[o + 4]!;
      return v & 0x80 ? 2 ** -(v & 0x7f) : 10 ** -v;
    }
    o += 4 + ((len + 3) & ~3);
  }
  return 1e-6;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const VLAN_TPIDS = new Set([0x8100, 0x88a8, 0x9100]);

function byEthertype(frame: Uint8Array, type: number, at: number): Uint8Array | undefined {
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? frame.subarray(at) : undefined;
}

/** The IP packet inside a link-layer frame, or undefined if it carries something else. */
export function ipFromLinkFrame(linkType: number, frame: Uint8Array): Uint8Array | undefined {
  const u16 = (o: number) => (frame[o]! << 8) | frame[o + 1]!;
  switch (linkType) {
    case LinkType.ETHERNET: {
      let o = 12;
      if (frame.length < 14) return undefined;
      while (VLAN_TPIDS.has(u16(o))) {
        o += 4;
        if (frame.length < o + 2) return undefined;
      }
      return byEthertype(frame, u16(o), o + 2);
    }
    case LinkType.LINUX_SLL:
      return frame.length < 16 ? undefined : byEthertype(frame, u16(14), 16);
    case LinkType.LINUX_SLL2:
      return frame.length < 20 ? undefined : byEthertype(frame, u16(0), 20);
    case LinkType.NULL: {
      // BSD loopback: a 4-byte address family in the capturing host's order;
      // the IP version nibble is simpler to trust.
      const v = frame.length > 4 ? frame[4]! >>> 4 : 0;
      return v === 4 || v === 6 ? frame.subarray(4) : undefined;
    }
    case LinkType.RAW:
    case LinkType.IPV4:
    case LinkType.IPV6: {
      const v = frame.length > 0 ? frame[0]! >>> 4 : 0;
      return v === 4 || v === 6 ? frame : undefined;
    }
    default:
      return undefined;
  }
}

export interface RoceInCapture {
  /** The whole IP packet, for computeIcrcFromFrame. */
  ip: Uint8Array;
  /** The UDP payload: BTH first, ICRC last. */
  roce: Uint8Array;
  udp: UdpInIp;
}

/** The RoCEv2 packet of a record (UDP to port 4791), or undefined. */
export function extractRoce(rec: CaptureRecord): RoceInCapture | undefined {
  if (typeof rec !== 'object' || rec === null || !(rec.data instanceof Uint8Array) || typeof rec.linkType !== 'number') {
    throw new InvalidArgumentError('extractRoce takes a record that readCapture returned');
  }
  const ip = ipFromLinkFrame(rec.linkType, rec.data);
  if (!ip) return undefined;
  const udp = locateUdp(ip);
  if (!udp || udp.dstPort !== ROCE_V2_UDP_PORT) return undefined;
  return { ip, roce: ip.subarray(udp.payloadOffset, udp.payloadOffset + udp.payloadLength), udp };
}
