// Doorbells: how a side of a shared-memory channel that waits through a
// descriptor (select, a Poller, an async call on the event loop) is told
// that the other side moved. A futex cannot be polled; a doorbell can.
//
// A doorbell is an AF_UNIX datagram socket bound to an abstract address
// made of a random 64-bit token: "\0ipckit-bell-" and 16 hex digits, with
// the exact length (no padding to 108 bytes, so a C peer computes the same
// address). The token is written into the channel's header, where the other
// side reads it to ring: one datagram of one byte, sent without waiting
// from a socket of this process's own. A full bell (EAGAIN) is ringing
// already. An abstract name disappears with its socket, so a crashed
// waiter leaves no file behind; a token nobody binds refuses the datagram
// (ECONNREFUSED), which the ringer ignores.
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>
#include <cstdio>
#include <cstring>

#include "common.h"
#include "v8-bridge.h"

namespace ipckit {
namespace {

constexpr char kPrefix[] = "ipckit-bell-";

// The address of token (hi, lo); returns its length.
socklen_t BellAddress(uint32_t hi, uint32_t lo, sockaddr_un* addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  int n = snprintf(addr->sun_path + 1, sizeof addr->sun_path - 1, "%s%08x%08x", kPrefix, hi, lo);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

// words[index] and words[index + 1] (arguments 0 and 1), or nullptr when they are not within the array.
int32_t* Words(const Napi::CallbackInfo& info) {
  auto words = info[0].As<Napi::Int32Array>();
  int at = ArgInt(info, 1);
  if (at < 0 || static_cast<size_t>(at) + 2 > words.ElementLength()) return nullptr;
  return words.Data() + at;
}

// bellOpen(words, index) -> fd, or -errno. Binds a fresh bell to a random
// token and stores the token in words[index] (high) and words[index + 1]
// (low). The token is never zero: a zero pair means "no bell".
Napi::Value BellOpen(const Napi::CallbackInfo& info) {
  int32_t* slot = Words(info);
  if (slot == nullptr) return Errno(info.Env(), ERANGE);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Errno(info.Env(), errno);
  for (int attempt = 0; attempt < 16; attempt++) {
    uint32_t token[2];
    if (getrandom(token, sizeof token, 0) != sizeof token) {
      int err = errno;
      close(fd);
      return Errno(info.Env(), err);
    }
    if ((token[0] | token[1]) == 0) continue;
    sockaddr_un addr;
    socklen_t len = BellAddress(token[0], token[1], &addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
      __atomic_store_n(slot, static_cast<int32_t>(token[0]), __ATOMIC_SEQ_CST);
      __atomic_store_n(slot + 1, static_cast<int32_t>(token[1]), __ATOMIC_SEQ_CST);
      return Napi::Number::New(info.Env(), fd);
    }
    // Another socket holds that name (a squatter, or a one-in-2^64 clash): draw again.
    if (errno != EADDRINUSE) break;
  }
  int err = errno;
  close(fd);
  return Errno(info.Env(), err);
}

// The process's ringing socket: made when the first channel handle of the
// process opens, closed when the last one closes (a handle rings only while
// it is open, so it never rings through a closed descriptor).
std::mutex ringer_lock;
int ringer_fd = -1;
int ringer_users = 0;
// The users each environment (main thread, worker) holds: a worker that
// ends with channels open gives its share back when its environment is torn
// down, since its handles are never closed.
std::unordered_map<napi_env, int> env_users;

void DropUsers(int n) {
  ringer_users -= n;
  if (ringer_users <= 0 && ringer_fd >= 0) {
    close(ringer_fd);
    ringer_fd = -1;
    ringer_users = 0;
  }
}

void EnvEnded(void* arg) {
  std::lock_guard<std::mutex> hold(ringer_lock);
  auto it = env_users.find(static_cast<napi_env>(arg));
  if (it == env_users.end()) return;
  int n = it->second;
  env_users.erase(it);
  DropUsers(n);
}


// bellRinger(delta) -> the ringing socket's fd (delta 1: one more handle
// needs it, made now if it was not), 0 (delta -1: one handle less; closed
// with the last), or -errno.
Napi::Value BellRinger(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  std::lock_guard<std::mutex> hold(ringer_lock);
  auto it = env_users.find(env);
  if (ArgInt(info, 0) < 0) {
    if (it == env_users.end() || it->second == 0) return Napi::Number::New(env, 0);
    it->second--;
    DropUsers(1);
    return Napi::Number::New(env, 0);
  }
  if (ringer_fd < 0) {
    ringer_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (ringer_fd < 0) return Errno(env, errno);
  }
  if (it == env_users.end()) {
    napi_add_env_cleanup_hook(env, EnvEnded, env);
    it = env_users.emplace(env, 0).first;
  }
  it->second++;
  ringer_users++;
  return Napi::Number::New(env, ringer_fd);
}

// bellRing(words, index) -> 0, or -errno. Rings the bell whose token is in
// words[index..index+1] (nothing for a zero token). EAGAIN (the bell holds
// unread rings) counts as rung.
//
// A datagram is charged to the sending socket until its receiver reads it,
// so bells that are rung and never read (a process that armed many and
// stopped waiting) could fill the ringer's send buffer and silence every
// later ring of this process. A ring refused (EAGAIN) while the ringer has
// half its buffer in flight therefore moves to a fresh ringer and is sent
// again; the old socket goes once what it sent is read or dropped. EAGAIN
// with the buffer mostly free is the bell's own queue being full: it is
// ringing already. Rings are sent under the lock, so the socket is never
// closed under a sender.
void BellRing(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int32_t* slot = args.Word(0, 1, 2);
  if (!args.ok()) return;
  if (slot == nullptr) return args.Return(-ERANGE);
  uint32_t hi = static_cast<uint32_t>(__atomic_load_n(slot, __ATOMIC_SEQ_CST));
  uint32_t lo = static_cast<uint32_t>(__atomic_load_n(slot + 1, __ATOMIC_SEQ_CST));
  if ((hi | lo) == 0) return args.Return(0);
  sockaddr_un addr;
  socklen_t len = BellAddress(hi, lo, &addr);
  const char ring = 1;
  std::lock_guard<std::mutex> hold(ringer_lock);
  for (int attempt = 0;; attempt++) {
    if (ringer_fd < 0) return args.Return(-EBADF);
    if (sendto(ringer_fd, &ring, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) >= 0) {
      return args.Return(0);
    }
    if (errno != EAGAIN) return args.Return(-errno);
    int queued = 0;
    int limit = 0;
    socklen_t size = sizeof limit;
    if (attempt > 0 || ioctl(ringer_fd, SIOCOUTQ, &queued) < 0 ||
        getsockopt(ringer_fd, SOL_SOCKET, SO_SNDBUF, &limit, &size) < 0 || queued < limit / 2) {
      return args.Return(0);
    }
    int fresh = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fresh < 0) return args.Return(-errno);
    close(ringer_fd);
    ringer_fd = fresh;
  }
}

// bellDrain(fd) -> 1 if a ring was read, 0 if none was there, or -errno.
// One read: a bell is rung once per arming, so one ring is what waits; a
// second one (a stray datagram) only makes the waiter look once more.
void BellDrain(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int fd = args.Int(0);
  if (!args.ok()) return;
  char buf[16];
  for (;;) {
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) return args.Return(1);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return args.Return(0);
    if (errno != EINTR) return args.Return(-errno);
  }
}

}  // namespace

void InitDoorbell(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {{"bellOpen", BellOpen}, {"bellRinger", BellRinger}});
  ExportDirect(exports, {{"bellRing", BellRing}, {"bellDrain", BellDrain}});
}

}  // namespace ipckit
