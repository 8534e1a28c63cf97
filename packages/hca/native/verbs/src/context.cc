// An open libibverbs device and everything created on it. Resources are
// named by small integer ids the TS classes hold; the C++ side keeps the
// bookkeeping a post and a poll need (the user's wr_id, what a WR pinned)
// in preallocated tables, so neither allocates.
#include "context.h"
#include "loop-call.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include "common.h"

namespace ibal {

// ---- binding-owned memory -------------------------------------------------

struct Mem {
  uint8_t* p;
  size_t len;
  size_t mapped;
  bool jsAlive;
  int regs;
};

// Node 20 refuses an ArrayBuffer over external memory longer than its
// kMaxLength (4 GiB) only after running the finalizer, which node-addon-api
// then runs again: no buffer longer than that may reach it (as sys/shm.cc).
constexpr double kMaxBuffer = 4294967296.0;

namespace {
std::map<uintptr_t, Mem*> memByStart;

void MaybeFree(Mem* m) {
  if (m->jsAlive || m->regs > 0) return;
  memByStart.erase(reinterpret_cast<uintptr_t>(m->p));
  munmap(m->p, m->mapped);
  delete m;
}

Mem* FindMem(const uint8_t* p, size_t len) {
  auto it = memByStart.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == memByStart.begin()) return nullptr;
  --it;
  Mem* m = it->second;
  if (p < m->p || p + len > m->p + m->len) return nullptr;
  return m;
}
}  // namespace

// Page-aligned memory the binding owns, exposed as an external ArrayBuffer.
// It outlives both the buffer and every registration of it: freed when the
// buffer is collected and no MR still names it.
Napi::Value AllocBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw ArgError(env, "allocBuffer: the length must be a number");
  double want = info[0].As<Napi::Number>().DoubleValue();
  if (!(want >= 0 && want <= kMaxBuffer && want == std::floor(want))) throw ArgError(env, "allocBuffer: the length must be an integer from 0 to 4 GiB");
  size_t len = static_cast<size_t>(want);
  long page = sysconf(_SC_PAGESIZE);
  size_t cap = std::max<size_t>((len + page - 1) / page * page, page);
  // Anonymous pages come zeroed and cost nothing until touched; zeroing
  // aligned heap memory here touched all of it (a large buffer ran the
  // machine out of memory before it was used).
  void* p = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw ErrnoError(env, errno, "mmap");
  Mem* m = new Mem{static_cast<uint8_t*>(p), len, cap, true, 0};
  memByStart[reinterpret_cast<uintptr_t>(p)] = m;
  return Napi::ArrayBuffer::New(env, p, len, [](Napi::Env, void*, Mem* mem) {
    mem->jsAlive = false;
    MaybeFree(mem);
  }, m);
}

Napi::Value IsBindingBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsArrayBuffer()) return Napi::Boolean::New(info.Env(), false);
  auto ab = info[0].As<Napi::ArrayBuffer>();
  auto* p = static_cast<uint8_t*>(ab.Data());
  return Napi::Boolean::New(info.Env(), p && FindMem(p, ab.ByteLength()) != nullptr);
}

// ---- queues ---------------------------------------------------------------

void RecvQueue::Init(Napi::Env env, uint32_t slotCount, uint32_t sge) {
  maxSge = std::max<uint32_t>(sge, 1);
  wrIds.assign(slotCount, 0);
  npins.assign(slotCount, 0);
  pins.assign(static_cast<size_t>(slotCount) * maxSge, nullptr);
  freeSlots.clear();
  for (uint32_t i = slotCount; i > 0; i--) freeSlots.push_back(i - 1);
  wrs.resize(kWrBatch);
  sges.resize(static_cast<size_t>(kWrBatch) * maxSge);
  auto ab = Napi::ArrayBuffer::New(env, static_cast<size_t>(kWrBatch) * RecvRecordSize(maxSge));
  records = static_cast<uint8_t*>(ab.Data());
  buffer = Napi::Persistent(ab);
}

void RecvQueue::Release(uint32_t slot) {
  for (uint16_t i = 0; i < npins[slot]; i++) pins[static_cast<size_t>(slot) * maxSge + i]->inflight--;
  npins[slot] = 0;
  freeSlots.push_back(slot);
}

void RecvQueue::ReleaseAll() {
  std::vector<bool> isFree(wrIds.size(), false);
  for (uint32_t s : freeSlots) isFree[s] = true;
  for (uint32_t s = 0; s < wrIds.size(); s++)
    if (!isFree[s]) Release(s);
}

void SendQueue::Init(Napi::Env env, uint32_t slotCount, uint32_t sge) {
  size = std::max<uint32_t>(slotCount, 1);
  maxSge = std::max<uint32_t>(sge, 1);
  head = tail = 0;
  wrIds.assign(size, 0);
  wrOp.assign(size, 0);
  length.assign(size, 0);
  npins.assign(size, 0);
  pins.assign(static_cast<size_t>(size) * maxSge, nullptr);
  wrs.resize(kWrBatch);
  sges.resize(static_cast<size_t>(kWrBatch) * maxSge);
  auto ab = Napi::ArrayBuffer::New(env, static_cast<size_t>(kWrBatch) * SendRecordSize(maxSge));
  records = static_cast<uint8_t*>(ab.Data());
  buffer = Napi::Persistent(ab);
}

void SendQueue::RetireThrough(uint64_t seq) {
  while (head <= seq && head < tail) {
    uint32_t slot = static_cast<uint32_t>(head % size);
    for (uint16_t i = 0; i < npins[slot]; i++) pins[static_cast<size_t>(slot) * maxSge + i]->inflight--;
    npins[slot] = 0;
    head++;
  }
}

// ---- Context --------------------------------------------------------------

Napi::FunctionReference Context::ctor;

