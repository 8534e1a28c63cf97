// ibal_verbs: libibverbs and librdmacm for @ibal/hca's native provider.
#include <napi.h>
#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <vector>
#include "common.h"
#include "context.h"
#include "layout.h"
#include "wr.h"

namespace ibal {

Napi::Object InitRdmaCm(Napi::Env env, Napi::Object exports);

// getDevices(): { devices: [{ name, guid, nodeType }], errno }. No device
// (or no kernel support) is an empty list and the errno libibverbs set.
static Napi::Value GetDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&n);
  int err = errno;
  Napi::Object out = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env);
  if (list) {
    for (int i = 0; i < n; i++) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("name", ibv_get_device_name(list[i]));
      d.Set("guid", Napi::BigInt::New(env, static_cast<uint64_t>(be64toh(ibv_get_device_guid(list[i])))));
      d.Set("nodeType", static_cast<int32_t>(list[i]->node_type));
      d.Set("transportType", static_cast<int32_t>(list[i]->transport_type));
      arr.Set(static_cast<uint32_t>(i), d);
    }
    ibv_free_device_list(list);
  }
  out.Set("devices", arr);
  out.Set("errno", list ? 0 : err);
  out.Set("code", list ? "" : ErrnoName(err ? err : ENODEV));
  return out;
}

static Napi::Object Layout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, uint32_t> fields[] = {
      {"sendWrId", kSendWrId}, {"sendOpcode", kSendOpcode}, {"sendFlags", kSendFlags}, {"sendImm", kSendImm},
      {"sendNumSge", kSendNumSge}, {"sendRemoteAddr", kSendRemoteAddr}, {"sendRkey", kSendRkey},
      {"sendAhId", kSendAhId}, {"sendCompareAdd", kSendCompareAdd}, {"sendSwap", kSendSwap},
      {"sendRemoteQpn", kSendRemoteQpn}, {"sendRemoteQkey", kSendRemoteQkey}, {"sendHeader", kSendHeader},
      {"recvWrId", kRecvWrId}, {"recvNumSge", kRecvNumSge}, {"recvHeader", kRecvHeader},
      {"sgeAddr", kSgeAddr}, {"sgeLength", kSgeLength}, {"sgeLkey", kSgeLkey}, {"sgeSize", kSgeSize},
      {"wcWrId", kWcWrId}, {"wcStatus", kWcStatus}, {"wcOpcode", kWcOpcode}, {"wcVendorErr", kWcVendorErr},
      {"wcByteLen", kWcByteLen}, {"wcImm", kWcImm}, {"wcQpNum", kWcQpNum}, {"wcSrcQp", kWcSrcQp},
      {"wcFlags", kWcFlags}, {"wcPkeyIndex", kWcPkeyIndex}, {"wcSlid", kWcSlid}, {"wcSl", kWcSl},
      {"wcDlidPathBits", kWcDlidPathBits}, {"wcSize", kWcSize}, {"wrBatch", kWrBatch}, {"pollBatch", kPollBatch},
  };
  for (auto& f : fields) o.Set(f.first, f.second);
  return o;
}

// ---- test-only exports: the decode and translate code a post/poll runs ----

namespace {
// Stands in for a context's handle tables: ids listed as live resolve to a
// distinct non-null marker that is reported back, never dereferenced.
struct ListedHandles : HandleResolver {
  std::vector<uint32_t> ids;
  template <typename T>
  T* Marker(uint32_t id) {
    for (uint32_t x : ids)
      if (x == id) return reinterpret_cast<T*>(static_cast<uintptr_t>(0x10000 + id));
    return nullptr;
  }
  ibv_ah* Resolve(uint32_t id) override { return Marker<ibv_ah>(id); }
  ibv_mw* ResolveMw(uint32_t id) override { return Marker<ibv_mw>(id); }
  ibv_mr* ResolveMr(uint32_t id) override { return Marker<ibv_mr>(id); }
};

double MarkerId(const void* p) { return p ? static_cast<double>(reinterpret_cast<uintptr_t>(p) - 0x10000) : 0; }

Napi::Array SgeArray(Napi::Env env, const ibv_sge* sg, int n) {
  Napi::Array a = Napi::Array::New(env);
  for (int i = 0; i < n; i++) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("addr", Napi::Number::New(env, static_cast<double>(sg[i].addr)));
    s.Set("length", Napi::Number::New(env, sg[i].length));
    s.Set("lkey", Napi::Number::New(env, sg[i].lkey));
    a.Set(static_cast<uint32_t>(i), s);
  }
  return a;
}
}  // namespace

