// copyRuns: the copy between a strided layout (runs of bytes at offsets,
// repeated every `extent` bytes) and a packed one, which MPI's derived
// datatypes make of every non-contiguous send and receive. A loop of short
// copies costs a JIT several times what it costs here; every run is checked
// against both buffers first, so a wrong table throws instead of writing
// outside them.
#include "common.h"

namespace ibal {
namespace {

const double* DoublesOf(Napi::Env env, Napi::Value v, size_t* count, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) throw ArgError(env, std::string(what) + " must be a Float64Array");
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  *count = a.ElementLength();
  return a.Data();
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double d = NumberArg(info, i, what);
  if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer");
  }
  return static_cast<int64_t>(d);
}

// Both calls' first five arguments: the direction and the two ends.
struct Ends {
  bool toPacked;
  Bytes user;
  int64_t userOff;
  Bytes packed;
  int64_t packedOff;
};

Ends EndsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return {info.Length() > 0 && info[0].ToBoolean(), BytesOf(env, info.Length() > 1 ? info[1] : env.Undefined(), "user"), IntArg(info, 2, "userOff"),
          BytesOf(env, info.Length() > 3 ? info[3] : env.Undefined(), "packed"), IntArg(info, 4, "packedOff")};
}

// copyRuns(toPacked, user, userOff, packed, packedOff, disp, len, extent, first, n)
Napi::Value CopyRuns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto [toPacked, user, userOff, packed, packedOff] = EndsOf(info);
  size_t runs = 0;
  size_t lens = 0;
  const double* disp = DoublesOf(env, info.Length() > 5 ? info[5] : env.Undefined(), &runs, "disp");
  const double* len = DoublesOf(env, info.Length() > 6 ? info[6] : env.Undefined(), &lens, "len");
  if (runs != lens) throw ArgError(env, "disp and len must be as long");
  int64_t extent = IntArg(info, 7, "extent");
  int64_t first = IntArg(info, 8, "first");
  int64_t n = IntArg(info, 9, "n");
  const int64_t ulen = static_cast<int64_t>(user.length);
  const int64_t plen = static_cast<int64_t>(packed.length);
  if (packedOff < 0 || n < 0) throw Napi::RangeError::New(env, "copyRuns: negative offset or count");
  int64_t p = packedOff;
  for (int64_t k = first; k < first + n; k++) {
    const int64_t base = userOff + k * extent;
    for (size_t i = 0; i < runs; i++) {
      const int64_t u = base + static_cast<int64_t>(disp[i]);
      const int64_t l = static_cast<int64_t>(len[i]);
      if (u < 0 || l < 0 || u + l > ulen || p + l > plen) throw Napi::RangeError::New(env, "copyRuns: a run lies outside its buffer");
      uint8_t* from = toPacked ? user.data + u : packed.data + p;
      uint8_t* to = toPacked ? packed.data + p : user.data + u;
      if (l == 8) std::memcpy(to, from, 8);
      else if (l == 4) std::memcpy(to, from, 4);
      else std::memmove(to, from, static_cast<size_t>(l));
      p += l;
    }
  }
  return env.Undefined();
}

// copyStrided(toPacked, user, userOff, packed, packedOff, stride, len, count):
// `count` runs of `len` bytes, `stride` bytes apart from userOff, to or from
// consecutive bytes at packedOff: a vector type's whole layout with no table
// to read beside the data.
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto [toPacked, user, userOff, packed, packedOff] = EndsOf(info);
  int64_t stride = IntArg(info, 5, "stride");
  int64_t len = IntArg(info, 6, "len");
  int64_t count = IntArg(info, 7, "count");
  if (count <= 0) return env.Undefined();
  const int64_t last = userOff + (count - 1) * stride;
  if (len < 0 || packedOff < 0 || userOff < 0 || last < 0 || userOff + len > static_cast<int64_t>(user.length) || last + len > static_cast<int64_t>(user.length) ||
      packedOff + count * len > static_cast<int64_t>(packed.length)) {
    throw Napi::RangeError::New(env, "copyStrided: a run lies outside its buffer");
  }
  uint8_t* u = user.data + userOff;
  uint8_t* p = packed.data + packedOff;
  if (len == 8) {
    for (int64_t i = 0; i < count; i++, u += stride, p += 8) {
      if (toPacked) std::memcpy(p, u, 8);
      else std::memcpy(u, p, 8);
    }
  } else {
    for (int64_t i = 0; i < count; i++, u += stride, p += len) {
      if (toPacked) std::memmove(p, u, static_cast<size_t>(len));
      else std::memmove(u, p, static_cast<size_t>(len));
    }
  }
  return env.Undefined();
}

}  // namespace

void InitRuns(Napi::Env env, Napi::Object exports) {
  exports.Set("copyRuns", Napi::Function::New(env, CopyRuns, "copyRuns"));
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided, "copyStrided"));
}

}  // namespace ibal
