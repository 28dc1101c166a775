// Pipes (pipe2) and named pipes (mkfifo): descriptors, reads and writes,
// capacity, and the pieces that let a FIFO open wait without a thread:
// reopening a descriptor through /proc, and inotify watches.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "common.h"
#include "waiter.h"

namespace ipckit {

// pipe2(flags) -> [readFd, writeFd] or -errno
static Napi::Value Pipe2(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, ArgInt(info, 0)) < 0) return Errno(info.Env(), errno);
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, fds[0]);
  result.Set(1u, fds[1]);
  return result;
}

// setPipeSize(fd, bytes) -> the capacity the kernel granted
static Napi::Value SetPipeSize(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_SETPIPE_SZ, ArgInt(info, 1)));
}

static Napi::Value GetPipeSize(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETPIPE_SZ));
}

// setNonBlocking(fd, on) -> 0
static Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return Errno(info.Env(), errno);
  flags = info[1].As<Napi::Boolean>().Value() ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  return SysResult(info.Env(), fcntl(fd, F_SETFL, flags));
}

// Waits for `events` on fd for up to timeout_ms (< 0: forever).
// Returns revents, 0 on timeout, or -errno. Signals do not shorten it.
static int PollFor(int fd, short events, double timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  for (;;) {
    int wait_ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - NowNs();
      if (left < 0) left = 0;
      wait_ms = static_cast<int>((left + 999999) / 1000000);
    }
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, wait_ms);
    if (r > 0) return p.revents;
    if (r == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

// One read(2) or write(2), retried on EINTR; -errno on failure.
static int ReadOnce(int fd, uint8_t* data, size_t length) {
  ssize_t n;
  do n = read(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

static int WriteOnce(int fd, const uint8_t* data, size_t length) {
  ssize_t n;
  do n = write(fd, data, length);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

// The shared body of readFd/writeFd: args (fd, buffer, offset, length,
// timeoutMs, spinUs). timeoutMs < 0 calls once as the descriptor's mode
// says (a blocking descriptor waits; a non-blocking one may spin up to
// spinUs on EAGAIN first); >= 0 polls for `events` first and fails with
// -ETIMEDOUT.
template <typename F>
static Napi::Value Transfer(const Napi::CallbackInfo& info, short events, const F& once) {
  int fd = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  size_t offset = static_cast<size_t>(ArgInt64(info, 2));
  size_t length = static_cast<size_t>(ArgInt64(info, 3));
  double timeout = ArgDouble(info, 4);
  double spin = ArgDouble(info, 5);
  if (offset + length > b.length) return Errno(info.Env(), ERANGE);
  if (timeout >= 0) {
    int r = PollFor(fd, events, timeout);
    if (r == 0) return Errno(info.Env(), ETIMEDOUT);
    if (r < 0) return Napi::Number::New(info.Env(), r);
  }
  int r = Spin(spin, EAGAIN, [&] { return once(fd, b.data + offset, length); });
  return Napi::Number::New(info.Env(), r);
}

// readFd(fd, buffer, offset, length, timeoutMs, spinUs) -> bytes read (0 = end), or -errno
static Napi::Value ReadFd(const Napi::CallbackInfo& info) {
  return Transfer(info, POLLIN, ReadOnce);
}

// writeFd(fd, buffer, offset, length, timeoutMs, spinUs) -> bytes written, or -errno
static Napi::Value WriteFd(const Napi::CallbackInfo& info) {
  return Transfer(info, POLLOUT, WriteOnce);
}

// pollFd(fd, events, timeoutMs) -> revents, 0 on timeout, or -errno
static Napi::Value PollFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PollFor(ArgInt(info, 0), static_cast<short>(ArgInt(info, 1)), ArgDouble(info, 2)));
}

// openPath(path, flags, timeoutMs) -> fd. A blocking open (a FIFO waiting
// for its peer) is bounded by timeoutMs (< 0: forever) with the wake signal.
static Napi::Value OpenPath(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = ArgInt(info, 1) | O_CLOEXEC;
  int r = CallWithTimeout([&] {
    int fd = open(path.c_str(), flags);
    return fd < 0 ? -errno : fd;
  }, ArgDouble(info, 2));
  return Napi::Number::New(info.Env(), r);
}

// mkfifo(path, mode) -> 0
static Napi::Value MkFifo(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return SysResult(info.Env(), mkfifo(path.c_str(), static_cast<mode_t>(ArgInt(info, 1))));
}

// fchmod(fd, mode) -> 0
static Napi::Value Fchmod(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fchmod(ArgInt(info, 0), static_cast<mode_t>(ArgInt(info, 1))));
}

// inotifyWatch(path, mask) -> a non-blocking inotify descriptor watching path
static Napi::Value InotifyWatch(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Errno(info.Env(), errno);
  if (inotify_add_watch(fd, path.c_str(), static_cast<uint32_t>(ArgInt(info, 1)) | IN_DONT_FOLLOW) < 0) {
    int err = errno;
    close(fd);
    return Errno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// drain(fd) -> bytes discarded from a non-blocking descriptor (inotify events)
static Napi::Value Drain(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  char buf[4096];
  long total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      total += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(total));
}

void InitPipe(Napi::Env env, Napi::Object exports) {
  exports.Set("pipe2", Napi::Function::New(env, Pipe2, "pipe2"));
  exports.Set("setPipeSize", Napi::Function::New(env, SetPipeSize, "setPipeSize"));
  exports.Set("getPipeSize", Napi::Function::New(env, GetPipeSize, "getPipeSize"));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking, "setNonBlocking"));
  exports.Set("readFd", Napi::Function::New(env, ReadFd, "readFd"));
  exports.Set("writeFd", Napi::Function::New(env, WriteFd, "writeFd"));
  exports.Set("pollFd", Napi::Function::New(env, PollFd, "pollFd"));
  exports.Set("openPath", Napi::Function::New(env, OpenPath, "openPath"));
  exports.Set("mkfifo", Napi::Function::New(env, MkFifo, "mkfifo"));
  exports.Set("fchmod", Napi::Function::New(env, Fchmod, "fchmod"));
  exports.Set("inotifyWatch", Napi::Function::New(env, InotifyWatch, "inotifyWatch"));
  exports.Set("drain", Napi::Function::New(env, Drain, "drain"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_RDONLY", O_RDONLY);
  c.Set("O_WRONLY", O_WRONLY);
  c.Set("O_RDWR", O_RDWR);
  c.Set("O_NONBLOCK", O_NONBLOCK);
  c.Set("O_CLOEXEC", O_CLOEXEC);
  c.Set("O_NOFOLLOW", O_NOFOLLOW);
  c.Set("POLLIN", POLLIN);
  c.Set("POLLOUT", POLLOUT);
  c.Set("POLLHUP", POLLHUP);
  c.Set("POLLERR", POLLERR);
  c.Set("IN_OPEN", static_cast<double>(IN_OPEN));
  c.Set("PIPE_BUF", PIPE_BUF);
  exports.Set("pipeConstants", c);
}

}  // namespace ipckit