// testDecodeSendWrs(buffer, count, maxSge, ud, liveIds): AH, window and MR ids
static Napi::Value TestDecodeSendWrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ab = info[0].As<Napi::ArrayBuffer>();
  uint32_t count = info[1].As<Napi::Number>().Uint32Value();
  uint32_t maxSge = info[2].As<Napi::Number>().Uint32Value();
  bool ud = info[3].ToBoolean();
  if (static_cast<size_t>(count) * SendRecordSize(maxSge) > ab.ByteLength()) throw ArgError(env, "records exceed the buffer");
  ListedHandles ahs;
  Napi::Array live = info[4].As<Napi::Array>();
  for (uint32_t i = 0; i < live.Length(); i++) ahs.ids.push_back(live.Get(i).As<Napi::Number>().Uint32Value());
  std::vector<ibv_send_wr> wrs(count ? count : 1);
  std::vector<ibv_sge> sges(static_cast<size_t>(count ? count : 1) * maxSge);
  const char* why = nullptr;
  int bad = DecodeSendWrs(static_cast<uint8_t*>(ab.Data()), count, maxSge, ud, &ahs, wrs.data(), sges.data(), &why);
  uint32_t n = bad >= 0 ? static_cast<uint32_t>(bad) : count;
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t i = 0; i < n; i++) {
    const ibv_send_wr& w = wrs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("wrId", Napi::Number::New(env, static_cast<double>(w.wr_id)));
    o.Set("opcode", static_cast<uint32_t>(w.opcode));
    o.Set("sendFlags", w.send_flags);
    o.Set("immDataBe", Napi::Number::New(env, w.imm_data));
    o.Set("immData", Napi::Number::New(env, ntohl(w.imm_data)));
    o.Set("sgList", SgeArray(env, w.sg_list, w.num_sge));
    o.Set("linked", Napi::Boolean::New(env, i + 1 < n ? w.next == &wrs[i + 1] : true));
    if (ud) {
      Napi::Object u = Napi::Object::New(env);
      u.Set("ah", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(w.wr.ud.ah) - 0x10000)));
      u.Set("remoteQpn", Napi::Number::New(env, w.wr.ud.remote_qpn));
      u.Set("remoteQkey", Napi::Number::New(env, w.wr.ud.remote_qkey));
      o.Set("ud", u);
    } else if (w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || w.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
      Napi::Object a = Napi::Object::New(env);
      a.Set("remoteAddr", Napi::Number::New(env, static_cast<double>(w.wr.atomic.remote_addr)));
      a.Set("rkey", Napi::Number::New(env, w.wr.atomic.rkey));
      a.Set("compareAdd", Napi::BigInt::New(env, static_cast<uint64_t>(w.wr.atomic.compare_add)));
      a.Set("swap", Napi::BigInt::New(env, static_cast<uint64_t>(w.wr.atomic.swap)));
      o.Set("atomic", a);
    } else if (w.opcode == IBV_WR_BIND_MW) {
      Napi::Object b = Napi::Object::New(env);
      b.Set("mw", Napi::Number::New(env, MarkerId(w.bind_mw.mw)));
      b.Set("rkey", Napi::Number::New(env, w.bind_mw.rkey));
      b.Set("mr", Napi::Number::New(env, MarkerId(w.bind_mw.bind_info.mr)));
      b.Set("addr", Napi::Number::New(env, static_cast<double>(w.bind_mw.bind_info.addr)));
      b.Set("length", Napi::Number::New(env, static_cast<double>(w.bind_mw.bind_info.length)));
      b.Set("mwAccessFlags", Napi::Number::New(env, w.bind_mw.bind_info.mw_access_flags));
      o.Set("bindMw", b);
    } else if (w.opcode == IBV_WR_LOCAL_INV || w.opcode == IBV_WR_SEND_WITH_INV) {
      o.Set("invalidateRkey", Napi::Number::New(env, w.invalidate_rkey));
    } else if (w.opcode != IBV_WR_SEND && w.opcode != IBV_WR_SEND_WITH_IMM) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("remoteAddr", Napi::Number::New(env, static_cast<double>(w.wr.rdma.remote_addr)));
      r.Set("rkey", Napi::Number::New(env, w.wr.rdma.rkey));
      o.Set("rdma", r);
    }
    out.Set(i, o);
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("wrs", out);
  res.Set("bad", bad);
  res.Set("why", why ? why : "");
  return res;
}

