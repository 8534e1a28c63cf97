// POSIX shared memory segments mapped into the process and handed to JS as
// an external ArrayBuffer. The mapping lives as long as the ArrayBuffer or
// until it is detached (close), whichever comes first, and as long as any
// RetainMapping holds it. Detaching must unmap at once: Node runs an
// external ArrayBuffer's finalizer only when the object is collected, not
// when it is detached, so memory closed by JS (a deregistered MR, a closed
// segment) stayed mapped, and its tmpfs pages allocated, until a GC that
// never counted them (a loop of 4 GiB segments filled the machine).
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <mutex>
#include <vector>

namespace ibal {
namespace {

struct Mapping {
  void* addr;
  size_t length;
  int fd = -1;  // kept open for as long as the memory lives (memfdMap)
  int refs = 1;  // the ArrayBuffer's (until detached or collected), plus one per RetainMapping
  bool jsOwned = true;  // the ArrayBuffer's reference is still counted
  bool finalized = false;  // the finalizer ran: nothing will name this struct again once refs is 0
};

// Mappings whose ArrayBuffer is alive, for RetainMapping; every worker
// thread's addon instance shares them.
std::mutex registryLock;
std::vector<Mapping*> registry;

void Drop(Mapping* m) {  // under registryLock
  if (--m->refs > 0) return;
  munmap(m->addr, m->length);
  if (m->fd >= 0) close(m->fd);
  m->addr = nullptr;
  m->fd = -1;
  // The finalizer still holds the struct until it has run.
  if (m->finalized) delete m;
}

// The ArrayBuffer lets go of the memory: detached by JS, or collected.
void DropJs(Mapping* m) {  // under registryLock
  auto it = std::find(registry.begin(), registry.end(), m);
  if (it != registry.end()) registry.erase(it);
  if (!m->jsOwned) return;
  m->jsOwned = false;
  Drop(m);
}

// Node hands external memory to JavaScript as a Buffer's, and refuses a
// Buffer longer than its kMaxLength (4 GiB on Node 20) only after running
// the finalizer, which node-addon-api then frees again: a double free that
// aborted the process. So no mapping larger than that reaches it.
constexpr double kMaxExternal = 4294967296.0;

Napi::ArrayBuffer Expose(Napi::Env env, Mapping* m) {
  if (static_cast<double>(m->length) > kMaxExternal) {
    munmap(m->addr, m->length);
    if (m->fd >= 0) close(m->fd);
    delete m;
    throw Napi::RangeError::New(env, "a mapping larger than 4 GiB cannot be handed to JavaScript");
  }
  {
    std::lock_guard<std::mutex> g(registryLock);
    registry.push_back(m);
  }
  return Napi::ArrayBuffer::New(env, m->addr, m->length, [](Napi::Env, void*, Mapping* m) {
    std::lock_guard<std::mutex> g(registryLock);
    m->finalized = true;
    if (m->jsOwned) DropJs(m);
    else if (m->refs == 0) delete m;
  }, m);
}

bool SizeOk(double size) {
  return size > 0 && size <= kMaxExternal && size == static_cast<double>(static_cast<uint64_t>(size));
}

std::string NameArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw ArgError(info.Env(), "name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  // shm_open(3): one leading slash, no other, at most NAME_MAX.
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 255) {
    throw ArgError(info.Env(), "shared memory names look like /name (one leading slash, at most 255 bytes)");
  }
  return name;
}

// shmMap(name, size, create): create (O_EXCL, mode 0600, sized) or open an
// existing segment (size 0 = its whole length). Returns the ArrayBuffer.
Napi::Value ShmMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = NameArg(info);
  double size = NumberArg(info, 1, "size");
  bool create = info.Length() > 2 && info[2].ToBoolean();
  if (!(size >= 0) || size > kMaxExternal || size != static_cast<double>(static_cast<uint64_t>(size)) || (create && size == 0)) {
    throw Napi::RangeError::New(env, "size must be a positive integer of at most 4 GiB");
  }
  int fd = shm_open(name.c_str(), create ? (O_RDWR | O_CREAT | O_EXCL) : O_RDWR, 0600);
  if (fd < 0) throw ErrnoError(env, errno, "shm_open " + name);
  size_t len = static_cast<size_t>(size);
  if (create) {
    if (ftruncate(fd, static_cast<off_t>(len)) != 0) {
      int err = errno;
      close(fd);
      shm_unlink(name.c_str());
      throw ErrnoError(env, err, "ftruncate " + name);
    }
    // Reserve the pages now: on a small /dev/shm (a container's 64 MiB) an
    // unreserved page would fail later as SIGBUS on first touch, killing
    // the process; here it fails as ENOSPC and the caller falls back.
    int ferr = posix_fallocate(fd, 0, static_cast<off_t>(len));
    if (ferr != 0 && ferr != EOPNOTSUPP && ferr != EINVAL) {
      close(fd);
      shm_unlink(name.c_str());
      throw ErrnoError(env, ferr, "posix_fallocate " + name);
    }
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      throw ErrnoError(env, err, "fstat " + name);
    }
    size_t have = static_cast<size_t>(st.st_size);
    if (len == 0) len = have;
    if (len == 0 || len > have) {
      close(fd);
      throw ErrnoError(env, EINVAL, "shm segment " + name + " is smaller than asked (" + std::to_string(have) + " bytes)");
    }
  }
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);  // the mapping keeps the segment alive
  if (addr == MAP_FAILED) {
    if (create) shm_unlink(name.c_str());
    throw ErrnoError(env, err, "mmap " + name);
  }
  return Expose(env, new Mapping{addr, len});
}