Napi::Function Context::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Context", {
    InstanceMethod("queryDevice", &Context::QueryDevice),
    InstanceMethod("queryDeviceEx", &Context::QueryDeviceEx),
    InstanceMethod("queryPort", &Context::QueryPort),
    InstanceMethod("queryGid", &Context::QueryGid),
    InstanceMethod("allocPd", &Context::AllocPd),
    InstanceMethod("deallocPd", &Context::DeallocPd),
    InstanceMethod("regMr", &Context::RegMr),
    InstanceMethod("deregMr", &Context::DeregMr),
    InstanceMethod("mrInflight", &Context::MrInflight),
    InstanceMethod("allocMw", &Context::AllocMw),
    InstanceMethod("deallocMw", &Context::DeallocMw),
    InstanceMethod("bindMw", &Context::BindMw),
    InstanceMethod("attachMcast", &Context::AttachMcast),
    InstanceMethod("detachMcast", &Context::DetachMcast),
    InstanceMethod("createCq", &Context::CreateCq),
    InstanceMethod("destroyCq", &Context::DestroyCq),
    InstanceMethod("resizeCq", &Context::ResizeCq),
    InstanceMethod("reqNotifyCq", &Context::ReqNotifyCq),
    InstanceMethod("pollCq", &Context::PollCq),
    InstanceMethod("createQp", &Context::CreateQp),
    InstanceMethod("modifyQp", &Context::ModifyQp),
    InstanceMethod("queryQp", &Context::QueryQp),
    InstanceMethod("destroyQp", &Context::DestroyQp),
    InstanceMethod("postSend", &Context::PostSend),
    InstanceMethod("postRecv", &Context::PostRecv),
    InstanceMethod("createSrq", &Context::CreateSrq),
    InstanceMethod("modifySrq", &Context::ModifySrq),
    InstanceMethod("querySrq", &Context::QuerySrq),
    InstanceMethod("postSrqRecv", &Context::PostSrqRecv),
    InstanceMethod("destroySrq", &Context::DestroySrq),
    InstanceMethod("createAh", &Context::CreateAh),
    InstanceMethod("destroyAh", &Context::DestroyAh),
    InstanceMethod("lastPostError", &Context::LastPostError),
    InstanceMethod("close", &Context::Close),
  });
  ctor = Napi::Persistent(f);
  return f;
}

// new Context(deviceName, onCqEvent(cqId), onAsyncEvent(type, kind, id))
Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  onCq_ = Napi::Persistent(info[1].As<Napi::Function>());
  onAsync_ = Napi::Persistent(info[2].As<Napi::Function>());
  int n = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list) throw ErrnoError(env, errno ? errno : ENODEV, "ibv_get_device_list");
  for (int i = 0; i < n; i++) {
    if (name == ibv_get_device_name(list[i])) {
      ctx_ = ibv_open_device(list[i]);
      break;
    }
  }
  int err = errno;
  ibv_free_device_list(list);
  if (!ctx_) throw ErrnoError(env, err ? err : ENODEV, "ibv_open_device " + name);
  channel_ = ibv_create_comp_channel(ctx_);
  if (!channel_) {
    err = errno;
    ibv_close_device(ctx_);
    ctx_ = nullptr;
    throw ErrnoError(env, err, "ibv_create_comp_channel");
  }
  // Both fds are read only when uv_poll says they are readable; non-blocking
  // so a spurious wakeup cannot stall the event loop.
  fcntl(channel_->fd, F_SETFL, fcntl(channel_->fd, F_GETFL) | O_NONBLOCK);
  fcntl(ctx_->async_fd, F_SETFL, fcntl(ctx_->async_fd, F_GETFL) | O_NONBLOCK);
  asyncCtx_ = new Napi::AsyncContext(env, "ibal-verbs-context");
  uv_loop_s* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  cqPoll_ = ibal::UvBox<uv_poll_t>::New(env, &cqPoll_);
  asyncPoll_ = ibal::UvBox<uv_poll_t>::New(env, &asyncPoll_);
  uv_poll_init(loop, &cqPoll_->handle, channel_->fd);
  uv_poll_init(loop, &asyncPoll_->handle, ctx_->async_fd);
  cqPoll_->handle.data = this;
  asyncPoll_->handle.data = this;
  uv_poll_start(&cqPoll_->handle, UV_READABLE, OnCqReadable);
  uv_poll_start(&asyncPoll_->handle, UV_READABLE, OnAsyncReadable);
  // Async events never keep the process alive; the channel does only while a CQ is armed.
  uv_unref(asyncPoll_->base());
  uv_unref(cqPoll_->base());
}

Context::~Context() { Shutdown(); }

void Context::Invoke(Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
  // An exception thrown by a JS handler belongs to that handler: reported
  // as Node reports one thrown by any event callback.
  CallFromLoop(env_, Value(), fn, *asyncCtx_, args);
}

void Context::UpdateRef() {
  if (!cqPoll_) return;
  if (armed_ > 0) uv_ref(cqPoll_->base());
  else uv_unref(cqPoll_->base());
}

void Context::OnCqReadable(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<Context*>(h->data);
  if (!self->ctx_) return;
  Napi::HandleScope scope(self->env_);
  uint32_t fired[64];
  int nfired = 0;
  for (int guard = 0; guard < 1024; guard++) {
    ibv_cq* cq = nullptr;
    void* cqctx = nullptr;
    if (ibv_get_cq_event(self->channel_, &cq, &cqctx) != 0) break;
    ibv_ack_cq_events(cq, 1);
    auto* c = static_cast<Cq*>(cqctx);
    if (c->armed) {
      c->armed = false;
      self->armed_--;
    }
    bool seen = false;
    for (int i = 0; i < nfired; i++) seen = seen || fired[i] == c->id;
    if (!seen && nfired < 64) fired[nfired++] = c->id;
  }
  self->UpdateRef();
  self->Ref();  // a handler may close the context
  for (int i = 0; i < nfired && self->ctx_; i++) {
    if (self->cqs_.count(fired[i])) self->Invoke(self->onCq_, {Napi::Number::New(self->env_, fired[i])});
  }
  self->Unref();
}

void Context::OnAsyncReadable(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<Context*>(h->data);
  if (!self->ctx_) return;
  Napi::HandleScope scope(self->env_);
  for (int guard = 0; guard < 256 && self->ctx_; guard++) {
    ibv_async_event ev;
    if (ibv_get_async_event(self->ctx_, &ev) != 0) break;
    uint32_t kind = 0, id = 0;  // kind: 0 device/port, 1 qp, 2 cq, 3 srq
    switch (ev.event_type) {
      case IBV_EVENT_CQ_ERR:
        kind = 2;
        id = static_cast<Cq*>(ev.element.cq->cq_context)->id;
        break;
      case IBV_EVENT_SRQ_ERR:
      case IBV_EVENT_SRQ_LIMIT_REACHED:
        kind = 3;
        id = static_cast<Srq*>(ev.element.srq->srq_context)->id;
        break;
      case IBV_EVENT_PORT_ACTIVE:
      case IBV_EVENT_PORT_ERR:
      case IBV_EVENT_LID_CHANGE:
      case IBV_EVENT_PKEY_CHANGE:
      case IBV_EVENT_SM_CHANGE:
      case IBV_EVENT_CLIENT_REREGISTER:
      case IBV_EVENT_GID_CHANGE:
        kind = 0;
        id = static_cast<uint32_t>(ev.element.port_num);
        break;
      case IBV_EVENT_DEVICE_FATAL:
        kind = 0;
        id = 0;
        break;
      default:
        kind = 1;
        id = static_cast<Qp*>(ev.element.qp->qp_context)->id;
        break;
    }
    uint32_t type = ev.event_type;
    ibv_ack_async_event(&ev);
    self->Ref();
    self->Invoke(self->onAsync_, {Napi::Number::New(self->env_, type), Napi::Number::New(self->env_, kind),
                                  Napi::Number::New(self->env_, id)});
    self->Unref();
  }
}

