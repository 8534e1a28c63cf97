// ibal_sys: the Linux system calls behind the soft HCA's same-host fast path
// and its batched / raw wires. Each feature lives in its own file.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ibal::InitShm(env, exports);
  ibal::InitFutex(env, exports);
  ibal::InitVm(env, exports);
  ibal::InitBatchSocket(env, exports);
  ibal::InitWakePipe(env, exports);
  ibal::InitLoopSpin(env, exports);
  ibal::InitRuns(env, exports);
  return exports;
}

NODE_API_MODULE(ibal_sys, Init)
