// librdmacm for the connection manager on native devices: an event channel
// whose fd is watched with uv_poll, and rdma_cm_ids named by small ids. QPs
// are created through the verbs Context; rdma_init_qp_attr tells the caller
// how to move one through INIT/RTR/RTS for an id (the librdmacm pattern for
// QPs it did not create), and connect/accept carry its qp_num.
#include <napi.h>
#include <uv.h>
#include "uv-box.h"
#include "loop-call.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <rdma/rdma_cma.h>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include "common.h"

namespace ibal {

namespace {

bool ParseAddr(const std::string& host, uint32_t port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof *ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  return false;
}

std::string AddrString(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

Napi::Object AhAttrObject(Napi::Env env, const ibv_ah_attr& a) {
  Napi::Object ah = Napi::Object::New(env);
  auto gid = Napi::Uint8Array::New(env, 16);
  std::memcpy(gid.Data(), a.grh.dgid.raw, 16);
  ah.Set("dgid", gid);
  ah.Set("sgidIndex", a.grh.sgid_index);
  ah.Set("hopLimit", a.grh.hop_limit);
  ah.Set("trafficClass", a.grh.traffic_class);
  ah.Set("flowLabel", a.grh.flow_label);
  ah.Set("sl", a.sl);
  ah.Set("portNum", a.port_num);
  ah.Set("dlid", a.dlid);
  ah.Set("isGlobal", a.is_global);
  return ah;
}

class EventChannel : public Napi::ObjectWrap<EventChannel> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "EventChannel", {
      InstanceMethod("createId", &EventChannel::CreateId),
      InstanceMethod("destroyId", &EventChannel::DestroyId),
      InstanceMethod("bindAddr", &EventChannel::BindAddr),
      InstanceMethod("resolveAddr", &EventChannel::ResolveAddr),
      InstanceMethod("resolveRoute", &EventChannel::ResolveRoute),
      InstanceMethod("listen", &EventChannel::Listen),
      InstanceMethod("connect", &EventChannel::Connect),
      InstanceMethod("accept", &EventChannel::Accept),
      InstanceMethod("reject", &EventChannel::Reject),
      InstanceMethod("disconnect", &EventChannel::Disconnect),
      InstanceMethod("establish", &EventChannel::Establish),
      InstanceMethod("setOption", &EventChannel::SetOption),
      InstanceMethod("initQpAttr", &EventChannel::InitQpAttr),
      InstanceMethod("info", &EventChannel::Info),
      InstanceMethod("close", &EventChannel::Close),
    });
  }

  // new EventChannel(onEvent({ type, id, listenId, status, privateData, ... }))
  explicit EventChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventChannel>(info), env_(info.Env()) {
    onEvent_ = Napi::Persistent(info[0].As<Napi::Function>());
    errno = 0;
    ch_ = rdma_create_event_channel();
    if (!ch_) throw ErrnoError(info.Env(), errno ? errno : ENODEV, "rdma_create_event_channel");
    fcntl(ch_->fd, F_SETFL, fcntl(ch_->fd, F_GETFL) | O_NONBLOCK);
    asyncCtx_ = new Napi::AsyncContext(info.Env(), "ibal-rdmacm");
    uv_loop_s* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    poll_ = ibal::UvBox<uv_poll_t>::New(info.Env(), &poll_);
    uv_poll_init(loop, &poll_->handle, ch_->fd);
    poll_->handle.data = this;
    uv_poll_start(&poll_->handle, UV_READABLE, OnReadable);
    uv_unref(poll_->base());
  }

  ~EventChannel() override { Shutdown(); }

 private:
  rdma_cm_id* Id(const Napi::CallbackInfo& info, int i = 0) {
    if (!ch_) throw ErrnoError(info.Env(), EBADF, "event channel is closed");
    auto it = ids_.find(info[i].As<Napi::Number>().Uint32Value());
    if (it == ids_.end()) throw ErrnoError(info.Env(), EBADF, "rdma_cm_id is closed");
    return it->second;
  }

