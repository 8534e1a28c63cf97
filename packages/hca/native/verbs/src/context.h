#pragma once
#include <napi.h>
#include <uv.h>
#include <infiniband/verbs.h>
#include <string>
#include <unordered_map>
#include <vector>
#include "layout.h"
#include "wr.h"
#include "uv-box.h"

namespace ibal {

struct Mem;

struct Mr {
  uint32_t id;
  ibv_mr* mr;
  Mem* mem;
  // Posted WRs whose SGEs name this MR and have not completed.
  uint32_t inflight;
};

// Receive slots: wr_id of a posted receive is its slot, so SRQ completions
// arriving out of order still find the user's wr_id and pins.
struct RecvQueue {
  uint32_t maxSge = 1;
  std::vector<double> wrIds;
  std::vector<uint16_t> npins;
  std::vector<Mr*> pins;
  std::vector<uint32_t> freeSlots;
  std::vector<ibv_recv_wr> wrs;
  std::vector<ibv_sge> sges;
  uint8_t* records = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffer;
  void Init(Napi::Env env, uint32_t slots, uint32_t maxSge);
  void Release(uint32_t slot);
  void ReleaseAll();
};

// Send slots form a ring in post order; a completion retires every WR up to
// it, since unsignaled WRs before a signaled one completed with it.
struct SendQueue {
  uint32_t size = 1;
  uint32_t maxSge = 1;
  uint64_t head = 0, tail = 0;
  std::vector<double> wrIds;
  std::vector<uint32_t> wrOp;
  std::vector<uint32_t> length;
  std::vector<uint16_t> npins;
  std::vector<Mr*> pins;
  std::vector<ibv_send_wr> wrs;
  std::vector<ibv_sge> sges;
  uint8_t* records = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffer;
  void Init(Napi::Env env, uint32_t slots, uint32_t maxSge);
  void RetireThrough(uint64_t seq);
};

struct Cq {
  uint32_t id = 0;
  ibv_cq* cq = nullptr;
  bool armed = false;
  ibv_wc wcs[kPollBatch];
  uint8_t* out = nullptr;
  Napi::Reference<Napi::ArrayBuffer> outRef;
};

struct Srq {
  uint32_t id = 0;
  ibv_srq* srq = nullptr;
  uint32_t users = 0;
  RecvQueue rq;
};

struct Qp {
  uint32_t id = 0;
  ibv_qp* qp = nullptr;
  ibv_qp_type type = IBV_QPT_RC;
  ibv_qp_cap cap{};
  Srq* srq = nullptr;
  SendQueue sq;
  RecvQueue rq;
};

Napi::Value AllocBuffer(const Napi::CallbackInfo& info);
Napi::Value IsBindingBuffer(const Napi::CallbackInfo& info);

class Context : public Napi::ObjectWrap<Context>, public HandleResolver {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference ctor;
  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;
  ibv_ah* Resolve(uint32_t id) override;
  ibv_mw* ResolveMw(uint32_t id) override;
  ibv_mr* ResolveMr(uint32_t id) override;

 private:
  Napi::Value QueryDevice(const Napi::CallbackInfo& info);
  Napi::Value QueryDeviceEx(const Napi::CallbackInfo& info);
  Napi::Value QueryPort(const Napi::CallbackInfo& info);
  Napi::Value QueryGid(const Napi::CallbackInfo& info);
  Napi::Value AllocPd(const Napi::CallbackInfo& info);
  Napi::Value DeallocPd(const Napi::CallbackInfo& info);
  Napi::Value RegMr(const Napi::CallbackInfo& info);
  Napi::Value DeregMr(const Napi::CallbackInfo& info);
  Napi::Value MrInflight(const Napi::CallbackInfo& info);
  Napi::Value AllocMw(const Napi::CallbackInfo& info);
  Napi::Value DeallocMw(const Napi::CallbackInfo& info);
  Napi::Value BindMw(const Napi::CallbackInfo& info);
  Napi::Value AttachMcast(const Napi::CallbackInfo& info);
  Napi::Value DetachMcast(const Napi::CallbackInfo& info);
  Napi::Value CreateCq(const Napi::CallbackInfo& info);
  Napi::Value DestroyCq(const Napi::CallbackInfo& info);
  Napi::Value ResizeCq(const Napi::CallbackInfo& info);
  Napi::Value ReqNotifyCq(const Napi::CallbackInfo& info);
  Napi::Value PollCq(const Napi::CallbackInfo& info);
  Napi::Value CreateQp(const Napi::CallbackInfo& info);
  Napi::Value ModifyQp(const Napi::CallbackInfo& info);
  Napi::Value QueryQp(const Napi::CallbackInfo& info);
  Napi::Value DestroyQp(const Napi::CallbackInfo& info);
  Napi::Value PostSend(const Napi::CallbackInfo& info);
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value CreateSrq(const Napi::CallbackInfo& info);
  Napi::Value ModifySrq(const Napi::CallbackInfo& info);
  Napi::Value QuerySrq(const Napi::CallbackInfo& info);
  Napi::Value PostSrqRecv(const Napi::CallbackInfo& info);
  Napi::Value DestroySrq(const Napi::CallbackInfo& info);
  Napi::Value CreateAh(const Napi::CallbackInfo& info);
  Napi::Value DestroyAh(const Napi::CallbackInfo& info);
  Napi::Value LastPostError(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  Context* Check(const Napi::CallbackInfo& info);
  void Complete(const ibv_wc& wc, uint8_t* out);
  int PostRecvTo(RecvQueue& r, ibv_qp* qp, ibv_srq* srq, uint32_t count);
  void SetPostError(int err, const char* why);
  void FreeCq(Cq* c);
  void FreeQp(Qp* q);
  void UpdateRef();
  void Shutdown();
  void Invoke(Napi::FunctionReference& fn, std::initializer_list<napi_value> args);
  static void OnCqReadable(uv_poll_t* h, int status, int events);
  static void OnAsyncReadable(uv_poll_t* h, int status, int events);

  Napi::Env env_;
  ibv_context* ctx_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  ibal::UvBox<uv_poll_t>* cqPoll_ = nullptr;
  ibal::UvBox<uv_poll_t>* asyncPoll_ = nullptr;
  Napi::AsyncContext* asyncCtx_ = nullptr;
  Napi::FunctionReference onCq_, onAsync_;
  int armed_ = 0;
  uint32_t nextId_ = 1;
  int postErrno_ = 0;
  const char* postWhy_ = nullptr;
  std::unordered_map<uint32_t, ibv_pd*> pds_;
  std::unordered_map<uint32_t, Mr*> mrs_;
  std::unordered_map<uint32_t, Mr*> mrByLkey_;
  std::unordered_map<uint32_t, Cq*> cqs_;
  std::unordered_map<uint32_t, Qp*> qps_;
  std::unordered_map<uint32_t, Qp*> qpByNum_;
  std::unordered_map<uint32_t, Srq*> srqs_;
  std::unordered_map<uint32_t, ibv_ah*> ahs_;
  std::unordered_map<uint32_t, ibv_mw*> mws_;
};

}  // namespace ibal