ibv_ah* Context::Resolve(uint32_t id) {
  auto it = ahs_.find(id);
  return it == ahs_.end() ? nullptr : it->second;
}

ibv_mw* Context::ResolveMw(uint32_t id) {
  auto it = mws_.find(id);
  return it == mws_.end() ? nullptr : it->second;
}

ibv_mr* Context::ResolveMr(uint32_t id) {
  auto it = mrs_.find(id);
  return it == mrs_.end() ? nullptr : it->second->mr;
}

Context* Context::Check(const Napi::CallbackInfo& info) {
  if (!ctx_) throw ErrnoError(info.Env(), EBADF, "context is closed");
  return this;
}

template <typename M>
static auto Find(Napi::Env env, M& map, const Napi::Value& v, const char* what) -> decltype(map.begin()->second) {
  uint32_t id = v.As<Napi::Number>().Uint32Value();
  auto it = map.find(id);
  if (it == map.end()) throw ErrnoError(env, EBADF, std::string(what) + " is closed");
  return it->second;
}

Napi::Value Context::QueryDevice(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_device_attr a;
  if (int e = ibv_query_device(ctx_, &a)) throw ErrnoError(env, e, "ibv_query_device");
  Napi::Object o = Napi::Object::New(env);
  o.Set("fwVer", Napi::String::New(env, a.fw_ver));
  o.Set("nodeGuid", Napi::BigInt::New(env, static_cast<uint64_t>(be64toh(a.node_guid))));
  o.Set("sysImageGuid", Napi::BigInt::New(env, static_cast<uint64_t>(be64toh(a.sys_image_guid))));
  o.Set("maxMrSize", Napi::Number::New(env, static_cast<double>(a.max_mr_size)));
  o.Set("pageSizeCap", Napi::Number::New(env, static_cast<double>(a.page_size_cap)));
  o.Set("vendorId", a.vendor_id);
  o.Set("vendorPartId", a.vendor_part_id);
  o.Set("hwVer", a.hw_ver);
  o.Set("maxQp", a.max_qp);
  o.Set("maxQpWr", a.max_qp_wr);
  o.Set("deviceCapFlags", Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(a.device_cap_flags))));
  o.Set("maxSge", a.max_sge);
  o.Set("maxCq", a.max_cq);
  o.Set("maxCqe", a.max_cqe);
  o.Set("maxMr", a.max_mr);
  o.Set("maxMw", a.max_mw);
  o.Set("maxPd", a.max_pd);
  o.Set("maxQpRdAtom", a.max_qp_rd_atom);
  o.Set("maxQpInitRdAtom", a.max_qp_init_rd_atom);
  o.Set("maxResRdAtom", a.max_res_rd_atom);
  o.Set("maxSrq", a.max_srq);
  o.Set("maxSrqWr", a.max_srq_wr);
  o.Set("maxSrqSge", a.max_srq_sge);
  o.Set("maxAh", a.max_ah);
  o.Set("maxPkeys", a.max_pkeys);
  o.Set("atomicCap", static_cast<uint32_t>(a.atomic_cap));
  o.Set("physPortCnt", a.phys_port_cnt);
  // ibv_device_attr has no inline limit; a QP reports it in its cap.
  o.Set("maxInlineData", 0);
  return o;
}

Napi::Value Context::QueryDeviceEx(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_device_attr_ex a{};
  if (int e = ibv_query_device_ex(ctx_, nullptr, &a)) throw ErrnoError(env, e, "ibv_query_device_ex");
  Napi::Object o = Napi::Object::New(env);
  o.Set("completionTimestampMask", Napi::BigInt::New(env, static_cast<uint64_t>(a.completion_timestamp_mask)));
  o.Set("hcaCoreClock", Napi::Number::New(env, static_cast<double>(a.hca_core_clock)));
  o.Set("deviceCapFlagsEx", Napi::BigInt::New(env, static_cast<uint64_t>(a.device_cap_flags_ex)));
  o.Set("physPortCntEx", a.phys_port_cnt_ex);
  return o;
}

Napi::Value Context::QueryPort(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  uint32_t port = info[0].As<Napi::Number>().Uint32Value();
  ibv_port_attr a;
  if (int e = ibv_query_port(ctx_, static_cast<uint8_t>(port), &a)) throw ErrnoError(env, e, "ibv_query_port");
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", static_cast<uint32_t>(a.state));
  o.Set("maxMtu", static_cast<uint32_t>(a.max_mtu));
  o.Set("activeMtu", static_cast<uint32_t>(a.active_mtu));
  o.Set("gidTblLen", a.gid_tbl_len);
  o.Set("portCapFlags", Napi::Number::New(env, a.port_cap_flags));
  o.Set("maxMsgSz", Napi::Number::New(env, a.max_msg_sz));
  o.Set("pkeyTblLen", a.pkey_tbl_len);
  o.Set("lid", a.lid);
  o.Set("smLid", a.sm_lid);
  o.Set("lmc", a.lmc);
  o.Set("maxVlNum", a.max_vl_num);
  o.Set("activeWidth", a.active_width);
  o.Set("activeSpeed", a.active_speed);
  o.Set("physState", a.phys_state);
  o.Set("linkLayer", a.link_layer);
  return o;
}

Napi::Value Context::QueryGid(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_gid gid;
  if (int e = ibv_query_gid(ctx_, static_cast<uint8_t>(info[0].As<Napi::Number>().Uint32Value()),
                            info[1].As<Napi::Number>().Int32Value(), &gid))
    throw ErrnoError(env, e < 0 ? EINVAL : e, "ibv_query_gid");
  auto out = Napi::Uint8Array::New(env, 16);
  std::memcpy(out.Data(), gid.raw, 16);
  return out;
}

Napi::Value Context::AllocPd(const Napi::CallbackInfo& info) {
  Check(info);
  ibv_pd* pd = ibv_alloc_pd(ctx_);
  if (!pd) throw ErrnoError(info.Env(), errno, "ibv_alloc_pd");
  uint32_t id = nextId_++;
  pds_[id] = pd;
  return Napi::Number::New(info.Env(), id);
}

