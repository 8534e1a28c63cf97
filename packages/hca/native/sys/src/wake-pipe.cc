// A wake-up that reaches the event loop in one hop. A futex needs a thread
// to sleep on it and a second hand-off from that thread into the loop (and
// re-arming the thread costs a switch of its own); here the loop itself
// watches the read end of a pipe (uv_poll), and a waker in any process of
// the same user writes a byte to it through /proc/<pid>/fd/<fd>.
#include "common.h"
#include "uv-box.h"
#include "loop-call.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <uv.h>

namespace ibal {
namespace {

class WakePipe : public Napi::ObjectWrap<WakePipe> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "WakePipe",
                       {InstanceMethod<&WakePipe::WriteFd>("writeFd"), InstanceMethod<&WakePipe::Start>("start"),
                        InstanceMethod<&WakePipe::Stop>("stop"), InstanceMethod<&WakePipe::SetRef>("setRef"),
                        InstanceMethod<&WakePipe::Close>("close")});
  }

  // new WakePipe(onWake): onWake() runs on the loop after bytes arrived
  // (they are drained first) while started.
  explicit WakePipe(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WakePipe>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw ArgError(env, "onWake must be a function");
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw ErrnoError(env, errno, "pipe2");
    rfd_ = fds[0];
    wfd_ = fds[1];
    onWake_ = KeepCallback(info.This().As<Napi::Object>(), "onWake", info[0].As<Napi::Function>());
    ctx_ = new Napi::AsyncContext(env, "ibal-wake-pipe");
    uv_loop_s* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = UvBox<uv_poll_t>::New(env, &poll_);
    if (uv_poll_init(loop, &poll_->handle, rfd_) != 0) {
      poll_->Discard();
      Shutdown();
      throw ErrnoError(env, EINVAL, "uv_poll_init");
    }
    poll_->handle.data = this;
  }

  ~WakePipe() override {
    // Finalized: no reference is held (a started pipe holds one), or the
    // environment is going away and references are being dropped anyway.
    started_ = false;
    Shutdown();
    delete ctx_;
  }

 private:
  Napi::Value WriteFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), wfd_); }

  // start(): watch the pipe, keeping the loop alive until stop() (unless setRef(false)).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!poll_) throw ArgError(info.Env(), "WakePipe is closed");
    if (!started_) {
      started_ = true;
      // A started pipe keeps its wrapper (and so onWake) alive, as a
      // listening socket would, even if JavaScript dropped it.
      Ref();
      uv_poll_start(&poll_->handle, UV_READABLE, OnPoll);
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_ && started_) {
      started_ = false;
      Unref();
      uv_poll_stop(&poll_->handle);
    }
    return info.Env().Undefined();
  }

  // setRef(false): a started watch no longer keeps the loop alive (as a
  // socket's unref()); it still fires while something else does.
  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    bool on = info.Length() < 1 || info[0].ToBoolean();
    if (poll_) {
      if (on) uv_ref(poll_->base());
      else uv_unref(poll_->base());
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Drain() {
    char buf[64];
    while (read(rfd_, buf, sizeof buf) > 0) {
    }
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<WakePipe*>(h->data);
    if (!self || !self->poll_) return;
    self->Drain();
    if (!self->started_) return;
    Napi::HandleScope scope(self->env_);
    CallFromLoop(self->env_, self->Value(), self->onWake_, *self->ctx_);
  }

  void Shutdown() {
    if (poll_) poll_->Close();  // clears poll_
    if (started_) {
      started_ = false;
      Unref();
    }
    if (rfd_ >= 0) close(rfd_);
    if (wfd_ >= 0) close(wfd_);
    rfd_ = wfd_ = -1;
  }

  Napi::Env env_;
  int rfd_ = -1, wfd_ = -1;
  bool started_ = false;
  UvBox<uv_poll_t>* poll_ = nullptr;
  Napi::FunctionReference onWake_;
  Napi::AsyncContext* ctx_ = nullptr;
};

// wakeOpen(pid, fd) -> fd: the write end of another process's WakePipe.
Napi::Value WakeOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = static_cast<int>(NumberArg(info, 0, "pid"));
  int fd = static_cast<int>(NumberArg(info, 1, "fd"));
  std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  int w = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (w < 0) throw ErrnoError(env, errno, "open " + path);
  // The pid and descriptor come from shared memory: if the sleeper died and
  // its pid was reused, they name someone else's file. Only a pipe is kicked.
  struct stat st;
  if (fstat(w, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    close(w);
    throw ErrnoError(env, ENOTSUP, path + " is not a pipe");
  }
  return Napi::Number::New(env, w);
}

// wakeKick(fd) -> false when the pipe is gone (its reader died): one byte,
// and a full pipe already holds a wake-up.
Napi::Value WakeKick(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(NumberArg(info, 0, "fd"));
  char b = 1;
  ssize_t r = write(fd, &b, 1);
  return Napi::Boolean::New(info.Env(), r == 1 || errno == EAGAIN);
}

Napi::Value FdClose(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(NumberArg(info, 0, "fd"));
  if (fd > 2) close(fd);
  return info.Env().Undefined();
}

}  // namespace

void InitWakePipe(Napi::Env env, Napi::Object exports) {
  exports.Set("WakePipe", WakePipe::Define(env));
  exports.Set("wakeOpen", Napi::Function::New(env, WakeOpen, "wakeOpen"));
  exports.Set("wakeKick", Napi::Function::New(env, WakeKick, "wakeKick"));
  exports.Set("fdClose", Napi::Function::New(env, FdClose, "fdClose"));
}

}  // namespace ibal
