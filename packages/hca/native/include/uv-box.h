// A libuv handle owned by an addon object, closed safely whichever comes
// first: the object (close(), or its finalizer) or the environment's
// teardown. When a worker thread ends, Node tears down its environment and
// then unloads the addon; a handle still open then has its close callback
// (code in this addon) called from unmapped memory, and the worker's end
// crashes the process. An async cleanup hook (N-API 8) closes the handle
// first and makes Node wait until its close callback has run.
#pragma once
#include <napi.h>
#include <uv.h>

namespace ibal {

template <typename H>
struct UvBox {
  H handle;  // first member: the close callback finds the box from it
  napi_async_cleanup_hook_handle hook = nullptr;
  // The owner's pointer to this box, cleared when the box closes (the owner
  // then behaves as closed).
  UvBox** owner = nullptr;
  bool closing = false;

  // A box for an owner to initialise `handle` in (uv_*_init). If that
  // fails, Discard() it instead of Close().
  static UvBox* New(napi_env env, UvBox** owner) {
    auto* b = new UvBox();
    b->owner = owner;
    if (napi_add_async_cleanup_hook(env, OnEnvCleanup, b, &b->hook) != napi_ok) b->hook = nullptr;
    return b;
  }

  uv_handle_t* base() { return reinterpret_cast<uv_handle_t*>(&handle); }

  void Close() {
    if (closing) return;
    closing = true;
    if (owner) *owner = nullptr;
    owner = nullptr;
    uv_close(base(), OnClosed);
  }

  // For a handle whose init failed: nothing for libuv to close.
  void Discard() {
    if (owner) *owner = nullptr;
    if (hook) napi_remove_async_cleanup_hook(hook);
    delete this;
  }

 private:
  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) { static_cast<UvBox*>(arg)->Close(); }

  static void OnClosed(uv_handle_t* h) {
    auto* b = reinterpret_cast<UvBox*>(h);
    if (b->hook) napi_remove_async_cleanup_hook(b->hook);
    delete b;
  }
};

}  // namespace ibal