Napi::Value Context::DeallocPd(const Napi::CallbackInfo& info) {
  Check(info);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  ibv_pd* pd = Find(info.Env(), pds_, info[0], "PD");
  if (int e = ibv_dealloc_pd(pd)) throw ErrnoError(info.Env(), e, "ibv_dealloc_pd");
  pds_.erase(id);
  return info.Env().Undefined();
}

// regMr(pdId, arrayBuffer, offset, length, access): the buffer must be one
// allocBuffer returned; the TS side copies other memory into one first.
Napi::Value Context::RegMr(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_pd* pd = Find(env, pds_, info[0], "PD");
  auto ab = info[1].As<Napi::ArrayBuffer>();
  size_t off = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  size_t len = static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue());
  int access = info[4].As<Napi::Number>().Int32Value();
  auto* base = static_cast<uint8_t*>(ab.Data());
  if (!base || off + len > ab.ByteLength()) throw ArgError(env, "regMr: range outside the buffer");
  Mem* mem = FindMem(base + off, len);
  if (!mem) throw ArgError(env, "regMr: memory is not owned by the binding");
  ibv_mr* mr = ibv_reg_mr(pd, base + off, len, access);
  if (!mr) throw ErrnoError(env, errno, "ibv_reg_mr");
  auto* m = new Mr{nextId_++, mr, mem, 0};
  mem->regs++;
  mrs_[m->id] = m;
  mrByLkey_[mr->lkey] = m;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", m->id);
  o.Set("lkey", Napi::Number::New(env, mr->lkey));
  o.Set("rkey", Napi::Number::New(env, mr->rkey));
  o.Set("addr", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(mr->addr))));
  return o;
}

Napi::Value Context::DeregMr(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Mr* m = Find(env, mrs_, info[0], "MR");
  // The HCA may still DMA into memory a posted WR names: keep it registered.
  if (m->inflight > 0) throw ErrnoError(env, EBUSY, "ibv_dereg_mr (" + std::to_string(m->inflight) + " work request(s) in flight use it)");
  uint32_t lkey = m->mr->lkey;
  if (int e = ibv_dereg_mr(m->mr)) throw ErrnoError(env, e, "ibv_dereg_mr");
  mrByLkey_.erase(lkey);
  mrs_.erase(m->id);
  m->mem->regs--;
  MaybeFree(m->mem);
  delete m;
  return env.Undefined();
}

Napi::Value Context::MrInflight(const Napi::CallbackInfo& info) {
  Check(info);
  return Napi::Number::New(info.Env(), Find(info.Env(), mrs_, info[0], "MR")->inflight);
}

// allocMw(pdId, type) -> { id, rkey }
Napi::Value Context::AllocMw(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_pd* pd = Find(env, pds_, info[0], "PD");
  uint32_t type = info[1].As<Napi::Number>().Uint32Value();
  ibv_mw* mw = ibv_alloc_mw(pd, type == 2 ? IBV_MW_TYPE_2 : IBV_MW_TYPE_1);
  if (!mw) throw ErrnoError(env, errno, "ibv_alloc_mw");
  uint32_t id = nextId_++;
  mws_[id] = mw;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", id);
  o.Set("rkey", Napi::Number::New(env, mw->rkey));
  return o;
}

Napi::Value Context::DeallocMw(const Napi::CallbackInfo& info) {
  Check(info);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  ibv_mw* mw = Find(info.Env(), mws_, info[0], "MW");
  if (int e = ibv_dealloc_mw(mw)) throw ErrnoError(info.Env(), e, "ibv_dealloc_mw");
  mws_.erase(id);
  return info.Env().Undefined();
}

// bindMw(qpId, mwId, wrId, sendFlags, mrId (0: none), addr, length, access) -> the window's new rkey.
// ibv_bind_mw posts a work request of its own: it takes a send queue slot
// like any other, so its completion finds the caller's wr_id.
Napi::Value Context::BindMw(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  ibv_mw* mw = Find(env, mws_, info[1], "MW");
  SendQueue& s = q->sq;
  if (s.tail - s.head >= s.size) throw ErrnoError(env, ENOMEM, "ibv_bind_mw (send queue is full)");
  uint32_t mrId = info[4].As<Napi::Number>().Uint32Value();
  ibv_mr* mr = nullptr;
  if (mrId) mr = Find(env, mrs_, info[4], "MR")->mr;
  ibv_mw_bind bind{};
  uint64_t seq = s.tail;
  bind.wr_id = seq;
  bind.send_flags = info[3].As<Napi::Number>().Uint32Value();
  bind.bind_info.mr = mr;
  bind.bind_info.addr = static_cast<uint64_t>(info[5].As<Napi::Number>().DoubleValue());
  bind.bind_info.length = static_cast<uint64_t>(info[6].As<Napi::Number>().DoubleValue());
  bind.bind_info.mw_access_flags = info[7].As<Napi::Number>().Uint32Value();
  uint32_t slot = static_cast<uint32_t>(seq % s.size);
  s.wrIds[slot] = info[2].As<Napi::Number>().DoubleValue();
  s.wrOp[slot] = IBV_WR_BIND_MW;
  s.length[slot] = 0;
  s.npins[slot] = 0;
  if (int e = ibv_bind_mw(q->qp, mw, &bind)) throw ErrnoError(env, e, "ibv_bind_mw");
  s.tail++;
  return Napi::Number::New(env, mw->rkey);
}

Napi::Value Context::CreateCq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  int cqe = info[0].As<Napi::Number>().Int32Value();
  auto* c = new Cq();
  c->id = nextId_++;
  c->cq = ibv_create_cq(ctx_, cqe, c, channel_, 0);
  if (!c->cq) {
    int e = errno;
    delete c;
    throw ErrnoError(env, e, "ibv_create_cq");
  }
  auto ab = Napi::ArrayBuffer::New(env, kPollBatch * kWcSize);
  c->out = static_cast<uint8_t*>(ab.Data());
  c->outRef = Napi::Persistent(ab);
  cqs_[c->id] = c;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c->id);
  o.Set("cqe", c->cq->cqe);
  o.Set("out", ab);
  return o;
}

void Context::FreeCq(Cq* c) {
  if (c->armed) {
    c->armed = false;
    armed_--;
    UpdateRef();
  }
  cqs_.erase(c->id);
  delete c;
}

