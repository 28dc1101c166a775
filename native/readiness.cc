// Readiness of a kernel file descriptor, delivered by libuv.
//
// A FdWatcher wraps one uv_poll_t. It lets an async operation wait for a
// descriptor (a POSIX message queue, a pipe, a FIFO, a socket) to become
// readable or writable on the event loop itself: no thread is parked, and
// nothing is polled. A stopped watcher does not keep the process alive.
#include <uv.h>

#include "common.h"

namespace ipckit {

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {
                           InstanceMethod<&FdWatcher::Start>("start"),
                           InstanceMethod<&FdWatcher::Stop>("stop"),
                           InstanceMethod<&FdWatcher::Close>("close"),
                           InstanceMethod<&FdWatcher::Ref>("ref"),
                           InstanceMethod<&FdWatcher::Unref>("unref"),
                       });
  }

  // new FdWatcher(fd, callback(status, events))
  explicit FdWatcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdWatcher>(info),
        context_(info.Env(), "ipckit.readiness") {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    init_status_ = uv_poll_init(loop, handle_, fd);
    if (init_status_ != 0) {
      delete handle_;
      handle_ = nullptr;
      return;
    }
    handle_->data = this;
  }

  ~FdWatcher() override { CloseHandle(); }

 private:
  // start(events) -> 0 or a negative libuv/errno code. events is a mask of
  // UV_READABLE (1) and UV_WRITABLE (2); starting again replaces the mask.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (handle_ == nullptr) {
      return Errno(info.Env(), init_status_ != 0 ? -init_status_ : EBADF);
    }
    int r = uv_poll_start(handle_, ArgInt(info, 0), OnReady);
    return Napi::Number::New(info.Env(), r);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_poll_stop(handle_);
    return info.Env().Undefined();
  }

  // ref()/unref(): whether an active watch keeps the event loop (and the
  // process) alive. Watches are referenced by default.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    callback_.Reset();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnReady(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<FdWatcher*>(handle->data);
    if (self == nullptr || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->callback_.MakeCallback(
        env.Global(),
        {Napi::Number::New(env, status), Napi::Number::New(env, events)},
        self->context_);
    ReportPendingException(env);
  }

  uv_poll_t* handle_ = nullptr;
  int init_status_ = 0;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

void InitReadiness(Napi::Env env, Napi::Object exports) {
  exports.Set("FdWatcher", FdWatcher::Define(env));
  Napi::Object c = Napi::Object::New(env);
  c.Set("READABLE", static_cast<int>(UV_READABLE));
  c.Set("WRITABLE", static_cast<int>(UV_WRITABLE));
  c.Set("DISCONNECT", static_cast<int>(UV_DISCONNECT));
  exports.Set("readinessConstants", c);
}

}  // namespace ipckit
