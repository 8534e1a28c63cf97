// Shared helpers of the ibal_sys addon: errno errors that the TypeScript
// layer maps to typed IbalErrors, and bounds-checked views of JS memory.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include "errno-name.h"

namespace ibal {

// An Error whose `code` is the errno name (EPERM, ESRCH, ...) and `errno` the
// number, like Node's own system errors, so the wrapper switches on `code`.
inline Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

inline Napi::Error ArgError(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "EINVAL"));
  return e;
}

struct Bytes {
  uint8_t* data;
  size_t length;
};

// The bytes of an ArrayBuffer or of any ArrayBufferView (TypedArray, Buffer,
// DataView), as JS sees them.
inline Bytes BytesOf(Napi::Env env, Napi::Value v, const char* what) {
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(ab.Data()), ab.ByteLength()};
  }
  // The views' own data pointers, not their buffers': a view of a
  // SharedArrayBuffer has a buffer N-API will not take as an ArrayBuffer
  // ('Invalid argument'), yet its bytes are as good.
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t count = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, v, &type, &count, &data, nullptr, nullptr) != napi_ok) throw ArgError(env, std::string(what) + ": unreadable typed array");
    return {static_cast<uint8_t*>(data), v.As<Napi::TypedArray>().ByteLength()};
  }
  if (v.IsDataView()) {
    size_t len = 0;
    void* data = nullptr;
    if (napi_get_dataview_info(env, v, &len, &data, nullptr, nullptr) != napi_ok) throw ArgError(env, std::string(what) + ": unreadable DataView");
    return {static_cast<uint8_t*>(data), len};
  }
  throw ArgError(env, std::string(what) + " must be an ArrayBuffer or a TypedArray");
}

// A [offset, offset + length) range inside `b`, checked.
inline uint8_t* RangeOf(Napi::Env env, const Bytes& b, double offset, double length, const char* what) {
  if (!(offset >= 0) || !(length >= 0) || offset + length > static_cast<double>(b.length) ||
      offset != static_cast<double>(static_cast<uint64_t>(offset)) ||
      length != static_cast<double>(static_cast<uint64_t>(length))) {
    throw Napi::RangeError::New(env, std::string(what) + ": range outside the buffer");
  }
  return b.data + static_cast<size_t>(offset);
}

inline double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgError(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// Keeps the shared mapping that holds `addr` (one of shmMap, memfdMap or
// fileMap) mapped, even past its ArrayBuffer's finalizer, until the token is
// released: a native thread sleeping on a word there must never find it
// unmapped. Returns nullptr for memory that is not such a mapping.
void* RetainMapping(const void* addr);
void ReleaseMapping(void* token);

void InitShm(Napi::Env env, Napi::Object exports);
void InitFutex(Napi::Env env, Napi::Object exports);
void InitVm(Napi::Env env, Napi::Object exports);
void InitBatchSocket(Napi::Env env, Napi::Object exports);
void InitWakePipe(Napi::Env env, Napi::Object exports);
void InitLoopSpin(Napi::Env env, Napi::Object exports);
void InitRuns(Napi::Env env, Napi::Object exports);

}  // namespace ibal
