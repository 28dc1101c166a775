// Anonymous pipes: pipe2 and the pipe's capacity. Reads and writes are the
// generic descriptor I/O of fd.cc.
#include <fcntl.h>
#include <unistd.h>

#include "common.h"

namespace ipckit {

namespace {

// pipe2(flags) -> [readFd, writeFd] or -errno
Napi::Value Pipe2(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, ArgInt(info, 0)) < 0) return Errno(info.Env(), errno);
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, fds[0]);
  result.Set(1u, fds[1]);
  return result;
}

// setPipeSize(fd, bytes) -> the capacity the kernel granted
Napi::Value SetPipeSize(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_SETPIPE_SZ, ArgInt(info, 1)));
}

Napi::Value GetPipeSize(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETPIPE_SZ));
}

}  // namespace

void InitPipe(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {{"pipe2", Pipe2}, {"setPipeSize", SetPipeSize}, {"getPipeSize", GetPipeSize}});
}

}  // namespace ipckit
