// The one send WR each test reuses for every post: the verbs layer and the
// soft HCA copy what they need at post time, so nothing is allocated per
// iteration.
import { WrOpcode, type SendWr } from '@ibal/verbs';
import type { PerfTest } from './options.js';
import type { PerfDest } from './protocol.js';
import type { PerfSide } from './resources.js';

const opcodes: Record<PerfTest, number> = {
  write: WrOpcode.RDMA_WRITE,
  read: WrOpcode.RDMA_READ,
  send: WrOpcode.SEND,
  atomic: WrOpcode.ATOMIC_FETCH_AND_ADD,
};

/**
 * WRITEs and SENDs go from the start of the MR; READs land there; WRITEs
 * target the peer's region (its second half for WRITE latency); atomics add
 * 1 to the peer's first 8 bytes and fetch the old value into ours.
 */
export function sendWrFor(test: PerfTest, side: PerfSide, remote: PerfDest, size: number, remoteOffset: number): SendWr {
  const wr: SendWr = { wrId: 0, opcode: opcodes[test], sendFlags: 0, sgList: [side.mr.sge(0, test === 'atomic' ? 8 : size)] };
  if (test === 'write' || test === 'read') wr.rdma = { remoteAddr: remote.addr + remoteOffset, rkey: remote.rkey };
  if (test === 'atomic') wr.atomic = { remoteAddr: remote.addr, rkey: remote.rkey, compareAdd: 1n };
  return wr;
}
