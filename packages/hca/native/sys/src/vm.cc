// process_vm_writev / process_vm_readv: one copy between this process's
// buffer and another process's memory, with no intermediary. The kernel
// checks that we may ptrace the target (same user and Yama scope, or
// CAP_SYS_PTRACE); its refusal comes back as EPERM, a dead pid as ESRCH,
// an unmapped remote range as EFAULT.
#include "common.h"
#include <sys/uio.h>

namespace ibal {
namespace {

uint64_t AddressArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (i < info.Length() && info[i].IsBigInt()) {
    bool lossless = true;
    uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "remote address out of range");
    return v;
  }
  double d = NumberArg(info, i, "remoteAddress");
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(env, "remote address out of range");
  }
  return static_cast<uint64_t>(d);
}

// vmTransfer(write, pid, buffer, offset, length, remoteAddress) -> bytes moved.
// Loops over partial transfers; an error after some progress is still thrown
// with `bytes` set, so the caller knows how much landed.
Napi::Value VmTransfer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool write = info.Length() > 0 && info[0].ToBoolean();
  double pidArg = NumberArg(info, 1, "pid");
  if (!(pidArg > 0) || pidArg > 4194304 || pidArg != static_cast<double>(static_cast<int64_t>(pidArg))) {
    throw Napi::RangeError::New(env, "pid must be a positive integer");
  }
  pid_t pid = static_cast<pid_t>(pidArg);
  Bytes b = BytesOf(env, info.Length() > 2 ? info[2] : env.Undefined(), "buffer");
  double off = NumberArg(info, 3, "offset");
  double len = NumberArg(info, 4, "length");
  uint8_t* local = RangeOf(env, b, off, len, "local range");
  uint64_t remote = AddressArg(info, 5);
  size_t total = static_cast<size_t>(len);
  if (remote + total < remote) throw Napi::RangeError::New(env, "remote range wraps");
  size_t done = 0;
  while (done < total) {
    struct iovec l = {local + done, total - done};
    struct iovec r = {reinterpret_cast<void*>(static_cast<uintptr_t>(remote + done)), total - done};
    ssize_t n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0) : process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      Napi::Error e = ErrnoError(env, errno, write ? "process_vm_writev" : "process_vm_readv");
      e.Set("bytes", Napi::Number::New(env, static_cast<double>(done)));
      throw e;
    }
    if (n == 0) {
      Napi::Error e = ErrnoError(env, EFAULT, write ? "process_vm_writev" : "process_vm_readv");
      e.Set("bytes", Napi::Number::New(env, static_cast<double>(done)));
      throw e;
    }
    done += static_cast<size_t>(n);
  }
  return Napi::Number::New(env, static_cast<double>(done));
}

}  // namespace

void InitVm(Napi::Env env, Napi::Object exports) {
  exports.Set("vmTransfer", Napi::Function::New(env, VmTransfer, "vmTransfer"));
}

}  // namespace ibal
