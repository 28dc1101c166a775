// Module entry point: every mechanism registers its functions here.
#include <dlfcn.h>
#include <node_version.h>

#include <cstdio>

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

// The addon is compiled against one Node's V8: the direct calls
// (v8-bridge.h) use V8's inline accessors of a call's arguments and result,
// whose layout changes between Node's major versions, and Node-API's
// module registration checks no ABI. So a build for another major version
// refuses to load (the loader then tries the prebuilt addon of this ABI).
static bool SameNodeLine(Napi::Env env) {
  const napi_node_version* running = nullptr;
  if (napi_get_node_version(env, &running) != napi_ok || running->major == NODE_MAJOR_VERSION) return true;
  char message[200];
  std::snprintf(message, sizeof message,
                "built for Node.js %d (ABI %d), not for this Node.js %u: rebuild it (npm rebuild ipckit)",
                NODE_MAJOR_VERSION, NODE_MODULE_VERSION, running->major);
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return false;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!SameNodeLine(env)) return exports;
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
