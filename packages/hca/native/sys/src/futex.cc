// Futex wait/wake on a 32-bit word of a shared mapping. The futexes are
// shared (no FUTEX_PRIVATE_FLAG): the kernel keys them by the physical page,
// so two processes mapping one segment meet on the same word.
//
// Two ways to wait:
//  - futexWaitSync: spin for a bounded time, then sleep in FUTEX_WAIT. It
//    blocks the calling thread, for latency loops in workers.
//  - FutexWaiter: a thread of its own sleeps in FUTEX_WAIT and reports to JS
//    through a thread-safe function, so the event loop never blocks.
#include "common.h"
#include "loop-call.h"
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ibal {
namespace {

enum WaitResult { kOk = 0, kTimedOut = 1, kCancelled = 2, kFault = 3, kSlept = 4 };

long Futex(uint32_t* addr, int op, uint32_t val, const struct timespec* ts) {
  return syscall(SYS_futex, addr, op, val, ts, nullptr, 0);
}

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// The word at buffer[byteOffset], which must be 4-byte aligned.
uint32_t* WordArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  Bytes b = BytesOf(env, i < info.Length() ? info[i] : env.Undefined(), "buffer");
  double off = NumberArg(info, i + 1, "byteOffset");
  uint8_t* p = RangeOf(env, b, off, 4, "futex word");
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) throw Napi::RangeError::New(env, "futex word must be 4-byte aligned");
  return reinterpret_cast<uint32_t*>(p);
}

// The optional sleeper-count word at buffer[info[i]] (the buffer is
// argument 0); null when the argument is absent or negative.
uint32_t* WaitersArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber() || info[i].As<Napi::Number>().DoubleValue() < 0) return nullptr;
  Napi::Env env = info.Env();
  Bytes b = BytesOf(env, info[0], "buffer");
  uint8_t* p = RangeOf(env, b, info[i].As<Napi::Number>().DoubleValue(), 4, "waiters word");
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) throw Napi::RangeError::New(env, "waiters word must be 4-byte aligned");
  return reinterpret_cast<uint32_t*>(p);
}

// One FUTEX_WAIT until `deadline` (ns, CLOCK_MONOTONIC; <0 = forever).
// Returns kOk when woken or when the word no longer holds `expected`.
int SleepOn(uint32_t* addr, uint32_t expected, int64_t deadline, int64_t slice) {
  for (;;) {
    struct timespec ts;
    const struct timespec* tp = nullptr;
    int64_t left = slice;
    if (deadline >= 0) {
      int64_t d = deadline - NowNs();
      if (d <= 0) return kTimedOut;
      if (left < 0 || d < left) left = d;
    }
    if (left >= 0) {
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
      tp = &ts;
    }
    long r = Futex(addr, FUTEX_WAIT, expected, tp);
    if (r == 0) return kOk;
    if (errno == EAGAIN) return kOk;
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) {
      if (slice >= 0 && (deadline < 0 || NowNs() < deadline)) return -1;  // slice over, caller re-checks
      return kTimedOut;
    }
    return kFault;
  }
}

// futexWake(buffer, byteOffset, count) -> number of waiters woken.
Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  uint32_t* addr = WordArg(info, 0);
  double n = info.Length() > 2 ? NumberArg(info, 2, "count") : INT_MAX;
  int count = n >= INT_MAX ? INT_MAX : n < 1 ? 1 : static_cast<int>(n);
  long r = Futex(addr, FUTEX_WAKE, count, nullptr);
  if (r < 0) throw ErrnoError(info.Env(), errno, "futex(FUTEX_WAKE)");
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