// memfdMap(size) -> { buffer, fd }: anonymous shared memory with no name
// at all. The descriptor stays open as long as the buffer lives, so a peer
// of the same user may map it through /proc/<pid>/fd/<fd>, and a process
// that dies leaves nothing behind: its descriptors close with it.
Napi::Value MemfdMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double size = NumberArg(info, 0, "size");
  if (!SizeOk(size)) throw Napi::RangeError::New(env, "size must be a positive integer of at most 4 GiB");
  size_t len = static_cast<size_t>(size);
  int fd = memfd_create("ibal-mr", MFD_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(len)) != 0) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, err, "ftruncate memfd");
  }
  // As for shmMap: fail now with ENOSPC rather than later with SIGBUS.
  int ferr = posix_fallocate(fd, 0, static_cast<off_t>(len));
  if (ferr != 0 && ferr != EOPNOTSUPP && ferr != EINVAL) {
    close(fd);
    throw ErrnoError(env, ferr, "posix_fallocate memfd");
  }
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, err, "mmap memfd");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("buffer", Expose(env, new Mapping{addr, len, fd}));
  out.Set("fd", Napi::Number::New(env, fd));
  return out;
}

// fileMap(path) -> ArrayBuffer: maps all of a file (another process's
// memfd, through /proc/<pid>/fd/<fd>) read-write and shared.
Napi::Value FileMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw ArgError(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, errno, "open " + path);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    int err = st.st_size <= 0 ? EINVAL : errno;
    close(fd);
    throw ErrnoError(env, err, "fstat " + path);
  }
  size_t len = static_cast<size_t>(st.st_size);
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) throw ErrnoError(env, err, "mmap " + path);
  return Expose(env, new Mapping{addr, len});
}

Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = NameArg(info);
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  throw ErrnoError(info.Env(), errno, "shm_unlink " + name);
}

// Detaching the external ArrayBuffer releases its backing store, which
// unmaps; every view of it becomes zero-length instead of dangling.
Napi::Value Detach(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw ArgError(info.Env(), "detach takes an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return Napi::Boolean::New(info.Env(), false);
  void* data = ab.Data();
  ab.Detach();
  // Views are zero-length now, so the memory can go at once (see the top).
  std::lock_guard<std::mutex> g(registryLock);
  for (Mapping* m : registry) {
    if (m->addr == data) {
      DropJs(m);
      break;
    }
  }
  return Napi::Boolean::New(info.Env(), true);
}

// releaseFd(buffer) -> boolean: closes the descriptor a memfdMap buffer
// kept for peers to map it by (they may no longer); the memory stays until
// the buffer is detached or collected. Descriptors otherwise waited for a
// GC, which counts memory, not descriptors: a loop registering 64 KiB MRs
// ran out of them at the default limit of 1024.
Napi::Value ReleaseFd(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw ArgError(info.Env(), "releaseFd takes an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return Napi::Boolean::New(info.Env(), false);
  void* data = ab.Data();
  std::lock_guard<std::mutex> g(registryLock);
  for (Mapping* m : registry) {
    if (m->addr == data && m->fd >= 0) {
      close(m->fd);
      m->fd = -1;
      return Napi::Boolean::New(info.Env(), true);
    }
  }
  return Napi::Boolean::New(info.Env(), false);
}

// The address of a buffer's bytes in this process, for process_vm_* peers.
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Bytes b = BytesOf(info.Env(), info.Length() ? info[0] : info.Env().Undefined(), "buffer");
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(b.data)));
}

}  // namespace

void* RetainMapping(const void* addr) {
  std::lock_guard<std::mutex> g(registryLock);
  auto p = static_cast<const uint8_t*>(addr);
  for (Mapping* m : registry) {
    auto base = static_cast<const uint8_t*>(m->addr);
    if (p >= base && p < base + m->length) {
      m->refs++;
      return m;
    }
  }
  return nullptr;
}

void ReleaseMapping(void* token) {
  if (!token) return;
  std::lock_guard<std::mutex> g(registryLock);
  Drop(static_cast<Mapping*>(token));
}

void InitShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmMap", Napi::Function::New(env, ShmMap, "shmMap"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("memfdMap", Napi::Function::New(env, MemfdMap, "memfdMap"));
  exports.Set("fileMap", Napi::Function::New(env, FileMap, "fileMap"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("releaseFd", Napi::Function::New(env, ReleaseFd, "releaseFd"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
}

}  // namespace ibal