Napi::Value Context::DestroyCq(const Napi::CallbackInfo& info) {
  Check(info);
  Cq* c = Find(info.Env(), cqs_, info[0], "CQ");
  if (int e = ibv_destroy_cq(c->cq)) throw ErrnoError(info.Env(), e, "ibv_destroy_cq");
  FreeCq(c);
  return info.Env().Undefined();
}

// resizeCq(cqId, cqe) -> the entries the CQ now has (ibv_resize_cq may round up).
Napi::Value Context::ResizeCq(const Napi::CallbackInfo& info) {
  Check(info);
  Cq* c = Find(info.Env(), cqs_, info[0], "CQ");
  if (int e = ibv_resize_cq(c->cq, info[1].As<Napi::Number>().Int32Value())) throw ErrnoError(info.Env(), e, "ibv_resize_cq");
  return Napi::Number::New(info.Env(), c->cq->cqe);
}

Napi::Value Context::ReqNotifyCq(const Napi::CallbackInfo& info) {
  Check(info);
  Cq* c = Find(info.Env(), cqs_, info[0], "CQ");
  if (int e = ibv_req_notify_cq(c->cq, info[1].ToBoolean() ? 1 : 0)) throw ErrnoError(info.Env(), e, "ibv_req_notify_cq");
  if (!c->armed) {
    c->armed = true;
    armed_++;
    UpdateRef();
  }
  return info.Env().Undefined();
}

// pollCq(cqId, n): up to n (<= kPollBatch) completions into the CQ's record
// buffer, each already carrying the user's wr_id and the soft HCA's shape.
Napi::Value Context::PollCq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Cq* c = Find(env, cqs_, info[0], "CQ");
  int n = std::min<int>(info[1].As<Napi::Number>().Int32Value(), kPollBatch);
  if (n <= 0) return Napi::Number::New(env, 0);
  int got = ibv_poll_cq(c->cq, n, c->wcs);
  if (got < 0) throw ErrnoError(env, EIO, "ibv_poll_cq");
  for (int i = 0; i < got; i++) Complete(c->wcs[i], c->out + i * kWcSize);
  return Napi::Number::New(env, got);
}

// wr_id of a posted WR: the send sequence number, or kRecvBit | slot.
static constexpr uint64_t kRecvBit = 1ull << 63;

void Context::Complete(const ibv_wc& wc, uint8_t* out) {
  PostedInfo p{static_cast<double>(wc.wr_id & ~kRecvBit), (wc.wr_id & kRecvBit) == 0, IBV_WC_SEND, 0, IBV_WR_SEND};
  auto it = qpByNum_.find(wc.qp_num);
  Qp* q = it == qpByNum_.end() ? nullptr : it->second;
  if (q && p.send) {
    SendQueue& s = q->sq;
    uint64_t seq = wc.wr_id;
    if (seq >= s.head && seq < s.tail) {
      uint32_t slot = static_cast<uint32_t>(seq % s.size);
      p.userWrId = s.wrIds[slot];
      p.wrOpcode = s.wrOp[slot];
      p.wcOpcode = WcOpcodeOfWr(p.wrOpcode);
      p.length = s.length[slot];
      s.RetireThrough(seq);
    }
  } else if (q) {
    RecvQueue* r = q->srq ? &q->srq->rq : &q->rq;
    uint32_t slot = static_cast<uint32_t>(wc.wr_id & 0xffffffffu);
    if (slot < r->wrIds.size()) {
      p.userWrId = r->wrIds[slot];
      r->Release(slot);
    }
  }
  TranslateWc(wc, p, out);
}

static ibv_qp_cap CapOf(const Napi::Object& c) {
  ibv_qp_cap cap{};
  cap.max_send_wr = U32(c, "maxSendWr", 1);
  cap.max_recv_wr = U32(c, "maxRecvWr", 1);
  cap.max_send_sge = U32(c, "maxSendSge", 1);
  cap.max_recv_sge = U32(c, "maxRecvSge", 1);
  cap.max_inline_data = U32(c, "maxInlineData", 0);
  return cap;
}

static Napi::Object CapObject(Napi::Env env, const ibv_qp_cap& cap) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxSendWr", cap.max_send_wr);
  o.Set("maxRecvWr", cap.max_recv_wr);
  o.Set("maxSendSge", cap.max_send_sge);
  o.Set("maxRecvSge", cap.max_recv_sge);
  o.Set("maxInlineData", cap.max_inline_data);
  return o;
}

// createQp(pdId, { qpType, sendCq, recvCq, srq?, cap, sqSigAll })
Napi::Value Context::CreateQp(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_pd* pd = Find(env, pds_, info[0], "PD");
  Napi::Object a = info[1].As<Napi::Object>();
  Cq* scq = Find(env, cqs_, a.Get("sendCq"), "send CQ");
  Cq* rcq = Find(env, cqs_, a.Get("recvCq"), "receive CQ");
  Srq* srq = a.Get("srq").IsNumber() ? Find(env, srqs_, a.Get("srq"), "SRQ") : nullptr;
  auto* q = new Qp();
  q->id = nextId_++;
  q->srq = srq;
  ibv_qp_init_attr init{};
  init.qp_context = q;
  init.send_cq = scq->cq;
  init.recv_cq = rcq->cq;
  init.srq = srq ? srq->srq : nullptr;
  init.cap = CapOf(a.Get("cap").As<Napi::Object>());
  if (srq) init.cap.max_recv_wr = init.cap.max_recv_sge = 0;
  init.qp_type = static_cast<ibv_qp_type>(U32(a, "qpType", IBV_QPT_RC));
  init.sq_sig_all = a.Get("sqSigAll").ToBoolean() ? 1 : 0;
  q->qp = ibv_create_qp(pd, &init);
  if (!q->qp) {
    int e = errno;
    delete q;
    throw ErrnoError(env, e, "ibv_create_qp");
  }
  q->type = init.qp_type;
  q->cap = init.cap;  // ibv_create_qp writes back what it granted
  q->sq.Init(env, init.cap.max_send_wr, init.cap.max_send_sge);
  if (!srq) q->rq.Init(env, init.cap.max_recv_wr, init.cap.max_recv_sge);
  if (srq) srq->users++;
  qps_[q->id] = q;
  qpByNum_[q->qp->qp_num] = q;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", q->id);
  o.Set("qpNum", q->qp->qp_num);
  o.Set("cap", CapObject(env, q->cap));
  o.Set("sendBuf", q->sq.buffer.Value());
  o.Set("sendMaxSge", q->sq.maxSge);
  if (!srq) {
    o.Set("recvBuf", q->rq.buffer.Value());
    o.Set("recvMaxSge", q->rq.maxSge);
  }
  o.Set("batch", kWrBatch);
  return o;
}

