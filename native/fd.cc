// Descriptor I/O shared by every descriptor-backed mechanism: close, flags,
// owned descriptors, reads and writes, one bounded poll, opens bounded by a
// timeout, gathered writes and scattered reads, and the one export of the
// flag constants TypeScript uses.
//
// A descriptor a user or a child relies on keeps its mode: ipckit never sets
// O_NONBLOCK on it. A non-blocking attempt goes through a private open file
// description that ipckit opened non-blocking (pipes, FIFOs), passes an
// expired deadline (POSIX queues), or a per-call flag (sockets:
// MSG_DONTWAIT).
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "spin.h"
#include "sys.h"
#include "v8-bridge.h"
#include "wake.h"

namespace ipckit {

namespace {

// close(fd). EINTR is not retried: on Linux the descriptor is released
// even when close reports EINTR, and retrying could close a reused number.
int CloseOnce(int fd) {
  int r = close(fd);
  return r < 0 && errno != EINTR ? -errno : 0;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CloseOnce(ArgInt(info, 0)));
}

// The descriptors ipckit's handles own in this environment (each runs on a
// thread of its own), each with the token of its owner. A descriptor is
// owned once: a second handle over the same number would close it under
// the first. A descriptor ipckit has just been given by the kernel replaces
// a record of the same number (its owner lost it when someone closed it
// behind ipckit's back): that owner's token then closes nothing. When the
// environment ends (a worker exits) whatever is still owned is closed.
struct Held {
  std::unordered_map<int, uint32_t> fds;
  uint32_t next_token = 1;
  bool hooked = false;
};
thread_local Held tls_held;

void CloseAllHeld(void* arg) {
  auto* held = static_cast<Held*>(arg);
  for (const auto& entry : held->fds) CloseOnce(entry.first);
  held->fds.clear();
  held->hooked = false;
}

// holdFd(fd, fresh) -> the owner's token, or -EEXIST if a handle of this
// environment owns it already (and it is not fresh from the kernel)
Napi::Value HoldFd(const Napi::CallbackInfo& info) {
  Held& held = tls_held;
  int fd = ArgInt(info, 0);
  if (held.fds.count(fd) != 0 && !info[1].As<Napi::Boolean>().Value()) return Errno(info.Env(), EEXIST);
  uint32_t token = held.next_token++;
  if (held.next_token > 0x7fffffff) held.next_token = 1;
  held.fds[fd] = token;
  if (!held.hooked) {
    napi_add_env_cleanup_hook(info.Env(), CloseAllHeld, &held);
    held.hooked = true;
  }
  return Napi::Number::New(info.Env(), token);
}

// releaseFd(fd, token) -> the result of closing a descriptor its owner
// still owns (-EBADF, and nothing closed, otherwise)
Napi::Value ReleaseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  auto it = tls_held.fds.find(fd);
  if (it == tls_held.fds.end() || it->second != info[1].As<Napi::Number>().Uint32Value()) return Errno(info.Env(), EBADF);
  tls_held.fds.erase(it);
  return Napi::Number::New(info.Env(), CloseOnce(fd));
}

// The C library's description of an errno value.
Napi::Value StrError(const Napi::CallbackInfo& info) {
  char buf[256];
  const char* text = strerror_r(ArgInt(info, 0), buf, sizeof buf);
  return Napi::String::New(info.Env(), text);
}

// fcntl(F_GETFL) / fcntl(F_GETFD).
Napi::Value GetFlags(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETFL));
}

Napi::Value GetFdFlags(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETFD));
}

// setNonBlocking(fd, on) -> 0: the descriptor's own mode, for descriptors
// ipckit owns or the user asked to change.
Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return Errno(info.Env(), errno);
  flags = info[1].As<Napi::Boolean>().Value() ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  return SysResult(info.Env(), fcntl(fd, F_SETFL, flags));
}

