// Named pipes: mkfifo, the exact mode of a new FIFO, and the inotify watch
// that lets a FIFO open wait for its peer on the event loop.
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace ipckit {

namespace {

// mkfifo(path, mode) -> 0
Napi::Value MkFifo(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return SysResult(info.Env(), mkfifo(path.c_str(), static_cast<mode_t>(ArgInt(info, 1))));
}

// fchmod(fd, mode) -> 0
Napi::Value Fchmod(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fchmod(ArgInt(info, 0), static_cast<mode_t>(ArgInt(info, 1))));
}

// inotifyInit() -> a non-blocking inotify descriptor
Napi::Value InotifyInit(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
}

// inotifyAddWatch(fd, path, mask) -> the watch descriptor of path (the same
// one for every watch of one file; never following a symbolic link)
Napi::Value InotifyAddWatch(const Napi::CallbackInfo& info) {
  std::string path = info[1].As<Napi::String>().Utf8Value();
  uint32_t mask = static_cast<uint32_t>(ArgInt(info, 2)) | IN_DONT_FOLLOW;
  return SysResult(info.Env(), inotify_add_watch(ArgInt(info, 0), path.c_str(), mask));
}

// inotifyRmWatch(fd, wd) -> 0
Napi::Value InotifyRmWatch(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), inotify_rm_watch(ArgInt(info, 0), ArgInt(info, 1)));
}

// drainEvents(fd) -> bytes discarded from the non-blocking inotify descriptor
Napi::Value DrainEvents(const Napi::CallbackInfo& info) {
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

}  // namespace

void InitFifo(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"mkfifo", MkFifo}, {"fchmod", Fchmod}, {"inotifyInit", InotifyInit},
      {"inotifyAddWatch", InotifyAddWatch}, {"inotifyRmWatch", InotifyRmWatch}, {"drainEvents", DrainEvents}
  });
}

}  // namespace ipckit
