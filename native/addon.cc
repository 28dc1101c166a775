// Module entry point: every mechanism registers its functions here.
#include "common.h"

namespace ipckit {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitFd(env, exports);
  InitReadiness(env, exports);
  InitJobs(env, exports);
  InitMessageQueue(env, exports);
  InitSharedMemory(env, exports);
  InitLock(env, exports);
  InitPipe(env, exports);
  InitFifo(env, exports);
  InitSignal(env, exports);
  return exports;
}

}  // namespace ipckit

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return ipckit::Init(env, exports);
}

NODE_API_MODULE(ipckit, InitAddon)
