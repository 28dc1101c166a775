// POSIX (shm_open + mmap) and System V (shmget + shmat) shared memory,
// exposed to JavaScript as SharedArrayBuffers over the mapping.
//
// Node-API cannot create a SharedArrayBuffer over foreign memory, so this
// file uses the V8 API for that one step. The backing store's deleter
// unmaps the region when the last JavaScript view is collected.
//
// close() never unmaps while views may exist: it replaces the mapping, in
// place, with private anonymous memory (MAP_FIXED). The segment is detached
// at once (System V attach counts drop), and a view kept past close() reads
// zeros and writes to memory nobody shares, instead of faulting.
#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>

#include "common.h"
#include "v8-bridge.h"

namespace ipckit {

static size_t PageRound(size_t n) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

// ---------------------------------------------------------------------------
// Guarded mappings: a POSIX segment another process truncates.
//
// Touching a page of a file mapping beyond the file's end raises SIGBUS,
// which would kill the process. Each mapping of a POSIX segment is recorded
// here; ipckit's SIGBUS handler, finding the faulting address inside one,
// replaces that page and the rest of the mapping with private anonymous
// memory (MAP_FIXED), raises the mapping's flag, and returns: the access
// completes on memory nobody shares, and ipckit's next check of the flag
// (every read, write and lock call) fails with ERR_IPC_SIZE_MISMATCH. A
// fault anywhere else goes to the previous handler, or the default action.

namespace {

constexpr size_t kGuardSlots = 65536;  // vm.max_map_count is 65530 by default

struct Guard {
  std::atomic<uintptr_t> start{0};  // 0: free slot
  std::atomic<size_t> length{0};
  std::atomic<int> prot{0};
};

Guard g_guards[kGuardSlots];
// Raised by the handler when a mapping lost pages: JavaScript reads it.
int32_t g_truncated[kGuardSlots];
std::atomic<size_t> g_guard_high{0};  // slots in use are below this
std::mutex g_guard_mutex;
struct sigaction g_previous_bus;
uintptr_t g_page_size = 4096;  // set before the handler is installed

void OnBus(int signo, siginfo_t* info, void* context) {
  if (info->si_code == BUS_ADRERR) {
    auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    size_t high = g_guard_high.load(std::memory_order_acquire);
    for (size_t i = 0; i < high; i++) {
      uintptr_t start = g_guards[i].start.load(std::memory_order_acquire);
      size_t length = g_guards[i].length.load(std::memory_order_relaxed);
      if (start == 0 || addr < start || addr >= start + length) continue;
      uintptr_t page = addr & ~(g_page_size - 1);
      mmap(reinterpret_cast<void*>(page), start + length - page, g_guards[i].prot.load(), MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      __atomic_store_n(&g_truncated[i], 1, __ATOMIC_RELEASE);
      return;
    }
  }
  // Not a mapping of ours: whoever handled SIGBUS before, or the default.
  const struct sigaction& previous = g_previous_bus;
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) return previous.sa_sigaction(signo, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    return previous.sa_handler(signo);
  }
  signal(SIGBUS, SIG_DFL);
  // A fault repeats when the instruction runs again; a sent SIGBUS must be raised again.
  if (info->si_code <= 0) raise(SIGBUS);
}

void InstallBusHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = OnBus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

// Records a mapping; its slot, or -1 when every slot is taken (unguarded).
int GuardMapping(void* addr, size_t size, int prot) {
  InstallBusHandler();
  std::lock_guard<std::mutex> lock(g_guard_mutex);
  for (size_t i = 0; i < kGuardSlots; i++) {
    if (g_guards[i].start.load() != 0) continue;
    __atomic_store_n(&g_truncated[i], 0, __ATOMIC_RELEASE);
    g_guards[i].length.store(PageRound(size));
    g_guards[i].prot.store(prot);
    g_guards[i].start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    if (i + 1 > g_guard_high.load()) g_guard_high.store(i + 1, std::memory_order_release);
    return static_cast<int>(i);
  }
  return -1;
}

// Forgets the mapping at `addr` (before it is unmapped or replaced).
void UnguardMapping(void* addr) {
  auto start = reinterpret_cast<uintptr_t>(addr);
  std::lock_guard<std::mutex> lock(g_guard_mutex);
  size_t high = g_guard_high.load();
  for (size_t i = 0; i < high; i++) {
    if (g_guards[i].start.load() == start) g_guards[i].start.store(0, std::memory_order_release);
  }
}

int GuardSlotOf(void* addr) {
  auto start = reinterpret_cast<uintptr_t>(addr);
  size_t high = g_guard_high.load();
  for (size_t i = 0; i < high; i++) {
    if (g_guards[i].start.load() == start) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

bool MappingTruncated(int slot) {
  return slot >= 0 && static_cast<size_t>(slot) < kGuardSlots && __atomic_load_n(&g_truncated[slot], __ATOMIC_ACQUIRE) != 0;
}

// A SharedArrayBuffer of `size` bytes over `addr`, whose region of
// PageRound(size) bytes is unmapped when the buffer is collected.
static Napi::Value WrapMapping(Napi::Env env, void* addr, size_t size) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  auto store = v8::SharedArrayBuffer::NewBackingStore(
      addr, size,
      [](void* data, size_t length, void*) {
        if (data == nullptr) return;
        UnguardMapping(data);
        munmap(data, PageRound(length));
      },
      nullptr);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  return Napi::Value(env, FromV8(sab));
}

// ---------------------------------------------------------------------------
// POSIX

// shmOpen(name, oflag, mode) -> fd. A newly created object gets exactly
// `mode` (fchmod), whatever the umask.
// Non-blocking, so that a FIFO placed at the name cannot block the open.
static Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int oflag = ArgInt(info, 1) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  mode_t mode = static_cast<mode_t>(ArgInt(info, 2));
  int fd = shm_open(name.c_str(), oflag, mode);
  if (fd < 0) return Errno(info.Env(), errno);
  if ((oflag & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) && fchmod(fd, mode) < 0) {
    int err = errno;
    close(fd);
    shm_unlink(name.c_str());
    return Errno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// shmCreateUnnamed(mode) -> fd: a segment with no name yet (O_TMPFILE in
// /dev/shm) and exactly `mode`. Sized, then published under its name by
// shmPublish, it is never seen by anyone at size 0.
static Napi::Value ShmCreateUnnamed(const Napi::CallbackInfo& info) {
  mode_t mode = static_cast<mode_t>(ArgInt(info, 0));
  int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
  if (fd < 0) return Errno(info.Env(), errno);
  if (fchmod(fd, mode) < 0) {
    int err = errno;
    close(fd);
    return Errno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// shmPublish(fd, name) -> 0: gives the unnamed segment `fd` the POSIX name
// `name` (/x is /dev/shm/x, where shm_open looks); EEXIST if it is taken.
static Napi::Value ShmPublish(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string from = "/proc/self/fd/" + std::to_string(fd);
  std::string to = "/dev/shm" + name;
  return SysResult(info.Env(), linkat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW));
}

static Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return SysResult(info.Env(), shm_unlink(name.c_str()));
}

// ftruncate(fd, size) -> 0
static Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int r;
  do r = ftruncate(ArgInt(info, 0), static_cast<off_t>(ArgInt64(info, 1)));
  while (r < 0 && errno == EINTR);
  return SysResult(info.Env(), r);
}

// allocate(fd, size) -> 0: sets the size and reserves the memory
// (posix_fallocate), so a full /dev/shm fails here with ENOSPC instead of
// raising SIGBUS on a later write.
static Napi::Value Allocate(const Napi::CallbackInfo& info) {
  int r;
  do r = posix_fallocate(ArgInt(info, 0), 0, static_cast<off_t>(ArgInt64(info, 1)));
  while (r == EINTR);
  return Napi::Number::New(info.Env(), -r);
}

// mapFd(fd, size, readOnly) -> SharedArrayBuffer, or -errno
static Napi::Value MapFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  size_t size = static_cast<size_t>(ArgInt64(info, 1));
  bool read_only = info[2].As<Napi::Boolean>().Value();
  int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  void* addr = mmap(nullptr, PageRound(size), prot, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return Errno(info.Env(), errno);
  GuardMapping(addr, size, prot);
  return WrapMapping(info.Env(), addr, size);
}

// guardSlot(sab) -> the index of the mapping's truncation flag, or -1
static Napi::Value GuardSlot(const Napi::CallbackInfo& info) {
  v8::Local<v8::Value> value = ToV8(info[0]);
  if (!value->IsSharedArrayBuffer()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), GuardSlotOf(value.As<v8::SharedArrayBuffer>()->Data()));
}

// truncationFlags() -> SharedArrayBuffer over the mappings' flags (an Int32 each)
static Napi::Value TruncationFlags(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  auto store = v8::SharedArrayBuffer::NewBackingStore(g_truncated, sizeof g_truncated, [](void*, size_t, void*) {}, nullptr);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  return Napi::Value(info.Env(), FromV8(sab));
}

// ---------------------------------------------------------------------------
// System V

// shmGet(key, size, flags, mode) -> id
static Napi::Value ShmGet(const Napi::CallbackInfo& info) {
  key_t key = static_cast<key_t>(info[0].As<Napi::Number>().Uint32Value());
  size_t size = static_cast<size_t>(ArgInt64(info, 1));
  int flags = ArgInt(info, 2) | (ArgInt(info, 3) & 0777);
  return SysResult(info.Env(), shmget(key, size, flags));
}

// shmAttach(id, size, readOnly) -> SharedArrayBuffer of `size` bytes, or -errno
static Napi::Value ShmAttach(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  size_t size = static_cast<size_t>(ArgInt64(info, 1));
  bool read_only = info[2].As<Napi::Boolean>().Value();
  void* addr = shmat(id, nullptr, read_only ? SHM_RDONLY : 0);
  if (addr == reinterpret_cast<void*>(-1)) return Errno(info.Env(), errno);
  return WrapMapping(info.Env(), addr, size);
}

// shmStat(id) -> object, or -errno
static Napi::Value ShmStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  shmid_ds ds{};
  if (shmctl(ArgInt(info, 0), IPC_STAT, &ds) < 0) return Errno(env, errno);
  Napi::Object o = Napi::Object::New(env);
  SetIpcPerm(o, ds.shm_perm);
  o.Set("size", static_cast<double>(ds.shm_segsz));
  o.Set("removed", (ds.shm_perm.mode & SHM_DEST) != 0);
  o.Set("attachments", static_cast<double>(ds.shm_nattch));
  o.Set("creatorPid", static_cast<double>(ds.shm_cpid));
  o.Set("lastPid", static_cast<double>(ds.shm_lpid));
  o.Set("attachTime", static_cast<double>(ds.shm_atime));
  o.Set("detachTime", static_cast<double>(ds.shm_dtime));
  o.Set("changeTime", static_cast<double>(ds.shm_ctime));
  return o;
}

static Napi::Value ShmRemove(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), shmctl(ArgInt(info, 0), IPC_RMID, nullptr));
}