static ibv_ah_attr AhAttrOf(Napi::Env env, const Napi::Object& o) {
  ibv_ah_attr ah{};
  Napi::Value dgid = o.Get("dgid");
  if (!dgid.IsTypedArray() || dgid.As<Napi::Uint8Array>().ByteLength() != 16) throw ArgError(env, "ahAttr.dgid must be 16 bytes");
  ah.is_global = 1;
  std::memcpy(ah.grh.dgid.raw, dgid.As<Napi::Uint8Array>().Data(), 16);
  ah.grh.sgid_index = static_cast<uint8_t>(U32(o, "sgidIndex", 0));
  ah.grh.hop_limit = static_cast<uint8_t>(U32(o, "hopLimit", 64));
  ah.grh.traffic_class = static_cast<uint8_t>(U32(o, "trafficClass", 0));
  ah.grh.flow_label = U32(o, "flowLabel", 0);
  ah.sl = static_cast<uint8_t>(U32(o, "sl", 0));
  ah.port_num = static_cast<uint8_t>(U32(o, "portNum", 1));
  return ah;
}

static Napi::Object AhObject(Napi::Env env, const ibv_ah_attr& ah) {
  Napi::Object o = Napi::Object::New(env);
  auto gid = Napi::Uint8Array::New(env, 16);
  std::memcpy(gid.Data(), ah.grh.dgid.raw, 16);
  o.Set("dgid", gid);
  o.Set("sgidIndex", ah.grh.sgid_index);
  o.Set("hopLimit", ah.grh.hop_limit);
  o.Set("trafficClass", ah.grh.traffic_class);
  o.Set("flowLabel", ah.grh.flow_label);
  o.Set("sl", ah.sl);
  o.Set("portNum", ah.port_num);
  return o;
}

Napi::Value Context::ModifyQp(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  Napi::Object a = info[1].As<Napi::Object>();
  int mask = info[2].As<Napi::Number>().Int32Value();
  ibv_qp_attr at{};
  at.qp_state = static_cast<ibv_qp_state>(U32(a, "qpState", 0));
  at.cur_qp_state = static_cast<ibv_qp_state>(U32(a, "curQpState", 0));
  at.path_mtu = static_cast<ibv_mtu>(U32(a, "pathMtu", IBV_MTU_1024));
  at.qkey = U32(a, "qkey", 0);
  at.rq_psn = U32(a, "rqPsn", 0);
  at.sq_psn = U32(a, "sqPsn", 0);
  at.dest_qp_num = U32(a, "destQpNum", 0);
  at.qp_access_flags = U32(a, "qpAccessFlags", 0);
  if (a.Get("cap").IsObject()) at.cap = CapOf(a.Get("cap").As<Napi::Object>());
  if (mask & IBV_QP_AV) at.ah_attr = AhAttrOf(env, a.Get("ahAttr").As<Napi::Object>());
  at.pkey_index = static_cast<uint16_t>(U32(a, "pkeyIndex", 0));
  at.en_sqd_async_notify = static_cast<uint8_t>(U32(a, "enSqdAsyncNotify", 0));
  at.max_rd_atomic = static_cast<uint8_t>(U32(a, "maxRdAtomic", 0));
  at.max_dest_rd_atomic = static_cast<uint8_t>(U32(a, "maxDestRdAtomic", 0));
  at.min_rnr_timer = static_cast<uint8_t>(U32(a, "minRnrTimer", 0));
  at.port_num = static_cast<uint8_t>(U32(a, "portNum", 1));
  at.timeout = static_cast<uint8_t>(U32(a, "timeout", 0));
  at.retry_cnt = static_cast<uint8_t>(U32(a, "retryCnt", 0));
  at.rnr_retry = static_cast<uint8_t>(U32(a, "rnrRetry", 0));
  if (int e = ibv_modify_qp(q->qp, &at, mask)) throw ErrnoError(env, e, "ibv_modify_qp");
  // Back to RESET discards every posted WR without a completion: release their pins.
  if ((mask & IBV_QP_STATE) && at.qp_state == IBV_QPS_RESET) {
    q->sq.RetireThrough(q->sq.tail);
    if (!q->srq) q->rq.ReleaseAll();
  }
  return env.Undefined();
}

Napi::Value Context::QueryQp(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  ibv_qp_attr a{};
  ibv_qp_init_attr init{};
  int mask = IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_PATH_MTU |
             IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_SQ_PSN | IBV_QP_AV | IBV_QP_MAX_QP_RD_ATOMIC |
             IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
             IBV_QP_CAP | IBV_QP_EN_SQD_ASYNC_NOTIFY | IBV_QP_QKEY;
  if (int e = ibv_query_qp(q->qp, &a, mask, &init)) throw ErrnoError(env, e, "ibv_query_qp");
  Napi::Object o = Napi::Object::New(env);
  o.Set("qpState", static_cast<uint32_t>(a.qp_state));
  o.Set("curQpState", static_cast<uint32_t>(a.cur_qp_state));
  o.Set("pathMtu", static_cast<uint32_t>(a.path_mtu));
  o.Set("qkey", Napi::Number::New(env, a.qkey));
  o.Set("rqPsn", a.rq_psn);
  o.Set("sqPsn", a.sq_psn);
  o.Set("destQpNum", a.dest_qp_num);
  o.Set("qpAccessFlags", a.qp_access_flags);
  o.Set("cap", CapObject(env, a.cap));
  if (q->type != IBV_QPT_UD) o.Set("ahAttr", AhObject(env, a.ah_attr));
  o.Set("pkeyIndex", a.pkey_index);
  o.Set("enSqdAsyncNotify", a.en_sqd_async_notify);
  o.Set("sqDraining", a.sq_draining);
  o.Set("maxRdAtomic", a.max_rd_atomic);
  o.Set("maxDestRdAtomic", a.max_dest_rd_atomic);
  o.Set("minRnrTimer", a.min_rnr_timer);
  o.Set("portNum", a.port_num);
  o.Set("timeout", a.timeout);
  o.Set("retryCnt", a.retry_cnt);
  o.Set("rnrRetry", a.rnr_retry);
  return o;
}

void Context::FreeQp(Qp* q) {
  // Destroyed with WRs outstanding: the HCA no longer touches their memory.
  q->sq.RetireThrough(q->sq.tail);
  if (!q->srq) q->rq.ReleaseAll();
  else q->srq->users--;
  qpByNum_.erase(q->qp->qp_num);
  qps_.erase(q->id);
  delete q;
}

