// The fixed layout of work-request records and completion records shared
// with src/native/wr-buffer.ts. TS writes WRs into a reusable ArrayBuffer and
// C++ reads them in place, so a post allocates nothing on either side. The
// addon exports these numbers and the TS side refuses to run if they differ.
#pragma once
#include <cstdint>

namespace ibal {

// Send WR record: header then `maxSge` SGEs.
constexpr uint32_t kSendWrId = 0;        // f64
constexpr uint32_t kSendOpcode = 8;      // u32 ibv_wr_opcode
constexpr uint32_t kSendFlags = 12;      // u32 ibv_send_flags
constexpr uint32_t kSendImm = 16;        // u32 immediate, host order
constexpr uint32_t kSendNumSge = 20;     // u32
constexpr uint32_t kSendRemoteAddr = 24; // f64
constexpr uint32_t kSendRkey = 32;       // u32
constexpr uint32_t kSendAhId = 36;       // u32 (0: none)
constexpr uint32_t kSendCompareAdd = 40; // u64
constexpr uint32_t kSendSwap = 48;       // u64
constexpr uint32_t kSendRemoteQpn = 56;  // u32
constexpr uint32_t kSendRemoteQkey = 60; // u32
constexpr uint32_t kSendHeader = 64;

// Receive WR record.
constexpr uint32_t kRecvWrId = 0;    // f64
constexpr uint32_t kRecvNumSge = 8;  // u32
constexpr uint32_t kRecvHeader = 16;

// One SGE.
constexpr uint32_t kSgeAddr = 0;    // f64
constexpr uint32_t kSgeLength = 8;  // u32
constexpr uint32_t kSgeLkey = 12;   // u32
constexpr uint32_t kSgeSize = 16;

// Work completion record written by poll.
constexpr uint32_t kWcWrId = 0;       // f64
constexpr uint32_t kWcStatus = 8;     // u32
constexpr uint32_t kWcOpcode = 12;    // u32
constexpr uint32_t kWcVendorErr = 16; // u32
constexpr uint32_t kWcByteLen = 20;   // u32
constexpr uint32_t kWcImm = 24;       // u32 host order
constexpr uint32_t kWcQpNum = 28;     // u32
constexpr uint32_t kWcSrcQp = 32;     // u32
constexpr uint32_t kWcFlags = 36;     // u32
constexpr uint32_t kWcPkeyIndex = 40; // u16
constexpr uint32_t kWcSlid = 42;      // u16
constexpr uint32_t kWcSl = 44;        // u8
constexpr uint32_t kWcDlidPathBits = 45; // u8
constexpr uint32_t kWcSize = 48;

// WRs per post call and completions per poll call that the buffers hold.
constexpr uint32_t kWrBatch = 32;
constexpr uint32_t kPollBatch = 64;

inline uint32_t SendRecordSize(uint32_t maxSge) { return kSendHeader + kSgeSize * maxSge; }
inline uint32_t RecvRecordSize(uint32_t maxSge) { return kRecvHeader + kSgeSize * maxSge; }

}  // namespace ibal