  uint32_t Track(rdma_cm_id* id) {
    uint32_t n = nextId_++;
    id->context = reinterpret_cast<void*>(static_cast<uintptr_t>(n));
    ids_[n] = id;
    return n;
  }

  // An id in use (resolving, connecting, connected, listening, or a
  // connection request) keeps the process alive, as an open socket does,
  // until it fails, leaves timewait or is destroyed. Kept per id so events
  // without a matching call (the passive side's ESTABLISHED) and ids
  // destroyed mid-way cannot unbalance it.
  void Wait(uint32_t n) {
    waiting_.insert(n);
    SyncRef();
  }
  void Done(uint32_t n) {
    waiting_.erase(n);
    SyncRef();
  }
  void SyncRef() {
    if (!poll_) return;
    if (!waiting_.empty()) uv_ref(poll_->base());
    else uv_unref(poll_->base());
  }
  static uint32_t Num(const Napi::CallbackInfo& info, int i = 0) { return info[i].As<Napi::Number>().Uint32Value(); }

  // createId(qpType, portSpace?): without a port space, RDMA_PS_UDP for UD and RDMA_PS_TCP otherwise.
  Napi::Value CreateId(const Napi::CallbackInfo& info) {
    if (!ch_) throw ErrnoError(info.Env(), EBADF, "event channel is closed");
    rdma_port_space ps = info[0].As<Napi::Number>().Uint32Value() == IBV_QPT_UD ? RDMA_PS_UDP : RDMA_PS_TCP;
    if (info.Length() > 1 && info[1].IsNumber()) ps = static_cast<rdma_port_space>(info[1].As<Napi::Number>().Uint32Value());
    rdma_cm_id* id = nullptr;
    if (rdma_create_id(ch_, &id, nullptr, ps)) throw ErrnoError(info.Env(), errno, "rdma_create_id");
    return Napi::Number::New(info.Env(), Track(id));
  }

  Napi::Value DestroyId(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    if (rdma_destroy_id(id)) throw ErrnoError(info.Env(), errno, "rdma_destroy_id");
    uint32_t n = Num(info);
    ids_.erase(n);
    Done(n);
    return info.Env().Undefined();
  }