// futexWaitSync(buffer, byteOffset, expected, spinNs, timeoutMs, waitersOffset, yieldNs)
// -> 0 the word changed while spinning, 4 woken (or changed) after sleeping,
// 1 timed out. Spins (reading the word) for up to spinNs, then, for up to
// yieldNs, reads it between sched_yield() calls, then sleeps in the kernel;
// telling spin from sleep lets the caller adapt its spin budget. Yielding is
// for more processes than CPUs: the process this one waits for is then
// likely runnable behind it on the same CPU, and a yield hands it the CPU at
// once where a futex sleep would wait for a wake-up and a reschedule.
// With waitersOffset >= 0, the 32-bit word there counts sleepers: it is
// raised only around the sleep, so a waker skips FUTEX_WAKE (a system call)
// while the waiter is still spinning.
Napi::Value FutexWaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* addr = WordArg(info, 0);
  uint32_t expected = static_cast<uint32_t>(static_cast<int64_t>(NumberArg(info, 2, "expected")));
  double spinNs = info.Length() > 3 ? NumberArg(info, 3, "spinNs") : 0;
  double timeoutMs = info.Length() > 4 ? NumberArg(info, 4, "timeoutMs") : -1;
  uint32_t* waiters = WaitersArg(info, 5);
  double yieldNs = info.Length() > 6 && info[6].IsNumber() ? info[6].As<Napi::Number>().DoubleValue() : 0;
  int64_t start = NowNs();
  int64_t deadline = timeoutMs < 0 || timeoutMs > 1e12 ? -1 : start + static_cast<int64_t>(timeoutMs * 1e6);
  if (spinNs > 0) {
    int64_t spinEnd = start + static_cast<int64_t>(spinNs > 1e9 ? 1e9 : spinNs);
    for (uint32_t i = 1;; i++) {
      if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) != expected) return Napi::Number::New(env, kOk);
      CpuRelax();
      if ((i & 31) == 0) {
        int64_t now = NowNs();
        if (now >= spinEnd) break;
        if (deadline >= 0 && now >= deadline) return Napi::Number::New(env, kTimedOut);
      }
    }
  }
  if (yieldNs > 0) {
    int64_t yieldEnd = NowNs() + static_cast<int64_t>(yieldNs > 1e9 ? 1e9 : yieldNs);
    for (;;) {
      if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) != expected) return Napi::Number::New(env, kOk);
      sched_yield();
      int64_t now = NowNs();
      if (now >= yieldEnd) break;
      if (deadline >= 0 && now >= deadline) return Napi::Number::New(env, kTimedOut);
    }
  }
  if (waiters) __atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
  // Re-checked after announcing ourselves (seq_cst on both sides): a waker
  // that bumped the word before seeing our count is caught here.
  if (__atomic_load_n(addr, __ATOMIC_SEQ_CST) != expected) {
    if (waiters) __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
    return Napi::Number::New(env, kOk);
  }
  int r = SleepOn(addr, expected, deadline, -1);
  int err = errno;
  if (waiters) __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
  if (r == kFault) throw ErrnoError(env, err, "futex(FUTEX_WAIT)");
  return Napi::Number::New(env, r == kOk ? kSlept : r);
}

// ---- FutexWaiter: the waiting thread --------------------------------------

struct WaiterState;
void CallJs(Napi::Env env, Napi::Function fn, WaiterState* state, int* result);
using Tsfn = Napi::TypedThreadSafeFunction<WaiterState, int, CallJs>;

// Shared by the JS object, the thread and the thread-safe function; freed
// when both the JS object and the thread-safe function's finalizer are done
// with it. Either may come first: when a worker thread ends, Node finalizes
// the thread-safe function while the JS object (and our thread) still exist.
struct WaiterState {
  uint32_t* addr = nullptr;
  // Counts sleepers (see futexWaitSync); the thread raises it only around
  // its FUTEX_WAIT and lowers it the moment it wakes, so a ringer stops
  // paying for FUTEX_WAKE at once, not when JS gets round to the result.
  uint32_t* waiters = nullptr;
  std::mutex m;
  std::condition_variable cv;
  bool armed = false;
  bool quit = false;
  uint32_t expected = 0;
  int64_t deadline = -1;
  std::atomic<bool> cancel{false};
  std::thread thread;
  Tsfn tsfn;
  bool refed = false;      // JS-thread only; false once the JS object has shut down
  bool finalized = false;  // JS-thread only: tsfn is gone
  int owners = 2;          // JS-thread only: the JS object and tsfn's finalizer
  void* mapping = nullptr; // RetainMapping: the words stay mapped while the thread runs
};

