// ibv_wc -> WorkCompletion: synthetic ibv_wc values through the addon's
// translation (the code pollCq runs) and the TS record reader, checked
// against the shape and rules the soft HCA's completions follow.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WcFlags, WcOpcode, WcStatus, WrOpcode, wcStatusName } from '../src/enums.js';
import { newWorkCompletion, type WorkCompletion } from '../src/provider.js';
import { tryVerbs } from '../src/native/load.js';
import { LAYOUT, WcReader } from '../src/native/wr-buffer.js';

const addon = tryVerbs();
const required = fs.existsSync('/usr/include/infiniband/verbs.h') || process.env.IBAL_NATIVE_REQUIRED === '1';

// libibverbs' ibv_wc_status runs past GENERAL_ERR with tag-matching errors.
const IBV_WC_TM_ERR = 22;
const IBV_WC_TM_RNDV_INCOMPLETE = 23;

const wcOpcodeOfWr: Record<number, number> = {
  [WrOpcode.RDMA_WRITE]: WcOpcode.RDMA_WRITE,
  [WrOpcode.RDMA_WRITE_WITH_IMM]: WcOpcode.RDMA_WRITE,
  [WrOpcode.SEND]: WcOpcode.SEND,
  [WrOpcode.SEND_WITH_IMM]: WcOpcode.SEND,
  [WrOpcode.RDMA_READ]: WcOpcode.RDMA_READ,
  [WrOpcode.ATOMIC_CMP_AND_SWP]: WcOpcode.COMP_SWAP,
  [WrOpcode.ATOMIC_FETCH_AND_ADD]: WcOpcode.FETCH_ADD,
  [WrOpcode.LOCAL_INV]: WcOpcode.LOCAL_INV,
  [WrOpcode.BIND_MW]: WcOpcode.BIND_MW,
  [WrOpcode.SEND_WITH_INV]: WcOpcode.SEND,
};