// testDecodeRecvWrs(buffer, count, maxSge)
static Napi::Value TestDecodeRecvWrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ab = info[0].As<Napi::ArrayBuffer>();
  uint32_t count = info[1].As<Napi::Number>().Uint32Value();
  uint32_t maxSge = info[2].As<Napi::Number>().Uint32Value();
  if (static_cast<size_t>(count) * RecvRecordSize(maxSge) > ab.ByteLength()) throw ArgError(env, "records exceed the buffer");
  std::vector<ibv_recv_wr> wrs(count ? count : 1);
  std::vector<ibv_sge> sges(static_cast<size_t>(count ? count : 1) * maxSge);
  const char* why = nullptr;
  int bad = DecodeRecvWrs(static_cast<uint8_t*>(ab.Data()), count, maxSge, wrs.data(), sges.data(), &why);
  uint32_t n = bad >= 0 ? static_cast<uint32_t>(bad) : count;
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("wrId", Napi::Number::New(env, static_cast<double>(wrs[i].wr_id)));
    o.Set("sgList", SgeArray(env, wrs[i].sg_list, wrs[i].num_sge));
    out.Set(i, o);
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("wrs", out);
  res.Set("bad", bad);
  res.Set("why", why ? why : "");
  return res;
}

// testTranslateWc(ibvWc, posted, out): one synthetic ibv_wc through the
// translation poll uses. `posted` is what the binding recorded at post time.
static Napi::Value TestTranslateWc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object w = info[0].As<Napi::Object>();
  Napi::Object p = info[1].As<Napi::Object>();
  auto out = info[2].As<Napi::ArrayBuffer>();
  if (out.ByteLength() < kWcSize) throw ArgError(env, "out buffer too small");
  ibv_wc wc{};
  wc.wr_id = 0xdeadbeef;  // the binding's own wr_id; the user's comes from `posted`
  wc.status = static_cast<ibv_wc_status>(U32(w, "status", 0));
  wc.opcode = static_cast<ibv_wc_opcode>(U32(w, "opcode", 0));
  wc.vendor_err = U32(w, "vendorErr", 0);
  wc.byte_len = U32(w, "byteLen", 0);
  wc.imm_data = htonl(U32(w, "immData", 0));  // as the wire delivers it: network order
  if (w.Has("invalidatedRkey")) wc.invalidated_rkey = U32(w, "invalidatedRkey", 0);  // the union's other member, host order
  wc.qp_num = U32(w, "qpNum", 0);
  wc.src_qp = U32(w, "srcQp", 0);
  wc.wc_flags = U32(w, "wcFlags", 0);
  wc.pkey_index = static_cast<uint16_t>(U32(w, "pkeyIndex", 0));
  wc.slid = static_cast<uint16_t>(U32(w, "slid", 0));
  wc.sl = static_cast<uint8_t>(U32(w, "sl", 0));
  wc.dlid_path_bits = static_cast<uint8_t>(U32(w, "dlidPathBits", 0));
  PostedInfo pi{};
  pi.userWrId = p.Get("wrId").As<Napi::Number>().DoubleValue();
  pi.send = p.Get("send").ToBoolean();
  pi.wrOpcode = U32(p, "wrOpcode", 0);
  pi.wcOpcode = WcOpcodeOfWr(pi.wrOpcode);
  pi.length = U32(p, "length", 0);
  TranslateWc(wc, pi, static_cast<uint8_t*>(out.Data()));
  return env.Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getDevices", Napi::Function::New(env, GetDevices));
  exports.Set("allocBuffer", Napi::Function::New(env, AllocBuffer));
  exports.Set("isBindingBuffer", Napi::Function::New(env, IsBindingBuffer));
  exports.Set("Context", Context::Init(env));
  exports.Set("layout", Layout(env));
  exports.Set("testDecodeSendWrs", Napi::Function::New(env, TestDecodeSendWrs));
  exports.Set("testDecodeRecvWrs", Napi::Function::New(env, TestDecodeRecvWrs));
  exports.Set("testTranslateWc", Napi::Function::New(env, TestTranslateWc));
  InitRdmaCm(env, exports);
  return exports;
}

}  // namespace ibal

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return ibal::Init(env, exports); }

NODE_API_MODULE(ibal_verbs, InitAll)