// Ends the thread (waking it from a wait) and waits for it; idempotent.
// JS-thread only.
void StopThread(WaiterState* s);

void DropState(WaiterState* s) {
  if (--s->owners == 0) delete s;
}

// Runs on the JS thread, from C: nothing may escape it as a C++ exception
// (that is std::terminate), so it uses the C API throughout. When a wait
// finishes while Node tears the environment down (process exit, a worker
// ending), JS can no longer run and the result has nobody to go to.
void CallJs(Napi::Env env, Napi::Function fn, WaiterState* state, int* result) {
  int r = *result;
  delete result;
  if (env == nullptr || fn.IsEmpty()) return;
  if (state->refed) {
    napi_unref_threadsafe_function(env, state->tsfn);
    state->refed = false;
  }
  napi_value arg;
  if (napi_create_int32(env, r, &arg) != napi_ok) return;
  CallFromTsfn(env, fn, {arg});
}

// A cancelled wait is noticed within this slice even if the cancelling wake
// raced ahead of the thread's FUTEX_WAIT.
constexpr int64_t kSliceNs = 20 * 1000 * 1000;

void WaiterMain(WaiterState* s) {
  std::unique_lock<std::mutex> lock(s->m);
  for (;;) {
    s->cv.wait(lock, [s] { return s->armed || s->quit; });
    if (s->quit) return;
    uint32_t expected = s->expected;
    int64_t deadline = s->deadline;
    lock.unlock();
    int r = -1;
    if (s->waiters) {
      __atomic_add_fetch(s->waiters, 1, __ATOMIC_SEQ_CST);
      // Re-checked after announcing ourselves (seq_cst on both sides): a
      // ringer that bumped the word before it saw our count is caught here.
      if (__atomic_load_n(s->addr, __ATOMIC_SEQ_CST) != expected) r = kOk;
    }
    while (r == -1) {
      if (s->cancel.load()) {
        r = kCancelled;
        break;
      }
      r = SleepOn(s->addr, expected, deadline, kSliceNs);
      if (r != -1) {
        if (s->cancel.load()) r = kCancelled;
        break;
      }
    }
    if (s->waiters) __atomic_sub_fetch(s->waiters, 1, __ATOMIC_SEQ_CST);
    lock.lock();
    s->armed = false;
    s->cancel.store(false);
    int* result = new int(r);
    // napi_closing once the environment is going away: nobody to tell.
    if (s->tsfn.NonBlockingCall(result) != napi_ok) delete result;
  }
}

void StopThread(WaiterState* s) {
  if (!s->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> g(s->m);
    s->quit = true;
    if (s->armed) {
      s->cancel.store(true);
      Futex(s->addr, FUTEX_WAKE, INT_MAX, nullptr);
    }
  }
  s->cv.notify_one();
  s->thread.join();
  ReleaseMapping(s->mapping);
  s->mapping = nullptr;
}

