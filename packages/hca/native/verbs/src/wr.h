// Decoding pre-serialised WR records into ibv_send_wr/ibv_recv_wr, and
// translating ibv_wc into the completion record the TS side reads. Both are
// pure functions so the test-only exports run exactly the code a post or a
// poll runs, without a device.
#pragma once
#include <infiniband/verbs.h>
#include <cstdint>
#include <cstring>
#include "layout.h"

namespace ibal {

template <typename T>
inline T Rd(const uint8_t* p, uint32_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}
template <typename T>
inline void Wr(uint8_t* p, uint32_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}

// Resolves the ids records carry to the objects they name (nullptr: unknown):
// a UD record's AH, a BIND_MW record's window and MR.
struct HandleResolver {
  virtual ibv_ah* Resolve(uint32_t id) = 0;
  virtual ibv_mw* ResolveMw(uint32_t id) = 0;
  virtual ibv_mr* ResolveMr(uint32_t id) = 0;
  virtual ~HandleResolver() = default;
};

// Fills wrs[0..count) (linked) and their SGEs from the records. Returns -1,
// or the index of the first record that cannot be posted with `why` set.
int DecodeSendWrs(const uint8_t* base, uint32_t count, uint32_t recordMaxSge, bool ud, HandleResolver* ahs,
                  ibv_send_wr* wrs, ibv_sge* sges, const char** why);
int DecodeRecvWrs(const uint8_t* base, uint32_t count, uint32_t recordMaxSge, ibv_recv_wr* wrs, ibv_sge* sges,
                  const char** why);

// What the binding remembers about a posted WR, for the completion.
struct PostedInfo {
  double userWrId;
  bool send;
  uint32_t wcOpcode;  // for a send: the ibv_wc_opcode its WR opcode completes as
  uint32_t length;    // for a send: the gathered length (READ/atomic report it)
  uint32_t wrOpcode;
};

uint32_t WcOpcodeOfWr(uint32_t wrOpcode);
void TranslateWc(const ibv_wc& wc, const PostedInfo& info, uint8_t* out);

}  // namespace ibal
