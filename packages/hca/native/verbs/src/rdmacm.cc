#include <napi.h>
namespace ibal {
Napi::Object InitRdmaCm(Napi::Env env, Napi::Object exports) { return exports; }
}  // namespace ibal