class FutexWaiter : public Napi::ObjectWrap<FutexWaiter> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FutexWaiter",
                       {InstanceMethod<&FutexWaiter::Arm>("arm"), InstanceMethod<&FutexWaiter::Cancel>("cancel"),
                        InstanceMethod<&FutexWaiter::Close>("close")});
  }

  // new FutexWaiter(buffer, byteOffset, onResult(code), waitersOffset?)
  explicit FutexWaiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FutexWaiter>(info) {
    Napi::Env env = info.Env();
    uint32_t* addr = WordArg(info, 0);
    if (info.Length() < 3 || !info[2].IsFunction()) throw ArgError(env, "onResult must be a function");
    uint32_t* waiters = WaitersArg(info, 3);
    // The buffer stays referenced so the mapping outlives the thread's use.
    buffer_ = Napi::Persistent(info[0].As<Napi::Object>());
    state_ = new WaiterState();
    state_->addr = addr;
    state_->waiters = waiters;
    // A worker thread's end finalizes the buffer before any cleanup hook of
    // ours can stop the thread: the mapping must outlive the thread itself.
    state_->mapping = RetainMapping(addr);
    state_->tsfn = Tsfn::New(env, info[2].As<Napi::Function>(), "ibal-futex-waiter", 0, 1, state_,
                             [](Napi::Env, void*, WaiterState* s) {
                               s->finalized = true;
                               StopThread(s);  // a joinable std::thread destroyed is std::terminate
                               DropState(s);
                             });
    state_->tsfn.Unref(env);
    state_->thread = std::thread(WaiterMain, state_);
    // When a worker thread ends, the thread must be stopped before the
    // environment (and the thread-safe function) go away.
    env_ = env;
    napi_add_env_cleanup_hook(env, OnEnvCleanup, state_);
  }

  ~FutexWaiter() override { Shutdown(nullptr); }

 private:
  // arm(expected, timeoutMs[, keepAlive]): the result (0 ok, 1 timed out, 2 cancelled,
  // 3 fault) arrives through onResult. One wait at a time.
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_ || state_->finalized) throw ArgError(env, "FutexWaiter is closed");
    uint32_t expected = static_cast<uint32_t>(static_cast<int64_t>(NumberArg(info, 0, "expected")));
    double timeoutMs = info.Length() > 1 ? NumberArg(info, 1, "timeoutMs") : -1;
    // arm(..., false): the wait does not keep the loop alive (as an unref'd handle).
    bool keepAlive = info.Length() < 3 || info[2].ToBoolean();
    {
      std::lock_guard<std::mutex> g(state_->m);
      if (state_->armed) throw ArgError(env, "FutexWaiter is already waiting");
      state_->expected = expected;
      state_->deadline = timeoutMs < 0 || timeoutMs > 1e12 ? -1 : NowNs() + static_cast<int64_t>(timeoutMs * 1e6);
      state_->armed = true;
      state_->cancel.store(false);
    }
    if (keepAlive && !state_->refed) {
      state_->tsfn.Ref(env);
      state_->refed = true;
    }
    state_->cv.notify_one();
    return env.Undefined();
  }

  // A cancel wakes every waiter of the word: futex waits may always wake
  // spuriously, and callers re-check the word.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    if (state_) {
      std::lock_guard<std::mutex> g(state_->m);
      if (state_->armed) {
        state_->cancel.store(true);
        Futex(state_->addr, FUTEX_WAKE, INT_MAX, nullptr);
      }
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(&info);
    return info.Env().Undefined();
  }

  static void OnEnvCleanup(void* arg) { StopThread(static_cast<WaiterState*>(arg)); }

  void Shutdown(const Napi::CallbackInfo* info) {
    if (!state_) return;
    WaiterState* s = state_;
    state_ = nullptr;
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, s);
    StopThread(s);
    if (!s->finalized) {
      if (info && s->refed) s->tsfn.Unref(info->Env());
      s->refed = false;
      s->tsfn.Release();
    }
    if (!buffer_.IsEmpty()) buffer_.Reset();
    DropState(s);
  }

  WaiterState* state_ = nullptr;
  napi_env env_ = nullptr;
  Napi::ObjectReference buffer_;
};

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("futexWaitSync", Napi::Function::New(env, FutexWaitSync, "futexWaitSync"));
  exports.Set("FutexWaiter", FutexWaiter::Define(env));
}

}  // namespace ibal
