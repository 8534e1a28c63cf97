// Calling JavaScript from a libuv callback or a thread-safe function.
// A handler's exception is reported as Node reports one thrown by any event
// callback. While a worker thread is being terminated its loop still runs
// callbacks, but JavaScript can no longer run: the call fails with no
// exception pending, and there is nobody left to tell. (node-addon-api's
// C++ exceptions cannot be used there: building the Napi::Error itself
// fails, and that is a fatal error of the whole process.)
#pragma once
#include <napi.h>
#include <initializer_list>

namespace ibal {

inline void ReportPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  napi_value exc;
  if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
}

// A callback a handle calls from the loop. A property of the handle's own
// JavaScript object keeps it alive as long as that object; the native side's
// reference is weak. Held strongly instead, a callback that closes over the
// handle's owner (`new WakePipe(() => this.wake())`) made a cycle through a
// GC root: neither was ever collected, closed or not, and a handle dropped
// without close() kept its descriptor for good. A started handle Ref()s its
// object, so its callback lives while it may be called.
inline Napi::FunctionReference KeepCallback(Napi::Object self, const char* name, Napi::Function fn) {
  self.DefineProperty(Napi::PropertyDescriptor::Value(name, fn, napi_default));
  return Napi::Weak(fn);
}

// MakeCallback, not a plain call: promise reactions and process.nextTick
// callbacks the handler queues run before the loop goes on.
inline void CallFromLoop(napi_env env, napi_value recv, const Napi::FunctionReference& fn, napi_async_context ctx,
                         std::initializer_list<napi_value> args = {}) {
  napi_value result;
  if (napi_make_callback(env, ctx, recv, fn.Value(), args.size(), args.begin(), &result) != napi_ok) ReportPending(env);
}

// For a thread-safe function's call_js, which Node already runs inside a
// callback scope.
inline void CallFromTsfn(napi_env env, napi_value fn, std::initializer_list<napi_value> args = {}) {
  napi_value undefined, result;
  if (napi_get_undefined(env, &undefined) != napi_ok) return;
  if (napi_call_function(env, undefined, fn, args.size(), args.begin(), &result) != napi_ok) ReportPending(env);
}

}  // namespace ibal
