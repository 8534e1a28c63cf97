#include "wr.h"
#include <arpa/inet.h>

namespace ibal {

uint32_t WcOpcodeOfWr(uint32_t op) {
  switch (op) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM: return IBV_WC_RDMA_WRITE;
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
    case IBV_WR_SEND_WITH_INV: return IBV_WC_SEND;
    case IBV_WR_LOCAL_INV: return IBV_WC_LOCAL_INV;
    case IBV_WR_BIND_MW: return IBV_WC_BIND_MW;
    case IBV_WR_RDMA_READ: return IBV_WC_RDMA_READ;
    case IBV_WR_ATOMIC_CMP_AND_SWP: return IBV_WC_COMP_SWAP;
    case IBV_WR_ATOMIC_FETCH_AND_ADD: return IBV_WC_FETCH_ADD;
    default: return IBV_WC_SEND;
  }
}

static uint64_t U64OfDouble(double d) { return d <= 0 ? 0 : static_cast<uint64_t>(d); }

int DecodeSendWrs(const uint8_t* base, uint32_t count, uint32_t recordMaxSge, bool ud, HandleResolver* ahs,
                  ibv_send_wr* wrs, ibv_sge* sges, const char** why) {
  const uint32_t rec = SendRecordSize(recordMaxSge);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* r = base + i * rec;
    ibv_send_wr& w = wrs[i];
    std::memset(&w, 0, sizeof w);
    w.wr_id = U64OfDouble(Rd<double>(r, kSendWrId));
    const uint32_t op = Rd<uint32_t>(r, kSendOpcode);
    if (op > IBV_WR_SEND_WITH_INV) {
      *why = "unknown opcode";
      return static_cast<int>(i);
    }
    w.opcode = static_cast<ibv_wr_opcode>(op);
    w.send_flags = Rd<uint32_t>(r, kSendFlags);
    if (op == IBV_WR_RDMA_WRITE_WITH_IMM || op == IBV_WR_SEND_WITH_IMM) w.imm_data = htonl(Rd<uint32_t>(r, kSendImm));
    // The record's immediate field carries invalidate_rkey, as ibv_send_wr's union does (host order).
    if (op == IBV_WR_LOCAL_INV || op == IBV_WR_SEND_WITH_INV) w.invalidate_rkey = Rd<uint32_t>(r, kSendImm);
    const uint32_t n = Rd<uint32_t>(r, kSendNumSge);
    if (n > recordMaxSge) {
      *why = "more SGEs than the QP's max_send_sge";
      return static_cast<int>(i);
    }
    ibv_sge* sg = sges + i * recordMaxSge;
    for (uint32_t s = 0; s < n; s++) {
      const uint8_t* e = r + kSendHeader + s * kSgeSize;
      sg[s].addr = U64OfDouble(Rd<double>(e, kSgeAddr));
      sg[s].length = Rd<uint32_t>(e, kSgeLength);
      sg[s].lkey = Rd<uint32_t>(e, kSgeLkey);
    }
    w.sg_list = n ? sg : nullptr;
    w.num_sge = static_cast<int>(n);
    if (ud) {
      const uint32_t ahId = Rd<uint32_t>(r, kSendAhId);
      ibv_ah* ah = ahs ? ahs->Resolve(ahId) : nullptr;
      if (!ah) {
        *why = "UD work request without a live address handle";
        return static_cast<int>(i);
      }
      w.wr.ud.ah = ah;
      w.wr.ud.remote_qpn = Rd<uint32_t>(r, kSendRemoteQpn);
      w.wr.ud.remote_qkey = Rd<uint32_t>(r, kSendRemoteQkey);
    } else if (op == IBV_WR_ATOMIC_CMP_AND_SWP || op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
      w.wr.atomic.remote_addr = U64OfDouble(Rd<double>(r, kSendRemoteAddr));
      w.wr.atomic.rkey = Rd<uint32_t>(r, kSendRkey);
      w.wr.atomic.compare_add = Rd<uint64_t>(r, kSendCompareAdd);
      w.wr.atomic.swap = Rd<uint64_t>(r, kSendSwap);
    } else if (op == IBV_WR_BIND_MW) {
      // A bind reuses the header: window id in the AH slot, MR id in the remote QPN slot,
      // address and length in the remote address and compare/add slots, access in the Q_Key slot.
      ibv_mw* mw = ahs ? ahs->ResolveMw(Rd<uint32_t>(r, kSendAhId)) : nullptr;
      const uint32_t mrId = Rd<uint32_t>(r, kSendRemoteQpn);
      ibv_mr* mr = mrId && ahs ? ahs->ResolveMr(mrId) : nullptr;
      if (!mw || (mrId && !mr)) {
        *why = mw ? "BIND_MW names a deregistered MR" : "BIND_MW names a deallocated window";
        return static_cast<int>(i);
      }
      w.bind_mw.mw = mw;
      w.bind_mw.rkey = Rd<uint32_t>(r, kSendRkey);
      w.bind_mw.bind_info.mr = mr;
      w.bind_mw.bind_info.addr = U64OfDouble(Rd<double>(r, kSendRemoteAddr));
      w.bind_mw.bind_info.length = Rd<uint64_t>(r, kSendCompareAdd);
      w.bind_mw.bind_info.mw_access_flags = Rd<uint32_t>(r, kSendRemoteQkey);
    } else if (op == IBV_WR_RDMA_WRITE || op == IBV_WR_RDMA_WRITE_WITH_IMM || op == IBV_WR_RDMA_READ) {
      w.wr.rdma.remote_addr = U64OfDouble(Rd<double>(r, kSendRemoteAddr));
      w.wr.rdma.rkey = Rd<uint32_t>(r, kSendRkey);
    }
    w.next = i + 1 < count ? &wrs[i + 1] : nullptr;
  }
  return -1;
}

