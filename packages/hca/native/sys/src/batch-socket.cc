// BatchSocket: a datagram socket driven by libuv's poll, moving many
// datagrams per system call (sendmmsg / recvmmsg) without allocating per
// datagram. Three kinds:
//  - udp:      an ordinary UDP socket (IPv4 or IPv6);
//  - raw-send: an IPv4 raw socket with IP_HDRINCL; the caller writes whole
//              IPv4 + UDP + payload frames, so it chooses the IP header
//              (Identification 0, DF), which the RoCEv2 ICRC covers;
//  - raw-recv: an IPv4 raw socket for IPPROTO_UDP that receives each frame
//              with its IP header, optionally filtered (classic BPF) to one
//              UDP destination port.
// Received datagrams land in one preallocated buffer of fixed-size slots;
// a metadata array says, per slot, the length, flags and source address.
#include "common.h"
#include "uv-box.h"
#include "loop-call.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <vector>

#ifndef UDP_NO_CHECK6_TX
#define UDP_NO_CHECK6_TX 101
#endif
#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace ibal {
namespace {

enum Kind { kUdp, kRawSend, kRawRecv };
constexpr int kMetaWords = 8;  // len, flags, family, port, address (16 bytes)
constexpr int kMaxRoundsPerWakeup = 16;

bool ParseAddress(int family, const std::string& s, uint16_t port, sockaddr_storage* out, socklen_t* len) {
  std::memset(out, 0, sizeof(*out));
  if (family == 4) {
    auto* a = reinterpret_cast<sockaddr_in*>(out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, s.c_str(), &a->sin_addr) != 1) return false;
    *len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, s.c_str(), &a->sin6_addr) != 1) return false;
    *len = sizeof(sockaddr_in6);
  }
  return true;
}