Napi::Value Context::DestroyQp(const Napi::CallbackInfo& info) {
  Check(info);
  Qp* q = Find(info.Env(), qps_, info[0], "QP");
  if (int e = ibv_destroy_qp(q->qp)) throw ErrnoError(info.Env(), e, "ibv_destroy_qp");
  FreeQp(q);
  return info.Env().Undefined();
}

void Context::SetPostError(int err, const char* why) {
  postErrno_ = err;
  postWhy_ = why;
}

// Pins the MRs the SGEs of a posted WR name, so deregistering one of them
// while the HCA may still read or write it is refused.
template <typename Slots>
static uint16_t Pin(std::unordered_map<uint32_t, Mr*>& byLkey, const ibv_sge* sg, int n, Mr** slotPins, uint32_t maxSge) {
  uint16_t k = 0;
  for (int i = 0; i < n && k < maxSge; i++) {
    auto it = byLkey.find(sg[i].lkey);
    if (it == byLkey.end()) continue;
    it->second->inflight++;
    slotPins[k++] = it->second;
  }
  return k;
}

// postSend(qpId, count): posts the first `count` records of the QP's send
// buffer. Returns -1, or the index of the first WR not posted (the reason
// via lastPostError), as ibv_post_send's bad_wr.
Napi::Value Context::PostSend(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  SendQueue& s = q->sq;
  uint32_t count = std::min(info[1].As<Napi::Number>().Uint32Value(), kWrBatch);
  uint32_t room = static_cast<uint32_t>(s.size - (s.tail - s.head));
  uint32_t n = std::min(count, room);
  const char* why = nullptr;
  int bad = DecodeSendWrs(s.records, n, s.maxSge, q->type == IBV_QPT_UD, this, s.wrs.data(), s.sges.data(), &why);
  int err = EINVAL;
  if (bad >= 0) n = static_cast<uint32_t>(bad);
  else if (n < count) {
    bad = static_cast<int>(n);
    why = "send queue is full";
    err = ENOMEM;
  }
  if (n == 0) {
    SetPostError(err, why);
    return Napi::Number::New(env, bad);
  }
  s.wrs[n - 1].next = nullptr;
  for (uint32_t i = 0; i < n; i++) {
    ibv_send_wr& w = s.wrs[i];
    uint64_t seq = s.tail + i;
    uint32_t slot = static_cast<uint32_t>(seq % s.size);
    s.wrIds[slot] = Rd<double>(s.records + i * SendRecordSize(s.maxSge), kSendWrId);
    s.wrOp[slot] = w.opcode;
    uint32_t len = 0;
    for (int k = 0; k < w.num_sge; k++) len += w.sg_list[k].length;
    s.length[slot] = len;
    s.npins[slot] = (w.send_flags & IBV_SEND_INLINE) ? 0
        : Pin<int>(mrByLkey_, w.sg_list, w.num_sge, &s.pins[static_cast<size_t>(slot) * s.maxSge], s.maxSge);
    w.wr_id = seq;
  }
  ibv_send_wr* badWr = nullptr;
  int e = ibv_post_send(q->qp, s.wrs.data(), &badWr);
  uint32_t posted = n;
  if (e) {
    posted = badWr ? static_cast<uint32_t>(badWr - s.wrs.data()) : 0;
    for (uint32_t i = posted; i < n; i++) {
      uint32_t slot = static_cast<uint32_t>((s.tail + i) % s.size);
      for (uint16_t k = 0; k < s.npins[slot]; k++) s.pins[static_cast<size_t>(slot) * s.maxSge + k]->inflight--;
      s.npins[slot] = 0;
    }
    bad = static_cast<int>(posted);
    err = e;
    why = e == ENOMEM ? "send queue is full" : "ibv_post_send refused it";
  }
  s.tail += posted;
  if (bad >= 0) SetPostError(err, why);
  return Napi::Number::New(env, bad);
}

int Context::PostRecvTo(RecvQueue& r, ibv_qp* qp, ibv_srq* srq, uint32_t count) {
  uint32_t n = std::min<uint32_t>(count, static_cast<uint32_t>(r.freeSlots.size()));
  const char* why = nullptr;
  int bad = DecodeRecvWrs(r.records, n, r.maxSge, r.wrs.data(), r.sges.data(), &why);
  int err = EINVAL;
  if (bad >= 0) n = static_cast<uint32_t>(bad);
  else if (n < count) {
    bad = static_cast<int>(n);
    why = "receive queue is full";
    err = ENOMEM;
  }
  if (n == 0) {
    SetPostError(err, why);
    return bad;
  }
  r.wrs[n - 1].next = nullptr;
  uint32_t slots[kWrBatch];
  for (uint32_t i = 0; i < n; i++) {
    ibv_recv_wr& w = r.wrs[i];
    uint32_t slot = r.freeSlots.back();
    r.freeSlots.pop_back();
    slots[i] = slot;
    r.wrIds[slot] = Rd<double>(r.records + i * RecvRecordSize(r.maxSge), kRecvWrId);
    r.npins[slot] = Pin<int>(mrByLkey_, w.sg_list, w.num_sge, &r.pins[static_cast<size_t>(slot) * r.maxSge], r.maxSge);
    w.wr_id = kRecvBit | slot;
  }
  ibv_recv_wr* badWr = nullptr;
  int e = srq ? ibv_post_srq_recv(srq, r.wrs.data(), &badWr) : ibv_post_recv(qp, r.wrs.data(), &badWr);
  if (e) {
    uint32_t posted = badWr ? static_cast<uint32_t>(badWr - r.wrs.data()) : 0;
    for (uint32_t i = n; i > posted; i--) r.Release(slots[i - 1]);
    bad = static_cast<int>(posted);
    err = e;
    why = e == ENOMEM ? "receive queue is full" : "ibv_post_recv refused it";
  }
  if (bad >= 0) SetPostError(err, why);
  return bad;
}

Napi::Value Context::PostRecv(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  if (q->srq) throw ErrnoError(env, EINVAL, "ibv_post_recv: the QP receives from an SRQ");
  uint32_t count = std::min(info[1].As<Napi::Number>().Uint32Value(), kWrBatch);
  return Napi::Number::New(env, PostRecvTo(q->rq, q->qp, nullptr, count));
}