int DecodeRecvWrs(const uint8_t* base, uint32_t count, uint32_t recordMaxSge, ibv_recv_wr* wrs, ibv_sge* sges,
                  const char** why) {
  const uint32_t rec = RecvRecordSize(recordMaxSge);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* r = base + i * rec;
    ibv_recv_wr& w = wrs[i];
    std::memset(&w, 0, sizeof w);
    w.wr_id = U64OfDouble(Rd<double>(r, kRecvWrId));
    const uint32_t n = Rd<uint32_t>(r, kRecvNumSge);
    if (n > recordMaxSge) {
      *why = "more SGEs than the queue's max_recv_sge";
      return static_cast<int>(i);
    }
    ibv_sge* sg = sges + i * recordMaxSge;
    for (uint32_t s = 0; s < n; s++) {
      const uint8_t* e = r + kRecvHeader + s * kSgeSize;
      sg[s].addr = U64OfDouble(Rd<double>(e, kSgeAddr));
      sg[s].length = Rd<uint32_t>(e, kSgeLength);
      sg[s].lkey = Rd<uint32_t>(e, kSgeLkey);
    }
    w.sg_list = n ? sg : nullptr;
    w.num_sge = static_cast<int>(n);
    w.next = i + 1 < count ? &wrs[i + 1] : nullptr;
  }
  return -1;
}

// Only wr_id, status, qp_num and vendor_err are defined in an error
// completion; the rest comes from what the binding recorded at post time, so
// a failed WR reads exactly as the soft HCA reports it.
void TranslateWc(const ibv_wc& wc, const PostedInfo& info, uint8_t* out) {
  const bool ok = wc.status == IBV_WC_SUCCESS;
  const uint32_t status = static_cast<uint32_t>(wc.status) <= IBV_WC_GENERAL_ERR ? wc.status : IBV_WC_GENERAL_ERR;
  Wr<double>(out, kWcWrId, info.userWrId);
  Wr<uint32_t>(out, kWcStatus, status);
  Wr<uint32_t>(out, kWcVendorErr, wc.vendor_err);
  Wr<uint32_t>(out, kWcQpNum, wc.qp_num);
  if (info.send) {
    const bool readOrAtomic = info.wrOpcode == IBV_WR_RDMA_READ || info.wrOpcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
                              info.wrOpcode == IBV_WR_ATOMIC_FETCH_AND_ADD;
    Wr<uint32_t>(out, kWcOpcode, info.wcOpcode);
    Wr<uint32_t>(out, kWcByteLen, readOrAtomic ? info.length : 0);
    Wr<uint32_t>(out, kWcImm, 0);
    Wr<uint32_t>(out, kWcSrcQp, 0);
    Wr<uint32_t>(out, kWcFlags, 0);
    Wr<uint16_t>(out, kWcPkeyIndex, 0);
  } else {
    const uint32_t flags = ok ? (wc.wc_flags & (IBV_WC_GRH | IBV_WC_WITH_IMM | IBV_WC_WITH_INV)) : 0;
    const uint32_t op = ok && wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM ? IBV_WC_RECV_RDMA_WITH_IMM : IBV_WC_RECV;
    Wr<uint32_t>(out, kWcOpcode, op);
    Wr<uint32_t>(out, kWcByteLen, ok ? wc.byte_len : 0);
    // One field, as ibv_wc's union: the immediate (network order on the wire) or the invalidated rkey (host order).
    Wr<uint32_t>(out, kWcImm, (flags & IBV_WC_WITH_IMM) ? ntohl(wc.imm_data) : (flags & IBV_WC_WITH_INV) ? wc.invalidated_rkey : 0);
    Wr<uint32_t>(out, kWcSrcQp, ok ? wc.src_qp : 0);
    Wr<uint32_t>(out, kWcFlags, flags);
    Wr<uint16_t>(out, kWcPkeyIndex, ok ? wc.pkey_index : 0);
  }
  Wr<uint16_t>(out, kWcSlid, ok && !info.send ? wc.slid : 0);
  Wr<uint8_t>(out, kWcSl, ok && !info.send ? wc.sl : 0);
  Wr<uint8_t>(out, kWcDlidPathBits, ok && !info.send ? wc.dlid_path_bits : 0);
}

}  // namespace ibal
