// Descriptor I/O shared by every descriptor-backed mechanism: close, flags,
// owned descriptors, reads and writes, one bounded poll, opens bounded by a
// timeout, and the one export of the flag constants TypeScript uses.
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
#include <unistd.h>

#include <climits>
#include <string>
#include <unordered_map>

#include "common.h"
#include "spin.h"
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
  do n = read(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

int WriteOnce(int fd, const uint8_t* data, size_t length) {
  ssize_t n;
  do n = write(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

// The shared body of readFd/writeFd: args (fd, buffer, offset, length,
// spinUs). One attempt, repeated on EAGAIN for up to spinUs.
template <typename F>
Napi::Value Transfer(const Napi::CallbackInfo& info, const F& once) {
  int fd = ArgInt(info, 0);
  Bytes range;
  if (!ArgRange(info, 1, &range)) return Errno(info.Env(), ERANGE);
  size_t length = range.length > INT_MAX ? INT_MAX : range.length;
  int r = Spin(ArgDouble(info, 4), EAGAIN, [&] { return once(fd, range.data, length); });
  return Napi::Number::New(info.Env(), r);
}

// readFd(fd, buffer, offset, length, spinUs) -> bytes read (0 = end), or -errno
Napi::Value ReadFd(const Napi::CallbackInfo& info) {
  return Transfer(info, ReadOnce);
}

// writeFd(fd, buffer, offset, length, spinUs) -> bytes written, or -errno
Napi::Value WriteFd(const Napi::CallbackInfo& info) {
  return Transfer(info, WriteOnce);
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
      {"setNonBlocking", SetNonBlocking}, {"readFd", ReadFd}, {"writeFd", WriteFd}, {"pollFd", PollFd},
      {"openPath", OpenPath}
  });

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
  exports.Set("constants", c);
  // errno values Node's os.constants.errno does not list.
  Napi::Object e = Napi::Object::New(env);
  e.Set("EOWNERDEAD", EOWNERDEAD);
  e.Set("ENOTRECOVERABLE", ENOTRECOVERABLE);
  e.Set("ETOOMANYREFS", ETOOMANYREFS);
  exports.Set("extraErrno", e);
}

}  // namespace ipckit