class BatchSocket : public Napi::ObjectWrap<BatchSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BatchSocket",
                       {InstanceMethod<&BatchSocket::LocalPort>("localPort"),
                        InstanceMethod<&BatchSocket::RecvBuffer>("recvBuffer"),
                        InstanceMethod<&BatchSocket::RecvMeta>("recvMeta"),
                        InstanceMethod<&BatchSocket::SetPeer>("setPeer"),
                        InstanceMethod<&BatchSocket::SendBatch>("sendBatch"),
                        InstanceMethod<&BatchSocket::SendOne>("sendOne"),
                        InstanceMethod<&BatchSocket::Start>("start"),
                        InstanceMethod<&BatchSocket::Stop>("stop"),
                        InstanceMethod<&BatchSocket::WantWritable>("wantWritable"),
                        InstanceMethod<&BatchSocket::SetRef>("setRef"),
                        InstanceMethod<&BatchSocket::Errors>("errors"),
                        InstanceMethod<&BatchSocket::Close>("close")});
  }

  explicit BatchSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchSocket>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "BatchSocket takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    auto str = [&](const char* k, const char* d) {
      Napi::Value v = o.Get(k);
      return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(d);
    };
    auto num = [&](const char* k, double d) {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : d;
    };
    std::string kind = str("kind", "udp");
    kind_ = kind == "udp" ? kUdp : kind == "raw-send" ? kRawSend : kind == "raw-recv" ? kRawRecv : -1;
    if (kind_ < 0) throw ArgError(env, "kind must be udp, raw-send or raw-recv");
    family_ = static_cast<int>(num("family", 4));
    if (family_ != 4 && family_ != 6) throw ArgError(env, "family must be 4 or 6");
    if (kind_ != kUdp && family_ != 4) throw ArgError(env, "raw sockets are IPv4 only");
    double batch = num("batch", 64), slot = num("slotSize", 4352);
    if (!(batch >= 1 && batch <= 1024) || !(slot >= 64 && slot <= 65536)) throw Napi::RangeError::New(env, "batch 1..1024, slotSize 64..65536");
    batch_ = static_cast<int>(batch);
    slot_ = (static_cast<size_t>(slot) + 7) & ~static_cast<size_t>(7);  // 8-byte aligned slots
    double port = num("port", 0);
    if (!(port >= 0 && port <= 65535)) throw Napi::RangeError::New(env, "port 0..65535");

    int domain = family_ == 4 ? AF_INET : AF_INET6;
    int type = (kind_ == kUdp ? SOCK_DGRAM : SOCK_RAW) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    int proto = kind_ == kUdp ? 0 : kind_ == kRawSend ? IPPROTO_RAW : IPPROTO_UDP;
    fd_ = socket(domain, type, proto);
    if (fd_ < 0) throw ErrnoError(env, errno, kind_ == kUdp ? "socket(udp)" : "socket(SOCK_RAW)");
    try {
      Configure(o, str("address", family_ == 4 ? "0.0.0.0" : "::"), static_cast<uint16_t>(port), num("rcvbuf", 0),
                num("sndbuf", 0), o.Get("noCheck6Rx").ToBoolean(), o.Get("noCheck6Tx").ToBoolean(),
                num("filterPort", -1), o.Get("dropAll").ToBoolean());
    } catch (...) {
      close(fd_);
      fd_ = -1;
      throw;
    }
    Napi::Value onRead = o.Get("onRead"), onWritable = o.Get("onWritable");
    if (onRead.IsFunction()) onRead_ = KeepCallback(info.This().As<Napi::Object>(), "onRead", onRead.As<Napi::Function>());
    if (onWritable.IsFunction()) onWritable_ = KeepCallback(info.This().As<Napi::Object>(), "onWritable", onWritable.As<Napi::Function>());
    recvBuf_ = Napi::Persistent(Napi::ArrayBuffer::New(env, slot_ * batch_));
    recvMeta_ = Napi::Persistent(Napi::ArrayBuffer::New(env, sizeof(uint32_t) * kMetaWords * batch_));
    rmsgs_.resize(batch_);
    riov_.resize(batch_);
    raddr_.resize(batch_);
    ctx_ = new Napi::AsyncContext(env, "ibal-batch-socket");
    uv_loop_s* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = UvBox<uv_poll_t>::New(env, &poll_);
    if (uv_poll_init(loop, &poll_->handle, fd_) != 0) {
      poll_->Discard();
      close(fd_);
      fd_ = -1;
      throw ErrnoError(env, EINVAL, "uv_poll_init");
    }
    poll_->handle.data = this;
  }

  ~BatchSocket() override {
    Shutdown();
    delete ctx_;
  }

 private:
  void Configure(Napi::Object o, const std::string& address, uint16_t port, double rcvbuf, double sndbuf,
                 bool noCheck6Rx, bool noCheck6Tx, double filterPort, bool dropAll) {
    Napi::Env env = o.Env();
    if (rcvbuf > 0) {
      int v = static_cast<int>(rcvbuf);
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (sndbuf > 0) {
      int v = static_cast<int>(sndbuf);
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    if (kind_ == kRawSend) {
      int on = 1;
      if (setsockopt(fd_, IPPROTO_IP, IP_HDRINCL, &on, sizeof on) != 0) throw ErrnoError(env, errno, "setsockopt(IP_HDRINCL)");
      return;  // a sending raw socket is not bound
    }
    if (family_ == 6 && kind_ == kUdp) {
      int on = 1;
      // rxe sends RoCEv2 over IPv6 with a zero UDP checksum; without this the
      // kernel drops those datagrams as invalid.
      if (noCheck6Rx && setsockopt(fd_, SOL_UDP, UDP_NO_CHECK6_RX, &on, sizeof on) != 0) {
        throw ErrnoError(env, errno, "setsockopt(UDP_NO_CHECK6_RX)");
      }
      if (noCheck6Tx && setsockopt(fd_, SOL_UDP, UDP_NO_CHECK6_TX, &on, sizeof on) != 0) {
        throw ErrnoError(env, errno, "setsockopt(UDP_NO_CHECK6_TX)");
      }
    }
    if (kind_ == kRawRecv && filterPort >= 0) {
      uint32_t p = static_cast<uint32_t>(filterPort);
      // The frame starts at the IPv4 header: keep unfragmented UDP to port p.
      struct sock_filter code[] = {
          BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
          BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
          BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
          BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, p, 0, 1),
          BPF_STMT(BPF_RET | BPF_K, 0x40000),
          BPF_STMT(BPF_RET | BPF_K, 0),
      };
      struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
      if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) throw ErrnoError(env, errno, "SO_ATTACH_FILTER");
    }
    if (dropAll) {
      // Holds a UDP port (no ICMP port-unreachable) while a raw socket reads it.
      struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
      struct sock_fprog prog = {1, code};
      if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) throw ErrnoError(env, errno, "SO_ATTACH_FILTER");
    }
    sockaddr_storage sa;
    socklen_t len;
    if (!ParseAddress(family_, address, kind_ == kUdp ? port : 0, &sa, &len)) throw ArgError(env, "bad address " + address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0) throw ErrnoError(env, errno, "bind " + address);
  }

  Napi::Value LocalPort(const Napi::CallbackInfo& info) {
    sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return Napi::Number::New(info.Env(), 0);
    uint16_t p = sa.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&sa)->sin_port : reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port;
    return Napi::Number::New(info.Env(), ntohs(p));
  }

  Napi::Value RecvBuffer(const Napi::CallbackInfo& info) {
    if (recvBuf_.IsEmpty()) throw ArgError(info.Env(), "BatchSocket is closed");
    return recvBuf_.Value();
  }
  Napi::Value RecvMeta(const Napi::CallbackInfo& info) {
    if (recvMeta_.IsEmpty()) throw ArgError(info.Env(), "BatchSocket is closed");
    return recvMeta_.Value();
  }

  void CheckOpen(Napi::Env env) {
    if (fd_ < 0) throw ArgError(env, "BatchSocket is closed");
  }

  // setPeer(index, address, port): the destination table used by sendBatch.
  Napi::Value SetPeer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    double idx = NumberArg(info, 0, "index");
    if (!(idx >= 0 && idx < 65536) || info.Length() < 2 || !info[1].IsString()) throw ArgError(env, "setPeer(index 0..65535, address, port)");
    double port = info.Length() > 2 ? NumberArg(info, 2, "port") : 0;
    if (!(port >= 0 && port <= 65535)) throw Napi::RangeError::New(env, "port 0..65535");
    size_t i = static_cast<size_t>(idx);
    if (peers_.size() <= i) {
      peers_.resize(i + 1);
      peerLen_.resize(i + 1, 0);
    }
    std::string a = info[1].As<Napi::String>().Utf8Value();
    if (!ParseAddress(family_, a, static_cast<uint16_t>(port), &peers_[i], &peerLen_[i])) throw ArgError(env, "bad address " + a);
    return env.Undefined();
  }

  // sendBatch(arena, desc: Uint32Array, first, count) -> datagrams consumed.
  // desc holds (offset, length, peer) triples. Stops early only when the
  // socket buffer is full (then onWritable fires once there is room); a
  // datagram the kernel rejects (EMSGSIZE, unreachable) is counted in
  // errors() and skipped, as a lossy wire would.
  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    Bytes arena = BytesOf(env, info.Length() > 0 ? info[0] : env.Undefined(), "arena");
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      throw ArgError(env, "desc must be a Uint32Array");
    }
    Napi::Uint32Array desc = info[1].As<Napi::Uint32Array>();
    double first = NumberArg(info, 2, "first"), count = NumberArg(info, 3, "count");
    if (!(first >= 0) || !(count >= 0) || (first + count) * 3 > desc.ElementLength()) throw Napi::RangeError::New(env, "desc range");
    size_t n = static_cast<size_t>(count), f = static_cast<size_t>(first);
    if (smsgs_.size() < n) {
      smsgs_.resize(n);
      siov_.resize(n);
    }
    const uint32_t* d = desc.Data();
    for (size_t i = 0; i < n; i++) {
      uint32_t off = d[(f + i) * 3], len = d[(f + i) * 3 + 1], peer = d[(f + i) * 3 + 2];
      if (static_cast<size_t>(off) + len > arena.length) throw Napi::RangeError::New(env, "datagram outside the arena");
      if (peer >= peers_.size() || peerLen_[peer] == 0) throw Napi::RangeError::New(env, "unknown peer index");
      siov_[i] = {arena.data + off, len};
      msghdr& h = smsgs_[i].msg_hdr;
      std::memset(&h, 0, sizeof h);
      h.msg_name = &peers_[peer];
      h.msg_namelen = peerLen_[peer];
      h.msg_iov = &siov_[i];
      h.msg_iovlen = 1;
    }
    size_t sent = 0;
    while (sent < n) {
      int r = sendmmsg(fd_, &smsgs_[sent], static_cast<unsigned>(n - sent), MSG_DONTWAIT);
      if (r > 0) {
        sent += static_cast<size_t>(r);
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == ENOBUFS) {
        ArmWritable();
        break;
      } else {
        errors_++;
        lastErrno_ = errno;
        sent++;
      }
    }
    return Napi::Number::New(env, static_cast<double>(sent));
  }

  // sendOne(buffer, offset, length, peer) -> true if sent, false if the socket is full.
  Napi::Value SendOne(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    Bytes b = BytesOf(env, info.Length() > 0 ? info[0] : env.Undefined(), "buffer");
    uint8_t* p = RangeOf(env, b, NumberArg(info, 1, "offset"), NumberArg(info, 2, "length"), "datagram");
    size_t len = static_cast<size_t>(NumberArg(info, 2, "length"));
    double peer = NumberArg(info, 3, "peer");
    if (!(peer >= 0) || peer >= peers_.size() || peerLen_[static_cast<size_t>(peer)] == 0) throw Napi::RangeError::New(env, "unknown peer index");
    size_t i = static_cast<size_t>(peer);
    for (;;) {
      ssize_t r = sendto(fd_, p, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peers_[i]), peerLen_[i]);
      if (r >= 0) return Napi::Boolean::New(env, true);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS) {
        ArmWritable();
        return Napi::Boolean::New(env, false);
      }
      errors_++;
      lastErrno_ = errno;
      return Napi::Boolean::New(env, true);
    }
  }

  Napi::Value Errors(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("count", Napi::Number::New(info.Env(), static_cast<double>(errors_)));
    o.Set("lastErrno", Napi::Number::New(info.Env(), lastErrno_));
    return o;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    if (!reading_) {
      reading_ = true;
      UpdatePoll();
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (reading_) {
      reading_ = false;
      UpdatePoll();
    }
    return info.Env().Undefined();
  }

  Napi::Value WantWritable(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    ArmWritable();
    return info.Env().Undefined();
  }

  // setRef(false): an open socket does not keep the process alive (like socket.unref()).
  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    refed_ = info.Length() < 1 || info[0].ToBoolean();
    if (poll_) {
      if (refed_) uv_ref(poll_->base());
      else uv_unref(poll_->base());
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void ArmWritable() {
    if (!writable_) {
      writable_ = true;
      UpdatePoll();
    }
  }

  void UpdatePoll() {
    if (!poll_) return;
    int events = (reading_ ? UV_READABLE : 0) | (writable_ ? UV_WRITABLE : 0);
    if (events) {
      uv_poll_start(&poll_->handle, events, OnPoll);
      if (!held_) {
        Ref();  // the JS object lives while the poll may call into it
        held_ = true;
      }
    } else {
      uv_poll_stop(&poll_->handle);
      if (held_) {
        held_ = false;
        Unref();
      }
    }
  }

  void Shutdown() {
    if (fd_ < 0) return;
    reading_ = writable_ = false;
    if (poll_) poll_->Close();  // clears poll_
    close(fd_);
    fd_ = -1;
    if (held_) {
      held_ = false;
      Unref();
    }
    // A closed socket that JavaScript still holds keeps no receive buffers.
    recvBuf_.Reset();
    recvMeta_.Reset();
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<BatchSocket*>(h->data);
    Napi::HandleScope scope(self->env_);
    if (status < 0) events = UV_READABLE | (self->writable_ ? UV_WRITABLE : 0);
    if ((events & UV_WRITABLE) && self->writable_) {
      self->writable_ = false;
      self->UpdatePoll();
      if (!self->onWritable_.IsEmpty()) self->Invoke(self->onWritable_, 0, false);
    }
    if ((events & UV_READABLE) && self->reading_ && self->fd_ >= 0) self->Drain();
  }

  void Drain() {
    uint8_t* data = static_cast<uint8_t*>(recvBuf_.Value().Data());
    uint32_t* meta = static_cast<uint32_t*>(recvMeta_.Value().Data());
    for (int round = 0; round < kMaxRoundsPerWakeup && reading_ && fd_ >= 0; round++) {
      for (int i = 0; i < batch_; i++) {
        riov_[i] = {data + static_cast<size_t>(i) * slot_, slot_};
        msghdr& m = rmsgs_[i].msg_hdr;
        std::memset(&m, 0, sizeof m);
        m.msg_name = &raddr_[i];
        m.msg_namelen = sizeof(sockaddr_storage);
        m.msg_iov = &riov_[i];
        m.msg_iovlen = 1;
      }
      int n = recvmmsg(fd_, rmsgs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
          errors_++;
          lastErrno_ = errno;
        }
        return;
      }
      if (n == 0) return;
      for (int i = 0; i < n; i++) {
        uint32_t* w = meta + i * kMetaWords;
        w[0] = rmsgs_[i].msg_len;
        w[1] = (rmsgs_[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
        std::memset(w + 4, 0, 16);
        if (raddr_[i].ss_family == AF_INET6) {
          auto* a = reinterpret_cast<sockaddr_in6*>(&raddr_[i]);
          w[2] = 6;
          w[3] = ntohs(a->sin6_port);
          std::memcpy(w + 4, &a->sin6_addr, 16);
        } else {
          auto* a = reinterpret_cast<sockaddr_in*>(&raddr_[i]);
          w[2] = 4;
          w[3] = ntohs(a->sin_port);
          std::memcpy(w + 4, &a->sin_addr, 4);
        }
      }
      if (!onRead_.IsEmpty()) Invoke(onRead_, n, true);
      if (n < batch_) return;
    }
  }

  void Invoke(Napi::FunctionReference& fn, int n, bool withCount) {
    if (withCount) CallFromLoop(env_, Value(), fn, *ctx_, {Napi::Number::New(env_, n)});
    else CallFromLoop(env_, Value(), fn, *ctx_);
  }

  Napi::Env env_;
  int kind_ = kUdp;
  int family_ = 4;
  int fd_ = -1;
  int batch_ = 64;
  size_t slot_ = 4352;
  UvBox<uv_poll_t>* poll_ = nullptr;
  bool reading_ = false, writable_ = false, held_ = false, refed_ = true;
  uint64_t errors_ = 0;
  int lastErrno_ = 0;
  Napi::FunctionReference onRead_, onWritable_;
  Napi::Reference<Napi::ArrayBuffer> recvBuf_, recvMeta_;
  Napi::AsyncContext* ctx_ = nullptr;
  std::vector<mmsghdr> rmsgs_, smsgs_;
  std::vector<iovec> riov_, siov_;
  std::vector<sockaddr_storage> raddr_, peers_;
  std::vector<socklen_t> peerLen_;
};

}  // namespace

void InitBatchSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("BatchSocket", BatchSocket::Define(env));
}

}  // namespace ibal