// ---------------------------------------------------------------------------

// detachMapping(sab) -> 0: swaps the mapping under `sab` for private
// anonymous memory of the same size, atomically (MAP_FIXED), so the segment
// is released while any remaining view stays valid memory.
static Napi::Value DetachMapping(const Napi::CallbackInfo& info) {
  v8::Local<v8::Value> value = ToV8(info[0]);
  if (!value->IsSharedArrayBuffer()) return Errno(info.Env(), EINVAL);
  auto sab = value.As<v8::SharedArrayBuffer>();
  void* addr = sab->Data();
  size_t length = sab->ByteLength();
  if (addr == nullptr || length == 0) return Napi::Number::New(info.Env(), 0);
  UnguardMapping(addr);
  void* r = mmap(addr, PageRound(length), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (r == MAP_FAILED) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// copyBytes(dst, dstOffset, src, srcOffset, length) -> 0. A plain memmove:
// V8 copies into and out of SharedArrayBuffers with relaxed atomic byte
// copies, about three times slower than this. Ranges are checked by the
// caller.
static Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  Bytes dst = ArgBytes(info, 0);
  Bytes src = ArgBytes(info, 2);
  size_t dst_offset = static_cast<size_t>(ArgInt64(info, 1));
  size_t src_offset = static_cast<size_t>(ArgInt64(info, 3));
  size_t length = static_cast<size_t>(ArgInt64(info, 4));
  if (dst_offset + length > dst.length || src_offset + length > src.length) return Errno(info.Env(), ERANGE);
  std::memmove(dst.data + dst_offset, src.data + src_offset, length);
  return Napi::Number::New(info.Env(), 0);
}

void InitSharedMemory(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"copyBytes", CopyBytes}, {"shmOpen", ShmOpen}, {"guardSlot", GuardSlot}, {"truncationFlags", TruncationFlags}, {"shmCreateUnnamed", ShmCreateUnnamed}, {"shmPublish", ShmPublish}, {"shmUnlink", ShmUnlink}, {"ftruncate", Ftruncate},
      {"allocate", Allocate}, {"mapFd", MapFd}, {"shmGet", ShmGet}, {"shmAttach", ShmAttach}, {"shmStat", ShmStat},
      {"shmRemove", ShmRemove}, {"detachMapping", DetachMapping}
  });
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
}

}  // namespace ipckit