Napi::Value Context::CreateSrq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_pd* pd = Find(env, pds_, info[0], "PD");
  Napi::Object a = info[1].As<Napi::Object>();
  auto* s = new Srq();
  s->id = nextId_++;
  ibv_srq_init_attr init{};
  init.srq_context = s;
  init.attr.max_wr = U32(a, "maxWr", 1);
  init.attr.max_sge = U32(a, "maxSge", 1);
  init.attr.srq_limit = U32(a, "srqLimit", 0);
  s->srq = ibv_create_srq(pd, &init);
  if (!s->srq) {
    int e = errno;
    delete s;
    throw ErrnoError(env, e, "ibv_create_srq");
  }
  s->rq.Init(env, init.attr.max_wr, init.attr.max_sge);
  srqs_[s->id] = s;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", s->id);
  o.Set("maxWr", init.attr.max_wr);
  o.Set("maxSge", init.attr.max_sge);
  o.Set("recvBuf", s->rq.buffer.Value());
  o.Set("recvMaxSge", s->rq.maxSge);
  o.Set("batch", kWrBatch);
  return o;
}

Napi::Value Context::ModifySrq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Srq* s = Find(env, srqs_, info[0], "SRQ");
  Napi::Object a = info[1].As<Napi::Object>();
  ibv_srq_attr at{};
  at.max_wr = U32(a, "maxWr", 0);
  at.srq_limit = U32(a, "srqLimit", 0);
  if (int e = ibv_modify_srq(s->srq, &at, info[2].As<Napi::Number>().Int32Value())) throw ErrnoError(env, e, "ibv_modify_srq");
  return env.Undefined();
}

Napi::Value Context::QuerySrq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Srq* s = Find(env, srqs_, info[0], "SRQ");
  ibv_srq_attr at{};
  if (int e = ibv_query_srq(s->srq, &at)) throw ErrnoError(env, e, "ibv_query_srq");
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxWr", at.max_wr);
  o.Set("maxSge", at.max_sge);
  o.Set("srqLimit", at.srq_limit);
  return o;
}

Napi::Value Context::PostSrqRecv(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Srq* s = Find(env, srqs_, info[0], "SRQ");
  uint32_t count = std::min(info[1].As<Napi::Number>().Uint32Value(), kWrBatch);
  return Napi::Number::New(env, PostRecvTo(s->rq, nullptr, s->srq, count));
}

Napi::Value Context::DestroySrq(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Srq* s = Find(env, srqs_, info[0], "SRQ");
  if (s->users > 0) throw ErrnoError(env, EBUSY, "ibv_destroy_srq (used by " + std::to_string(s->users) + " QP(s))");
  if (int e = ibv_destroy_srq(s->srq)) throw ErrnoError(env, e, "ibv_destroy_srq");
  s->rq.ReleaseAll();
  srqs_.erase(s->id);
  delete s;
  return env.Undefined();
}

Napi::Value Context::CreateAh(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  ibv_pd* pd = Find(env, pds_, info[0], "PD");
  ibv_ah_attr attr = AhAttrOf(env, info[1].As<Napi::Object>());
  ibv_ah* ah = ibv_create_ah(pd, &attr);
  if (!ah) throw ErrnoError(env, errno, "ibv_create_ah");
  uint32_t id = nextId_++;
  ahs_[id] = ah;
  return Napi::Number::New(env, id);
}

// attachMcast(qpId, gid (16 bytes), lid) / detachMcast(...): ibv_attach_mcast, ibv_detach_mcast.
static ibv_gid GidOf(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().ByteLength() != 16) throw ArgError(env, "a GID is 16 bytes");
  auto a = v.As<Napi::Uint8Array>();
  ibv_gid gid;
  std::memcpy(gid.raw, a.Data(), 16);
  return gid;
}

Napi::Value Context::AttachMcast(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  ibv_gid gid = GidOf(env, info[1]);
  if (int e = ibv_attach_mcast(q->qp, &gid, static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()))) throw ErrnoError(env, e, "ibv_attach_mcast");
  return env.Undefined();
}

Napi::Value Context::DetachMcast(const Napi::CallbackInfo& info) {
  Check(info);
  Napi::Env env = info.Env();
  Qp* q = Find(env, qps_, info[0], "QP");
  ibv_gid gid = GidOf(env, info[1]);
  if (int e = ibv_detach_mcast(q->qp, &gid, static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()))) throw ErrnoError(env, e, "ibv_detach_mcast");
  return env.Undefined();
}

Napi::Value Context::DestroyAh(const Napi::CallbackInfo& info) {
  Check(info);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  ibv_ah* ah = Find(info.Env(), ahs_, info[0], "AH");
  if (int e = ibv_destroy_ah(ah)) throw ErrnoError(info.Env(), e, "ibv_destroy_ah");
  ahs_.erase(id);
  return info.Env().Undefined();
}

Napi::Value Context::LastPostError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("errno", postErrno_);
  o.Set("code", ErrnoName(postErrno_));
  o.Set("why", postWhy_ ? postWhy_ : "");
  return o;
}

// Destroys in dependency order: QPs, SRQs, AHs, windows, MRs, CQs, PDs, then the device.
void Context::Shutdown() {
  if (!ctx_) return;
  for (auto& kv : std::vector<std::pair<uint32_t, Qp*>>(qps_.begin(), qps_.end())) {
    ibv_destroy_qp(kv.second->qp);
    FreeQp(kv.second);
  }
  for (auto& kv : srqs_) {
    ibv_destroy_srq(kv.second->srq);
    delete kv.second;
  }
  srqs_.clear();
  for (auto& kv : ahs_) ibv_destroy_ah(kv.second);
  ahs_.clear();
  for (auto& kv : mws_) ibv_dealloc_mw(kv.second);
  mws_.clear();
  for (auto& kv : mrs_) {
    ibv_dereg_mr(kv.second->mr);
    kv.second->mem->regs--;
    MaybeFree(kv.second->mem);
    delete kv.second;
  }
  mrs_.clear();
  mrByLkey_.clear();
  for (auto& kv : std::vector<std::pair<uint32_t, Cq*>>(cqs_.begin(), cqs_.end())) {
    ibv_destroy_cq(kv.second->cq);
    FreeCq(kv.second);
  }
  for (auto& kv : pds_) ibv_dealloc_pd(kv.second);
  pds_.clear();
  if (cqPoll_) cqPoll_->Close();  // clears cqPoll_
  if (asyncPoll_) asyncPoll_->Close();
  ibv_destroy_comp_channel(channel_);
  channel_ = nullptr;
  ibv_close_device(ctx_);
  ctx_ = nullptr;
  delete asyncCtx_;
  asyncCtx_ = nullptr;
  // The callbacks close over the JavaScript context that owns this one, so
  // an open context (its CQ events armed) keeps both alive, as an open
  // socket does; once closed, that cycle through a strong reference must go
  // or neither is ever collected.
  onCq_.Reset();
  onAsync_.Reset();
}

Napi::Value Context::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace ibal