describe.skipIf(!addon && !required)('native completion translation', () => {
  const a = addon!;
  const out = new ArrayBuffer(LAYOUT.wcSize);
  const reader = new WcReader(out);
  function translate(wc: Record<string, number>, posted: { wrId: number; send: boolean; wrOpcode?: number; length?: number }): WorkCompletion {
    new Uint8Array(out).fill(0xa5);
    a.testTranslateWc(wc, posted, out);
    const r = newWorkCompletion();
    reader.read(0, r);
    return r;
  }

  it('produces the soft provider\'s WorkCompletion shape', () => {
    const wc = translate({ status: 0, opcode: WcOpcode.RECV, byteLen: 3, qpNum: 5 }, { wrId: 1, send: false });
    expect(Object.keys(wc).sort()).toEqual(Object.keys(newWorkCompletion()).sort());
  });

  it('every status of every send opcode: the user wr_id, the posted opcode, READ/atomic length', () => {
    const statuses = [...Object.values(WcStatus), IBV_WC_TM_ERR, IBV_WC_TM_RNDV_INCOMPLETE];
    for (const status of statuses) {
      for (const wrOpcode of Object.values(WrOpcode)) {
        // A failed ibv_wc's opcode is undefined: give it garbage.
        const hwOpcode = status === 0 ? wcOpcodeOfWr[wrOpcode]! : 0x55;
        const wrId = 2 ** 52 + status * 16 + wrOpcode;
        const wc = translate(
          { status, opcode: hwOpcode, vendorErr: status ? 0x1234 : 0, byteLen: 999, immData: 77, qpNum: 0xabcdef, srcQp: 9, wcFlags: 3, pkeyIndex: 4, slid: 5, sl: 6, dlidPathBits: 7 },
          { wrId, send: true, wrOpcode, length: 4096 },
        );
        const readOrAtomic = wrOpcode === WrOpcode.RDMA_READ || wrOpcode === WrOpcode.ATOMIC_CMP_AND_SWP || wrOpcode === WrOpcode.ATOMIC_FETCH_AND_ADD;
        const expectedStatus = status > WcStatus.GENERAL_ERR ? WcStatus.GENERAL_ERR : status;
        expect({ ...wc, statusName: wcStatusName(wc.status) }).toEqual({
          wrId,
          status: expectedStatus,
          statusName: wcStatusName(expectedStatus),
          opcode: wcOpcodeOfWr[wrOpcode],
          vendorErr: status ? 0x1234 : 0,
          byteLen: readOrAtomic ? 4096 : 0,
          immData: 0,
          invalidatedRkey: 0,
          completionTs: 0,
          qpNum: 0xabcdef,
          srcQp: 0,
          wcFlags: 0,
          pkeyIndex: 0,
          slid: 0,
          sl: 0,
          dlidPathBits: 0,
        });
      }
    }
  });

  it('receives: opcode, length, immediate in host order, flags, source QP', () => {
    const plain = translate({ status: 0, opcode: WcOpcode.RECV, byteLen: 1234, qpNum: 17, srcQp: 0x99, wcFlags: WcFlags.GRH, pkeyIndex: 1, slid: 0x22, sl: 3, dlidPathBits: 1 }, { wrId: 42, send: false });
    expect(plain).toEqual({ wrId: 42, status: 0, opcode: WcOpcode.RECV, vendorErr: 0, byteLen: 1234, immData: 0, invalidatedRkey: 0, completionTs: 0, qpNum: 17, srcQp: 0x99, wcFlags: WcFlags.GRH, pkeyIndex: 1, slid: 0x22, sl: 3, dlidPathBits: 1 });
    const imm = translate({ status: 0, opcode: WcOpcode.RECV, byteLen: 8, immData: 0x0102_0304, qpNum: 17, wcFlags: WcFlags.WITH_IMM }, { wrId: 43, send: false });
    expect([imm.opcode, imm.immData, imm.wcFlags]).toEqual([WcOpcode.RECV, 0x0102_0304, WcFlags.WITH_IMM]);
    const write = translate({ status: 0, opcode: WcOpcode.RECV_RDMA_WITH_IMM, byteLen: 5000, immData: 0xffff_fffe, qpNum: 17, wcFlags: WcFlags.WITH_IMM | 0x4 }, { wrId: 44, send: false });
    // Flags the soft HCA never sets (IP_CSUM_OK...) are dropped.
    expect([write.opcode, write.byteLen, write.immData, write.wcFlags]).toEqual([WcOpcode.RECV_RDMA_WITH_IMM, 5000, 0xffff_fffe, WcFlags.WITH_IMM]);
    // Immediate bits without WITH_IMM are not immediate data.
    expect(translate({ status: 0, opcode: WcOpcode.RECV, immData: 5, wcFlags: 0 }, { wrId: 1, send: false }).immData).toBe(0);
    // A Send with Invalidate: the union holds the rkey, in host order, and only invalidatedRkey shows it.
    const inv = translate({ status: 0, opcode: WcOpcode.RECV, byteLen: 64, immData: 0x1111_1111, invalidatedRkey: 0x8000_12ab, qpNum: 17, wcFlags: WcFlags.WITH_INV }, { wrId: 45, send: false });
    expect([inv.opcode, inv.byteLen, inv.immData, inv.invalidatedRkey, inv.wcFlags]).toEqual([WcOpcode.RECV, 64, 0, 0x8000_12ab, WcFlags.WITH_INV]);
  });

  it('every failed receive reads as a flushed soft receive: RECV, no length, flags or immediate', () => {
    for (const status of [...Object.values(WcStatus), IBV_WC_TM_ERR].filter((s) => s !== 0)) {
      const wc = translate({ status, opcode: 0x77, byteLen: 12, immData: 9, qpNum: 3, srcQp: 4, wcFlags: 3, pkeyIndex: 2, slid: 1, sl: 1, vendorErr: 0x51 }, { wrId: 8, send: false });
      expect(wc).toEqual({
        wrId: 8,
        status: Math.min(status, WcStatus.GENERAL_ERR),
        opcode: WcOpcode.RECV,
        vendorErr: 0x51,
        byteLen: 0,
        immData: 0,
        invalidatedRkey: 0,
        completionTs: 0,
        qpNum: 3,
        srcQp: 0,
        wcFlags: 0,
        pkeyIndex: 0,
        slid: 0,
        sl: 0,
        dlidPathBits: 0,
      });
    }
  });
});
