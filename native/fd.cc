// File-descriptor helpers shared by every fd-backed mechanism.
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

namespace ipckit {

// close(fd). EINTR is not retried: on Linux the descriptor is released
// even when close reports EINTR, and retrying could close a reused number.
static Napi::Value Close(const Napi::CallbackInfo& info) {
  int r = close(ArgInt(info, 0));
  if (r < 0 && errno == EINTR) return Napi::Number::New(info.Env(), 0);
  return SysResult(info.Env(), r);
}

// The C library's description of an errno value.
static Napi::Value StrError(const Napi::CallbackInfo& info) {
  char buf[256];
  const char* text = strerror_r(ArgInt(info, 0), buf, sizeof buf);
  return Napi::String::New(info.Env(), text);
}

// fcntl(F_GETFL) / fcntl(F_GETFD): lets TypeScript check O_NONBLOCK and
// FD_CLOEXEC without guessing.
static Napi::Value GetFlags(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETFL));
}

static Napi::Value GetFdFlags(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), fcntl(ArgInt(info, 0), F_GETFD));
}

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
  exports.Set("getFlags", Napi::Function::New(env, GetFlags, "getFlags"));
  exports.Set("getFdFlags", Napi::Function::New(env, GetFdFlags, "getFdFlags"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_NONBLOCK", O_NONBLOCK);
  c.Set("O_CLOEXEC", O_CLOEXEC);
  c.Set("FD_CLOEXEC", FD_CLOEXEC);
  exports.Set("fdConstants", c);
  // errno values Node's os.constants.errno does not list.
  Napi::Object e = Napi::Object::New(env);
  e.Set("EOWNERDEAD", EOWNERDEAD);
  e.Set("ENOTRECOVERABLE", ENOTRECOVERABLE);
  exports.Set("extraErrno", e);
}

}  // namespace ipckit
