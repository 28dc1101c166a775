// Readiness of kernel descriptors: epoll sets, and the one libuv watch per
// environment that brings an epoll set's readiness to the event loop.
//
// ipckit never hands a user's descriptor to libuv: uv_poll_init sets
// O_NONBLOCK on the descriptor it watches, which would change the mode of a
// descriptor that a user, a *Sync call or a child process relies on. Every
// descriptor ipckit waits for goes into an epoll set instead (EPOLL_CTL_ADD
// leaves the descriptor's flags alone), and libuv watches only the epoll
// set's own descriptor. A stopped watcher does not keep the process alive.
#include <sys/epoll.h>
#include <unistd.h>
#include <uv.h>

#include <climits>

#include <poll.h>

#include <vector>

#include "common.h"
#include "v8-bridge.h"

namespace ipckit {

namespace {

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

  // new FdWatcher(fd, callback(status, events)): fd must be ipckit's own
  // (an epoll set), never a user's descriptor (see the top of this file).
  explicit FdWatcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdWatcher>(info), context_(info.Env(), "ipckit.readiness") {
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
  // start() -> 0 or a negative libuv/errno code: reports readability (an
  // epoll set is readable while one of its descriptors is ready).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (handle_ == nullptr) return Errno(info.Env(), init_status_ != 0 ? -init_status_ : EBADF);
    return Napi::Number::New(info.Env(), uv_poll_start(handle_, UV_READABLE, OnReady));
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
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnReady(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<FdWatcher*>(handle->data);
    if (self == nullptr || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    napi_value args[2] = {Napi::Number::New(env, status), Napi::Number::New(env, events)};
    CallFromLoop(env, self->callback_, self->context_, 2, args);
  }

  uv_poll_t* handle_ = nullptr;
  int init_status_ = 0;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

// epollCreate() -> a new epoll descriptor (close-on-exec)
Napi::Value EpollCreate(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), epoll_create1(EPOLL_CLOEXEC));
}

// epollCtl(epfd, op, fd, events, token) -> 0. op is EPOLL_CTL_ADD / MOD /
// DEL; token (a uint32) comes back with each report of fd.
Napi::Value EpollCtl(const Napi::CallbackInfo& info) {
  epoll_event ev{};
  ev.events = info[3].As<Napi::Number>().Uint32Value();
  ev.data.u64 = info[4].As<Napi::Number>().Uint32Value();
  return SysResult(info.Env(), epoll_ctl(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &ev));
}

// epollWait(epfd, out: Uint32Array, timeoutMs) -> reports written as
// (token, events) pairs; 0 when none came within timeoutMs (< 0: no limit)
// or a signal interrupted the wait.
Napi::Value EpollWait(const Napi::CallbackInfo& info) {
  auto out = info[1].As<Napi::Uint32Array>();
  double timeout = ArgDouble(info, 2);
  int wait_ms = timeout < 0 ? -1 : timeout > INT_MAX ? INT_MAX : static_cast<int>(timeout + 0.999);
  epoll_event events[64];
  int capacity = static_cast<int>(out.ElementLength() / 2);
  if (capacity > 64) capacity = 64;
  int n = epoll_wait(ArgInt(info, 0), events, capacity, wait_ms);
  if (n < 0) return errno == EINTR ? Napi::Number::New(info.Env(), 0) : Errno(info.Env(), errno);
  for (int i = 0; i < n; i++) {
    out[2 * i] = static_cast<uint32_t>(events[i].data.u64);
    out[2 * i + 1] = events[i].events;
  }
  return Napi::Number::New(info.Env(), n);
}

// pollMany(fds: Int32Array, events: Int32Array, revents: Int32Array,
// timeoutMs) -> how many descriptors are ready, with their revents written;
// 0 when none became ready within timeoutMs (< 0: no limit) or a signal
// interrupted the wait. poll(2), not select(2): no limit of 1024.
Napi::Value PollMany(const Napi::CallbackInfo& info) {
  auto fds = info[0].As<Napi::Int32Array>();
  auto events = info[1].As<Napi::Int32Array>();
  auto revents = info[2].As<Napi::Int32Array>();
  size_t n = fds.ElementLength();
  if (events.ElementLength() < n || revents.ElementLength() < n) return Errno(info.Env(), ERANGE);
  double timeout = ArgDouble(info, 3);
  int wait_ms = timeout < 0 ? -1 : timeout > INT_MAX ? INT_MAX : static_cast<int>(timeout + 0.999);
  std::vector<pollfd> set(n);
  for (size_t i = 0; i < n; i++) set[i] = pollfd{fds[i], static_cast<short>(events[i]), 0};
  int r = poll(set.data(), n, wait_ms);
  if (r < 0) return errno == EINTR ? Napi::Number::New(info.Env(), 0) : Errno(info.Env(), errno);
  for (size_t i = 0; i < n; i++) revents[i] = set[i].revents;
  return Napi::Number::New(info.Env(), r);
}

}  // namespace

void InitReadiness(Napi::Env env, Napi::Object exports) {
  exports.Set("FdWatcher", FdWatcher::Define(env));
  ExportAll(env, exports, {{"epollCreate", EpollCreate}, {"epollCtl", EpollCtl}, {"epollWait", EpollWait}, {"pollMany", PollMany}});
}

bool JavaScriptCanRun() {
  return JavaScriptCanRunNow();
}

}  // namespace ipckit
