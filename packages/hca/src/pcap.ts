import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { writeIpUdpFrame, type IpUdpEndpoints } from './packet/ip-frame.js';

// Classic libpcap file format: a 24-byte file header, then a 16-byte record
// header per packet, all in the writer's byte order (the magic tells a reader
// which). Wireshark dissects UDP port 4791 as RoCEv2 on its own.

const PCAP_MAGIC_US = 0xa1b2c3d4;
export const LINKTYPE_RAW = 101;
const SNAPLEN = 65535;
const RECORD_HEADER_BYTES = 16;
const MAX_FRAME = 40 + 8 + 65535;

/**
 * Writes RoCE packets as raw-IP captures, synchronously and in call order:
 * a debugging aid (IBAL_PCAP=file), not a data path. Each packet gets the
 * IP and UDP headers the ICRC calculators assume (IPv4 ID 0 with DF), so
 * every ICRC in the file verifies in Wireshark or computeIcrcFromFrame.
 */
export class PcapWriter {
  private fd: number | undefined;
  private readonly record = Buffer.alloc(RECORD_HEADER_BYTES + MAX_FRAME);
  private readonly frame = this.record.subarray(RECORD_HEADER_BYTES);

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'w');
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_RAW, 20);
    fs.writeSync(this.fd, h);
  }

  /** Record roce[0..len), a RoCE packet from BTH to ICRC, sent from ep.src to ep.dst. */
  writeRoce(ep: IpUdpEndpoints, roce: Uint8Array, len: number): void {
    if (this.fd === undefined) return;
    const n = writeIpUdpFrame(this.frame, ep, roce, Math.min(len, roce.length));
    this.writeRecord(n);
  }

  private writeRecord(n: number): void {
    const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const r = this.record;
    r.writeUInt32LE(Math.floor(us / 1e6) >>> 0, 0);
    r.writeUInt32LE(us % 1e6, 4);
    r.writeUInt32LE(Math.min(n, SNAPLEN), 8);
    r.writeUInt32LE(n, 12);
    fs.writeSync(this.fd!, r, 0, RECORD_HEADER_BYTES + Math.min(n, SNAPLEN));
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
