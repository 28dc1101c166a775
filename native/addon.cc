// Module entry point: every mechanism registers its functions here.
#include <dlfcn.h>

#include "common.h"

namespace ipckit {

// The addon must outlive every environment that loaded it. Node unloads an
// addon with the last environment (a worker) that loaded it, but libuv
// close callbacks, the wake signal's handler and idle waiter threads may
// still run code from it afterwards. Loading it once more with
// RTLD_NODELETE pins it for the life of the process.
static void PinInMemory() {
  static bool pinned = false;
  if (pinned) return;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&PinInMemory), &info) != 0 && info.dli_fname != nullptr) {
    pinned = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinInMemory();
  InitFd(env, exports);
  InitReadiness(env, exports);
  InitJobs(env, exports);
  InitMessageQueue(env, exports);
  InitSharedMemory(env, exports);
  InitLock(env, exports);
  InitPipe(env, exports);
  InitFifo(env, exports);
  InitSignal(env, exports);
  InitSocket(env, exports);
  InitDoorbell(env, exports);
  InitRing(env, exports);
  InitSemaphore(env, exports);
  return exports;
}

}  // namespace ipckit

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return ipckit::Init(env, exports);
}

NODE_API_MODULE(ipckit, InitAddon)