  Napi::Value BindAddr(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    sockaddr_storage ss;
    if (!ParseAddr(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Uint32Value(), &ss)) throw ArgError(info.Env(), "bindAddr: not an IP address");
    if (rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&ss))) throw ErrnoError(info.Env(), errno, "rdma_bind_addr");
    return info.Env().Undefined();
  }

  // resolveAddr(id, dstHost, dstPort, timeoutMs, srcHost?)
  Napi::Value ResolveAddr(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    sockaddr_storage dst, src;
    if (!ParseAddr(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Uint32Value(), &dst)) throw ArgError(info.Env(), "resolveAddr: not an IP address");
    sockaddr* srcp = nullptr;
    if (info[4].IsString()) {
      if (!ParseAddr(info[4].As<Napi::String>().Utf8Value(), 0, &src)) throw ArgError(info.Env(), "resolveAddr: source is not an IP address");
      srcp = reinterpret_cast<sockaddr*>(&src);
    }
    if (rdma_resolve_addr(id, srcp, reinterpret_cast<sockaddr*>(&dst), info[3].As<Napi::Number>().Int32Value()))
      throw ErrnoError(info.Env(), errno, "rdma_resolve_addr");
    Wait(Num(info));
    return info.Env().Undefined();
  }

  Napi::Value ResolveRoute(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    if (rdma_resolve_route(id, info[1].As<Napi::Number>().Int32Value())) throw ErrnoError(info.Env(), errno, "rdma_resolve_route");
    Wait(Num(info));
    return info.Env().Undefined();
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    if (rdma_listen(id, info[1].As<Napi::Number>().Int32Value())) throw ErrnoError(info.Env(), errno, "rdma_listen");
    Wait(Num(info));
    return info.Env().Undefined();
  }

  static rdma_conn_param Param(const Napi::Object& o, std::string& priv) {
    rdma_conn_param p{};
    Napi::Value pd = o.Get("privateData");
    if (pd.IsTypedArray()) {
      auto u8 = pd.As<Napi::Uint8Array>();
      priv.assign(reinterpret_cast<const char*>(u8.Data()), u8.ByteLength());
      p.private_data = priv.data();
      p.private_data_len = static_cast<uint8_t>(priv.size());
    }
    p.responder_resources = static_cast<uint8_t>(U32(o, "responderResources", 1));
    p.initiator_depth = static_cast<uint8_t>(U32(o, "initiatorDepth", 1));
    p.flow_control = static_cast<uint8_t>(U32(o, "flowControl", 1));
    p.retry_count = static_cast<uint8_t>(U32(o, "retryCount", 7));
    p.rnr_retry_count = static_cast<uint8_t>(U32(o, "rnrRetryCount", 7));
    p.qp_num = U32(o, "qpNum", 0);
    p.srq = static_cast<uint8_t>(U32(o, "srq", 0));
    return p;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    std::string priv;
    rdma_conn_param p = Param(info[1].As<Napi::Object>(), priv);
    // REQ: 56 bytes after rdma_cm's header (92 for RDMA_PS_IB); SIDR_REQ: 180.
    if (priv.size() > 180) throw ArgError(info.Env(), "connect: private data over 180 bytes");
    if (rdma_connect(id, &p)) throw ErrnoError(info.Env(), errno, "rdma_connect");
    Wait(Num(info));
    return info.Env().Undefined();
  }

  Napi::Value Accept(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    std::string priv;
    rdma_conn_param p = Param(info[1].As<Napi::Object>(), priv);
    if (p.private_data_len > 196) throw ArgError(info.Env(), "accept: private data over 196 bytes");
    if (rdma_accept(id, &p)) throw ErrnoError(info.Env(), errno, "rdma_accept");
    Wait(Num(info));
    return info.Env().Undefined();
  }

  // reject(id, privateData?, reason?): the kernel lets user space send only
  // CONSUMER_DEFINED (28, rdma_reject) or VENDOR_OPTION_NOT_SUPPORTED (35,
  // rdma_reject_ece).
  Napi::Value Reject(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    std::string priv;
    if (info[1].IsTypedArray()) {
      auto u8 = info[1].As<Napi::Uint8Array>();
      priv.assign(reinterpret_cast<const char*>(u8.Data()), u8.ByteLength());
    }
    if (priv.size() > 148) throw ArgError(info.Env(), "reject: private data over 148 bytes");
    uint32_t reason = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 28;
    if (reason != 28 && reason != 35) throw ArgError(info.Env(), "reject: the kernel's rdma_cm sends only reason 28 (CONSUMER_DEFINED) or 35 (VENDOR_OPTION_NOT_SUPPORTED)");
    const void* pd = priv.empty() ? nullptr : priv.data();
    uint8_t len = static_cast<uint8_t>(priv.size());
    if (reason == 35 ? rdma_reject_ece(id, pd, len) : rdma_reject(id, pd, len)) throw ErrnoError(info.Env(), errno, "rdma_reject");
    return info.Env().Undefined();
  }

  // establish(id): the active side's RTU after CONNECT_RESPONSE, for ids
  // whose QP the caller created and moved to RTS itself.
  Napi::Value Establish(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    if (rdma_establish(id)) throw ErrnoError(info.Env(), errno, "rdma_establish");
    return info.Env().Undefined();
  }

  // setOption(id, name, value): rdma_set_option at RDMA_OPTION_ID level.
  Napi::Value SetOption(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    std::string name = info[1].As<Napi::String>().Utf8Value();
    uint32_t v = info[2].As<Napi::Number>().Uint32Value();
    uint8_t u8 = static_cast<uint8_t>(v);
    int i32 = static_cast<int>(v);
    int rc;
    if (name == "ackTimeout") rc = rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &u8, sizeof u8);
    else if (name == "tos") rc = rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &u8, sizeof u8);
    else if (name == "reuseAddr") rc = rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR, &i32, sizeof i32);
    else if (name == "afOnly") rc = rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_AFONLY, &i32, sizeof i32);
    else throw ArgError(info.Env(), "setOption: unknown option " + name);
    if (rc) throw ErrnoError(info.Env(), errno, "rdma_set_option");
    return info.Env().Undefined();
  }

  Napi::Value Disconnect(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    if (rdma_disconnect(id)) throw ErrnoError(info.Env(), errno, "rdma_disconnect");
    return info.Env().Undefined();
  }

  // initQpAttr(id, qpState) -> { attr, mask }: what ibv_modify_qp needs to
  // move a QP the caller created to that state for this id.
  Napi::Value InitQpAttr(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    Napi::Env env = info.Env();
    ibv_qp_attr a{};
    int mask = 0;
    a.qp_state = static_cast<ibv_qp_state>(info[1].As<Napi::Number>().Uint32Value());
    if (rdma_init_qp_attr(id, &a, &mask)) throw ErrnoError(env, errno, "rdma_init_qp_attr");
    Napi::Object o = Napi::Object::New(env);
    o.Set("qpState", static_cast<uint32_t>(a.qp_state));
    o.Set("pkeyIndex", a.pkey_index);
    o.Set("portNum", a.port_num);
    o.Set("qpAccessFlags", a.qp_access_flags);
    o.Set("qkey", Napi::Number::New(env, a.qkey));
    o.Set("pathMtu", static_cast<uint32_t>(a.path_mtu));
    o.Set("destQpNum", a.dest_qp_num);
    o.Set("rqPsn", a.rq_psn);
    o.Set("sqPsn", a.sq_psn);
    o.Set("maxDestRdAtomic", a.max_dest_rd_atomic);
    o.Set("maxRdAtomic", a.max_rd_atomic);
    o.Set("minRnrTimer", a.min_rnr_timer);
    o.Set("timeout", a.timeout);
    o.Set("retryCnt", a.retry_cnt);
    o.Set("rnrRetry", a.rnr_retry);
    if (mask & IBV_QP_AV) o.Set("ahAttr", AhAttrObject(env, a.ah_attr));
    Napi::Object r = Napi::Object::New(env);
    r.Set("attr", o);
    r.Set("mask", mask);
    return r;
  }

  // info(id) -> { device, portNum, srcAddr, srcPort, dstAddr, dstPort }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    rdma_cm_id* id = Id(info);
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", id->verbs ? Napi::Value(Napi::String::New(env, ibv_get_device_name(id->verbs->device))) : env.Null());
    o.Set("portNum", id->port_num);
    o.Set("srcAddr", AddrString(rdma_get_local_addr(id)));
    o.Set("srcPort", ntohs(rdma_get_src_port(id)));
    o.Set("dstAddr", AddrString(rdma_get_peer_addr(id)));
    o.Set("dstPort", ntohs(rdma_get_dst_port(id)));
    return o;
  }

  static void OnReadable(uv_poll_t* h, int, int) {
    auto* self = static_cast<EventChannel*>(h->data);
    if (!self->ch_) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    self->Ref();
    for (int guard = 0; guard < 256 && self->ch_; guard++) {
      rdma_cm_event* ev = nullptr;
      if (rdma_get_cm_event(self->ch_, &ev)) break;
      Napi::Object o = Napi::Object::New(env);
      o.Set("type", static_cast<uint32_t>(ev->event));
      o.Set("name", rdma_event_str(ev->event));
      o.Set("status", ev->status);
      uint32_t idNum = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(ev->id->context));
      if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
        // A new id for the request; the listener's id stays the listener.
        o.Set("listenId", static_cast<uint32_t>(reinterpret_cast<uintptr_t>(ev->listen_id->context)));
        idNum = self->Track(ev->id);
        self->Wait(idNum);
      }
      o.Set("id", idNum);
      const void* pd = ev->param.conn.private_data;
      uint8_t pdLen = ev->param.conn.private_data_len;
      if (pd && pdLen) {
        auto u8 = Napi::Uint8Array::New(env, pdLen);
        std::memcpy(u8.Data(), pd, pdLen);
        o.Set("privateData", u8);
      }
      // Which half of the param union is valid follows the id's QP type, as in librdmacm.
      bool ud = ev->id->qp_type == IBV_QPT_UD;
      bool connEvent = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_CONNECT_RESPONSE ||
                       ev->event == RDMA_CM_EVENT_ESTABLISHED || ev->event == RDMA_CM_EVENT_REJECTED ||
                       ev->event == RDMA_CM_EVENT_UNREACHABLE || ev->event == RDMA_CM_EVENT_DISCONNECTED;
      if (connEvent && ud) {
        Napi::Object u = Napi::Object::New(env);
        u.Set("qpNum", ev->param.ud.qp_num);
        u.Set("qkey", Napi::Number::New(env, ev->param.ud.qkey));
        u.Set("ahAttr", AhAttrObject(env, ev->param.ud.ah_attr));
        o.Set("ud", u);
      } else if (connEvent) {
        o.Set("responderResources", ev->param.conn.responder_resources);
        o.Set("initiatorDepth", ev->param.conn.initiator_depth);
        o.Set("flowControl", ev->param.conn.flow_control);
        o.Set("retryCount", ev->param.conn.retry_count);
        o.Set("rnrRetryCount", ev->param.conn.rnr_retry_count);
        o.Set("srq", ev->param.conn.srq);
        o.Set("qpNum", ev->param.conn.qp_num);
      }
      switch (ev->event) {
        case RDMA_CM_EVENT_ADDR_ERROR:
        case RDMA_CM_EVENT_ROUTE_ERROR:
        case RDMA_CM_EVENT_REJECTED:
        case RDMA_CM_EVENT_UNREACHABLE:
        case RDMA_CM_EVENT_CONNECT_ERROR:
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
        case RDMA_CM_EVENT_TIMEWAIT_EXIT:
          self->Done(idNum);
          break;
        default:
          break;
      }
      rdma_ack_cm_event(ev);
      CallFromLoop(env, self->Value(), self->onEvent_, *self->asyncCtx_, {o});
    }
    self->Unref();
  }

  void Shutdown() {
    if (!ch_) return;
    for (auto& kv : ids_) rdma_destroy_id(kv.second);
    ids_.clear();
    waiting_.clear();
    if (poll_) poll_->Close();  // clears poll_
    rdma_destroy_event_channel(ch_);
    ch_ = nullptr;
    delete asyncCtx_;
    asyncCtx_ = nullptr;
    // onEvent closes over the JavaScript channel that owns this one: an open
    // channel keeps both alive, as an open socket does; once closed, that
    // cycle through a strong reference must go or neither is ever collected.
    onEvent_.Reset();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Env env_;
  rdma_event_channel* ch_ = nullptr;
  ibal::UvBox<uv_poll_t>* poll_ = nullptr;
  Napi::AsyncContext* asyncCtx_ = nullptr;
  Napi::FunctionReference onEvent_;
  std::unordered_map<uint32_t, rdma_cm_id*> ids_;
  uint32_t nextId_ = 1;
  std::unordered_set<uint32_t> waiting_;
};

}  // namespace

Napi::Object InitRdmaCm(Napi::Env env, Napi::Object exports) {
  Napi::Object cm = Napi::Object::New(env);
  cm.Set("EventChannel", EventChannel::Init(env));
  exports.Set("rdmacm", cm);
  return exports;
}

}  // namespace ibal
