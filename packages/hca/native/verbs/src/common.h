// Errors the TS side maps to typed IbalErrors: `code` is the errno name,
// `errno` the number, `syscall` the verb that failed.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstring>
#include <string>
#include "errno-name.h"

namespace ibal {

inline Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  if (err == 0) err = EIO;
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

inline Napi::Error ArgError(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "EINVAL"));
  e.Set("errno", Napi::Number::New(env, EINVAL));
  return e;
}

inline uint32_t U32(const Napi::Object& o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : dflt;
}

}  // namespace ibal
