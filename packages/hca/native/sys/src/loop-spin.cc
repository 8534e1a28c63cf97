// LoopSpin: calls back into JavaScript once per turn of the event loop,
// through one libuv idle handle re-used for every turn (see
// src/sys/loop-turns.ts for why not setImmediate). While it is started the
// loop does not block in epoll, as with a pending setImmediate.
#include "common.h"
#include "uv-box.h"
#include "loop-call.h"

namespace ibal {
namespace {

class LoopSpin : public Napi::ObjectWrap<LoopSpin> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LoopSpin",
                       {InstanceMethod<&LoopSpin::Start>("start"), InstanceMethod<&LoopSpin::Stop>("stop"),
                        InstanceMethod<&LoopSpin::Close>("close")});
  }

  // new LoopSpin(onTurn): onTurn() runs once per loop turn while started.
  explicit LoopSpin(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LoopSpin>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw ArgError(env, "onTurn must be a function");
    onTurn_ = KeepCallback(info.This().As<Napi::Object>(), "onTurn", info[0].As<Napi::Function>());
    ctx_ = new Napi::AsyncContext(env, "ibal-loop-spin");
    uv_loop_s* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    idle_ = UvBox<uv_idle_t>::New(env, &idle_);
    uv_idle_init(loop, &idle_->handle);
    idle_->handle.data = this;
  }

  ~LoopSpin() override {
    // Finalized: no reference is held (a started handle holds one), or the
    // environment is going away and references are being dropped anyway.
    started_ = false;
    Shutdown();
    delete ctx_;
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!idle_) throw ArgError(info.Env(), "LoopSpin is closed");
    if (!started_) {
      started_ = true;
      // A started handle keeps its wrapper (and so onTurn) alive, as a
      // pending setImmediate would, even if JavaScript dropped it.
      Ref();
      uv_idle_start(&idle_->handle, OnIdle);
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (idle_ && started_) {
      started_ = false;
      uv_idle_stop(&idle_->handle);
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  static void OnIdle(uv_idle_t* h) {
    auto* self = static_cast<LoopSpin*>(h->data);
    if (!self || !self->idle_ || !self->started_) return;
    Napi::HandleScope scope(self->env_);
    CallFromLoop(self->env_, self->Value(), self->onTurn_, *self->ctx_);
  }

  void Shutdown() {
    if (started_) {
      started_ = false;
      Unref();
    }
    if (idle_) idle_->Close();  // clears idle_
  }

  Napi::Env env_;
  bool started_ = false;
  UvBox<uv_idle_t>* idle_ = nullptr;
  Napi::FunctionReference onTurn_;
  Napi::AsyncContext* ctx_ = nullptr;
};

}  // namespace

void InitLoopSpin(Napi::Env env, Napi::Object exports) { exports.Set("LoopSpin", LoopSpin::Define(env)); }

}  // namespace ibal