int ReadOnce(int fd, uint8_t* data, size_t length) {
  ssize_t n;
  do n = SysRead(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

int WriteOnce(int fd, const uint8_t* data, size_t length) {
  ssize_t n;
  do n = SysWrite(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

// The shared body of readFd/writeFd: args (fd, buffer, offset, length,
// spinUs). One attempt, repeated on EAGAIN for up to spinUs.
template <typename F>
void Transfer(const v8::FunctionCallbackInfo<v8::Value>& info, const F& once) {
  DirectArgs args(info);
  int fd = args.Int(0);
  Bytes b = args.Bytes(1);
  int64_t offset = args.Int64(2);
  int64_t length = args.Int64(3);
  double spin_us = args.Number(4);
  if (!args.ok()) return;
  Bytes range;
  if (!InRange(b, offset, length, &range)) return args.Return(-ERANGE);
  size_t count = range.length > INT_MAX ? INT_MAX : range.length;
  args.Return(Spin(spin_us, EAGAIN, [&] { return once(fd, range.data, count); }));
}

// readFd(fd, buffer, offset, length, spinUs) -> bytes read (0 = end), or -errno
void ReadFd(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Transfer(info, ReadOnce);
}

// writeFd(fd, buffer, offset, length, spinUs) -> bytes written, or -errno
void WriteFd(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Transfer(info, WriteOnce);
}

// How a gathered write treats its list (the `mode` argument of writevFd).
constexpr int kFramed = 1;   // each element goes as a frame: a 4-byte big-endian length, then the bytes
constexpr int kAtomic = 2;   // frames of at most PIPE_BUF bytes go whole: groups of whole frames, each <= PIPE_BUF
constexpr int kSocket = 4;   // sendmsg/recvmsg with MSG_DONTWAIT (a socket whose own mode stays blocking)

// One writev or non-blocking sendmsg of `count` pieces: bytes written, or -errno.
ssize_t WritevOnce(int fd, const iovec* iov, int count, int mode) {
  ssize_t n;
  do {
    if (mode & kSocket) {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(iov);
      msg.msg_iovlen = count;
      n = SysSendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      n = SysWritev(fd, iov, count);
    }
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

// writevFd(fd, list: Uint8Array[] | packed, at: Float64Array(2), mode, spinUs[, lengths, count[, timeoutMs]])
//   -> bytes written (> 0), -EAGAIN while full (nothing written), or -errno (nothing written).
// With lengths (a Uint32Array) and count, `list` is a packed batch's buffer (see Elements).
// Writes list[at[0]..] from byte at[1] of that element (of its frame, when
// framed) on, in writev calls of up to IOV_MAX pieces, until all is written
// or the descriptor is full, and moves `at` past what went. With kAtomic a
// call holds whole frames of at most PIPE_BUF bytes in all (so the kernel
// writes each whole or not at all), and a larger frame goes alone. A writev
// that finds no room spins: the call's first as a single write would, the
// later ones while the call may still spin (BatchSpin: a whole budget
// since the last bytes went, within the call's slice and its timeout,
// `timeoutMs`, when given); an error after some bytes went ends the call with their count (the next
// call reports it).
Napi::Value WritevFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Elements list(info, 1, 5);
  if (!list.Valid()) return Errno(info.Env(), EINVAL);
  auto at = info[2].As<Napi::Float64Array>();
  // at[2], when there: the length the header of a frame cut short announced (its rest must match it).
  const bool tracks = at.ElementLength() >= 3;
  int mode = ArgInt(info, 3);
  double spin_us = ArgDouble(info, 4);
  const bool framed = (mode & kFramed) != 0;
  const bool atomic = (mode & kAtomic) != 0;
  const size_t header = framed ? 4 : 0;
  const uint32_t total = list.Length();
  uint32_t index = static_cast<uint32_t>(at[0]);
  size_t offset = static_cast<size_t>(at[1]);
  double written = 0;
  constexpr int kMaxPieces = IOV_MAX < 1024 ? IOV_MAX : 1024;
  iovec iov[kMaxPieces];
  size_t lengths[kMaxPieces];  // each frame's remaining bytes in this group
  // Headers, and elements of at most kCoalesce bytes, are copied back to back
  // into one scratch area, a single piece while they follow each other: the
  // kernel pays for every piece of a writev or sendmsg (a 256-byte message
  // per piece moves about half the bytes a second that one piece of many
  // messages moves), far more than the copy costs. Larger elements go from
  // where they lie.
  constexpr size_t kCoalesce = 1024;
  constexpr size_t kScratch = 64 * 1024;
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < kScratch) scratch.resize(kScratch);
  uint8_t* area = scratch.data();
  bool bad = false;
  // info[7], when there: the call's timeout, which bounds its spinning for room (see BatchSpin).
  BatchSpin later(info.Length() > 7 && info[7].IsNumber() ? ArgDouble(info, 7) : 0, spin_us);
  while (index < total && !bad) {
    int pieces = 0;
    int frames = 0;
    size_t group = 0;
    size_t skip = offset;
    size_t used = 0;  // bytes of the scratch area this group holds
    // The n bytes just written at area + used join the group: they extend its last piece when that ends there.
    auto copied = [&](size_t n) {
      if (pieces > 0 && static_cast<uint8_t*>(iov[pieces - 1].iov_base) + iov[pieces - 1].iov_len == area + used) {
        iov[pieces - 1].iov_len += n;
      } else {
        iov[pieces++] = iovec{area + used, n};
      }
      used += n;
    };
    // Appends n bytes at p: copied into the scratch area, or as a piece of their own.
    auto put = [&](const uint8_t* p, size_t n, bool copy) {
      if (!copy) {
        iov[pieces++] = iovec{const_cast<uint8_t*>(p), n};
        return;
      }
      memcpy(area + used, p, n);
      copied(n);
    };
    // Each element takes up to two pieces (its header, its bytes) and one entry of lengths.
    for (uint32_t i = index; i < total && pieces + 2 <= kMaxPieces && frames < kMaxPieces; i++) {
      Bytes b;
      // A frame resumed must still be the length its header, already written, announced.
      if (!list.Get(i, &b) || skip > header + b.length || (framed && tracks && skip > 0 && i == index && static_cast<double>(b.length) != at[2])) {
        bad = true;  // what precedes it goes; the next call reports it
        break;
      }
      size_t whole = header + b.length;
      bool large = whole > PIPE_BUF;
      if (atomic && frames > 0 && (large || group + whole > PIPE_BUF)) break;
      size_t from = skip > header ? skip - header : 0;
      bool copy = b.length - from <= kCoalesce;
      // The scratch area is full: the group ends here (the next one starts with this element).
      if (frames > 0 && used + header + (copy ? b.length - from : 0) > kScratch) break;
      if (framed && skip < header) {
        uint32_t n = static_cast<uint32_t>(b.length);
        const uint8_t h[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>((n >> 16) & 0xff),
                              static_cast<uint8_t>((n >> 8) & 0xff), static_cast<uint8_t>(n & 0xff)};
        if (skip == 0) {
          // A whole header: one 4-byte copy of a constant size, which compiles to a single store.
          memcpy(area + used, h, sizeof h);
          copied(sizeof h);
        } else {
          put(h + skip, header - skip, true);
        }
      }
      if (b.length > from) put(b.data + from, b.length - from, copy);
      lengths[frames++] = whole - skip;
      group += whole - skip;
      skip = 0;
      if (atomic && large) break;
    }
    ssize_t n = 0;
    if (pieces > 0) {
      // Spins while the budget lasts: the first writev, and later ones while the reader is making room.
      auto once = [&] {
        n = WritevOnce(fd, iov, pieces, mode);
        return n < 0 ? static_cast<int>(n) : 0;
      };
      int r = written == 0 ? Spin(spin_us, EAGAIN, once) : Spin([&] { return later.Left(); }, EAGAIN, once);
      if (r < 0) n = r;
    }
    if (n < 0) {
      if (written == 0) return Errno(info.Env(), static_cast<int>(-n));
      break;
    }
    written += static_cast<double>(n);
    if (n > 0) later.Progress();
    // Move past what went: whole frames (empty ones too), then into the one it stopped in.
    size_t left = static_cast<size_t>(n);
    for (int k = 0; k < frames; k++) {
      if (left < lengths[k]) {
        offset += left;
        break;
      }
      left -= lengths[k];
      index++;
      offset = 0;
    }
    // Full now: done, unless the spin budget lasts (then the next writev spins for room).
    if (static_cast<size_t>(n) < group && later.Left() == 0) break;
  }
  if (bad && written == 0) return Errno(info.Env(), EINVAL);
  at[0] = index;
  at[1] = static_cast<double>(offset);
  if (tracks && offset > 0) {
    Bytes b;
    if (list.Get(index, &b)) at[2] = static_cast<double>(b.length);
  }
  return Napi::Number::New(info.Env(), written);
}

// unframe(buffer, from, to, lengths: Uint32Array, first, maxSize, out: Float64Array(3)) -> messages taken
// Walks the frames (a 4-byte big-endian length, then the bytes) lying in
// buffer[from..to), as a stream's reader read them: each whole one's bytes
// move down to where the previous one's ended (the first's to `from`), and
// its length goes to lengths[first + k], until a frame is not whole, the
// lengths are full, or a frame announces more than maxSize. out[0]: where
// the moved bytes end; out[1]: where the first frame not taken starts;
// out[2]: the length that frame announces (-1: fewer than 4 bytes of it
// are there). The bytes only move down, so nothing is overwritten before
// it is moved.
Napi::Value Unframe(const Napi::CallbackInfo& info) {
  Bytes b = ArgBytes(info, 0);
  size_t from = static_cast<size_t>(ArgDouble(info, 1));
  size_t to = static_cast<size_t>(ArgDouble(info, 2));
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) return Errno(info.Env(), EINVAL);
  auto lengths = info[3].As<Napi::Uint32Array>();
  size_t first = static_cast<size_t>(ArgDouble(info, 4));
  double max_size = ArgDouble(info, 5);
  auto out = info[6].As<Napi::Float64Array>();
  if (to > b.length || from > to || first > lengths.ElementLength() || out.ElementLength() < 3) return Errno(info.Env(), EINVAL);
  uint32_t* lens = lengths.Data();
  size_t room = lengths.ElementLength() - first;
  size_t w = from;
  size_t r = from;
  size_t taken = 0;
  double next = -1;
  while (to - r >= 4) {
    const uint8_t* h = b.data + r;
    uint32_t n = (static_cast<uint32_t>(h[0]) << 24) | (static_cast<uint32_t>(h[1]) << 16) | (static_cast<uint32_t>(h[2]) << 8) | h[3];
    next = n;
    if (taken == room || n > max_size || to - r - 4 < n) break;
    if (n > 0) memmove(b.data + w, h + 4, n);
    lens[first + taken++] = n;
    w += n;
    r += 4 + n;
    next = -1;
  }
  out[0] = static_cast<double>(w);
  out[1] = static_cast<double>(r);
  out[2] = next;
  return Napi::Number::New(info.Env(), static_cast<double>(taken));
}

// readvFd(fd, list: Uint8Array[], mode, spinUs) -> bytes read (0 = end), or -errno.
// One readv (or non-blocking recvmsg with kSocket) into the buffers in order.
Napi::Value ReadvFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  auto list = info[1].As<Napi::Array>();
  int mode = ArgInt(info, 2);
  constexpr uint32_t kMaxPieces = IOV_MAX < 1024 ? IOV_MAX : 1024;
  uint32_t count = list.Length();
  if (count > kMaxPieces) return Errno(info.Env(), EINVAL);
  iovec iov[kMaxPieces];
  for (uint32_t i = 0; i < count; i++) {
    Bytes b;
    if (!ElementBytes(list, i, &b)) return Errno(info.Env(), EINVAL);
    iov[i] = iovec{b.data, b.length};
  }
  int r = Spin(ArgDouble(info, 3), EAGAIN, [&] {
    ssize_t n;
    do {
      if (mode & kSocket) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        n = SysRecvmsg(fd, &msg, MSG_DONTWAIT);
      } else {
        n = SysReadv(fd, iov, static_cast<int>(count));
      }
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
  });
  return Napi::Number::New(info.Env(), r);
}

// pollFd(fd, events, timeoutMs) -> revents, or 0 when nothing happened
// within timeoutMs (< 0: no limit) or a signal interrupted the wait.
Napi::Value PollFd(const Napi::CallbackInfo& info) {
  double timeout = ArgDouble(info, 2);
  int wait_ms = timeout < 0 ? -1 : timeout > INT_MAX ? INT_MAX : static_cast<int>(timeout + 0.999);
  pollfd p{ArgInt(info, 0), static_cast<short>(ArgInt(info, 1)), 0};
  int r = poll(&p, 1, wait_ms);
  if (r > 0) return Napi::Number::New(info.Env(), p.revents);
  if (r == 0 || errno == EINTR) return Napi::Number::New(info.Env(), 0);
  return Errno(info.Env(), errno);
}

// openPath(path, flags, timeoutMs) -> fd (always O_CLOEXEC). A blocking
// open (a FIFO waiting for its peer) gives up after timeoutMs (< 0: no
// limit) with -ETIMEDOUT.
Napi::Value OpenPath(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = ArgInt(info, 1) | O_CLOEXEC;
  int r = BoundedCall([&] {
    int fd = open(path.c_str(), flags);
    return fd < 0 ? -errno : fd;
  }, ArgDouble(info, 2));
  return Napi::Number::New(info.Env(), r);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"holdFd", HoldFd}, {"releaseFd", ReleaseFd},
      {"close", Close}, {"strerror", StrError}, {"getFlags", GetFlags}, {"getFdFlags", GetFdFlags},
      {"setNonBlocking", SetNonBlocking}, {"pollFd", PollFd},
      {"writevFd", WritevFd}, {"readvFd", ReadvFd}, {"unframe", Unframe},
      {"openPath", OpenPath}
  });
  ExportDirect(exports, {{"readFd", ReadFd}, {"writeFd", WriteFd}});

  // Every flag constant TypeScript uses, in one place.
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_RDONLY", O_RDONLY);
  c.Set("O_WRONLY", O_WRONLY);
  c.Set("O_RDWR", O_RDWR);
  c.Set("O_ACCMODE", O_ACCMODE);
  c.Set("O_CREAT", O_CREAT);
  c.Set("O_EXCL", O_EXCL);
  c.Set("O_NONBLOCK", O_NONBLOCK);
  c.Set("O_CLOEXEC", O_CLOEXEC);
  c.Set("O_NOFOLLOW", O_NOFOLLOW);
  c.Set("O_PATH", O_PATH);
  c.Set("FD_CLOEXEC", FD_CLOEXEC);
  c.Set("POLLIN", POLLIN);
  c.Set("POLLOUT", POLLOUT);
  c.Set("POLLHUP", POLLHUP);
  c.Set("POLLERR", POLLERR);
  c.Set("EPOLLIN", static_cast<double>(EPOLLIN));
  c.Set("EPOLLOUT", static_cast<double>(EPOLLOUT));
  c.Set("EPOLLHUP", static_cast<double>(EPOLLHUP));
  c.Set("EPOLLERR", static_cast<double>(EPOLLERR));
  c.Set("EPOLLET", static_cast<double>(EPOLLET));
  c.Set("EPOLLRDHUP", static_cast<double>(EPOLLRDHUP));
  c.Set("POLLNVAL", POLLNVAL);
  c.Set("EPOLL_CTL_ADD", EPOLL_CTL_ADD);
  c.Set("EPOLL_CTL_MOD", EPOLL_CTL_MOD);
  c.Set("EPOLL_CTL_DEL", EPOLL_CTL_DEL);
  c.Set("IPC_CREAT", IPC_CREAT);
  c.Set("IPC_EXCL", IPC_EXCL);
  c.Set("IPC_NOWAIT", IPC_NOWAIT);
  c.Set("SEM_UNDO", SEM_UNDO);
  c.Set("IN_OPEN", static_cast<double>(IN_OPEN));
  c.Set("PIPE_BUF", PIPE_BUF);
  c.Set("IOV_MAX", IOV_MAX);
  c.Set("GATHER_FRAMED", kFramed);
  c.Set("GATHER_ATOMIC", kAtomic);
  c.Set("GATHER_SOCKET", kSocket);
  exports.Set("constants", c);
  // errno values Node's os.constants.errno does not list.
  Napi::Object e = Napi::Object::New(env);
  e.Set("EOWNERDEAD", EOWNERDEAD);
  e.Set("ENOTRECOVERABLE", ENOTRECOVERABLE);
  e.Set("ETOOMANYREFS", ETOOMANYREFS);
  exports.Set("extraErrno", e);
}

}  // namespace ipckit
