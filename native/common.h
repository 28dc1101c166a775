// Shared conventions of the native layer.
//
// The addon only executes system calls. Every function returns a number: a
// non-negative result on success or -errno on failure, and TypeScript turns
// the negative values into IpcError objects. No policy lives here: names,
// sizes and options are validated before they reach C++.
//
// A call that can wait is one bounded attempt: it may spin for the spin
// budget it is given, then sleep at most the timeout it is given (0: not at
// all; < 0: as long as the kernel call takes), and reports "nothing yet" as
// -EAGAIN. Deadlines, caller order and cancellation are TypeScript's
// (src/internal/operation.ts). Blocking calls without a descriptor or a
// timeout of their own are bounded with the wake signal (wake.h); async
// waits without a descriptor run on waiter threads (jobs.h).
//
// Files by role: fd.cc (descriptor I/O and the flag constants),
// readiness.cc (epoll sets and the one libuv watch), spin.h, wake.*,
// jobs.*, sys.h (hot system calls without cancellation wrappers),
// v8-bridge.h (the only V8 use), then one file per mechanism
// (doorbell.cc: the pollable wake-ups of shared-memory channels).
#pragma once

#include <napi.h>
#include <sys/ipc.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <initializer_list>

namespace ipckit {

// The result of a system call as a JS number: the value, or -errno.
inline Napi::Value SysResult(Napi::Env env, long long r) {
  return Napi::Number::New(env, static_cast<double>(r < 0 ? -errno : r));
}

inline Napi::Value Errno(Napi::Env env, int err) {
  return Napi::Number::New(env, -err);
}

inline int ArgInt(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}

inline int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int64Value();
}

inline double ArgDouble(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().DoubleValue();
}

// A byte view of a Uint8Array (or Buffer) argument.
struct Bytes {
  uint8_t* data;
  size_t length;
};

inline Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i) {
  auto array = info[i].As<Napi::Uint8Array>();
  return Bytes{array.Data(), array.ByteLength()};
}

// A typed-array argument's type, data (from its offset) and element count,
// by one Node-API call where the wrappers' checks and getters make several
// (a batched send reads two arrays a call): false if it is not a typed array.
struct Typed {
  napi_typedarray_type type;
  void* data;
  size_t length;
};

inline bool ArgTyped(const Napi::CallbackInfo& info, size_t i, Typed* out) {
  napi_value value = info[i];
  bool typed = false;
  if (napi_is_typedarray(info.Env(), value, &typed) != napi_ok || !typed) return false;
  return napi_get_typedarray_info(info.Env(), value, &out->type, &out->length, &out->data, nullptr, nullptr) == napi_ok;
}

// Whether argument i is a typed array of `type`: the arrays a native call
// writes into are checked, never trusted to be what the caller meant.
inline bool ArgIsTyped(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type) {
  return info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == type;
}

// The arguments (buffer, offset, length) from index i as the bytes they
// name; false (nothing set) when the range does not fit the buffer.
inline bool ArgRange(const Napi::CallbackInfo& info, size_t i, Bytes* range) {
  Bytes b = ArgBytes(info, i);
  size_t offset = static_cast<size_t>(ArgInt64(info, i + 1));
  size_t length = static_cast<size_t>(ArgInt64(info, i + 2));
  if (offset > b.length || length > b.length - offset) return false;
  *range = Bytes{b.data + offset, length};
  return true;
}

// The element `i` of a JavaScript array of Uint8Arrays, as bytes; false
// (nothing set) if it is something else (TypeScript sends only Uint8Arrays:
// this keeps a mistake from becoming a send of garbage).
// Two Node-API calls per element (a batch reads many): the element, then
// its typed-array view, which fails for anything that is not one.
inline bool ElementBytes(const Napi::Array& list, uint32_t i, Bytes* out) {
  napi_env env = list.Env();
  napi_value value;
  if (napi_get_element(env, list, i, &value) != napi_ok) return false;
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    // Not a typed array: the failed call leaves a pending exception only in some versions; clear it either way.
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return false;
  }
  if (type != napi_uint8_array) return false;
  *out = Bytes{static_cast<uint8_t*>(data), length};
  return true;
}

// The messages of a batched send: a JavaScript array of Uint8Arrays, or a
// packed batch (a MessageBatch: one buffer holding the messages back to
// back, a Uint32Array of their lengths, and how many there are). A packed
// batch costs no Node-API call per message: its elements are found by
// walking the lengths from the last one found, forwards or backwards.
class Elements {
 public:
  // info[list_at]: the array, or the packed buffer when info[lengths_at] is
  // a Uint32Array (then info[lengths_at + 1] is the count, at most its length).
  Elements(const Napi::CallbackInfo& info, size_t list_at, size_t lengths_at) {
    Typed lengths;
    if (info.Length() > lengths_at + 1 && ArgTyped(info, lengths_at, &lengths)) {
      packed_ = true;
      Typed buffer;
      double count = info[lengths_at + 1].As<Napi::Number>().DoubleValue();
      // Lengths that are not a Uint32Array (or a buffer that is not a Uint8Array), or fewer than the count
      // (detached meanwhile): an invalid batch, which the call refuses with EINVAL rather than read past it.
      if (lengths.type != napi_uint32_array || !ArgTyped(info, list_at, &buffer) || buffer.type != napi_uint8_array ||
          !(count >= 0 && count <= static_cast<double>(lengths.length))) {
        valid_ = false;
        return;
      }
      data_ = Bytes{static_cast<uint8_t*>(buffer.data), buffer.length};
      lengths_ = static_cast<const uint32_t*>(lengths.data);
      count_ = static_cast<uint32_t>(count);
    } else {
      list_ = info[list_at].As<Napi::Array>();
      count_ = list_.Length();
    }
  }

  // Whether the elements can be read at all (see the constructor); an invalid batch has none.
  bool Valid() const { return valid_; }

  uint32_t Length() const { return count_; }

  // Element i (< Length()); false when it is not a Uint8Array, or (packed)
  // when the lengths run past the end of the buffer.
  bool Get(uint32_t i, Bytes* out) {
    if (!packed_) return ElementBytes(list_, i, out);
    while (index_ < i) offset_ += lengths_[index_++];
    while (index_ > i) offset_ -= lengths_[--index_];
    size_t length = lengths_[i];
    if (offset_ > data_.length || length > data_.length - offset_) return false;
    *out = Bytes{data_.data + offset_, length};
    return true;
  }

 private:
  bool packed_ = false;
  bool valid_ = true;
  Napi::Array list_;
  Bytes data_{nullptr, 0};
  const uint32_t* lengths_ = nullptr;
  uint32_t count_ = 0;
  uint32_t index_ = 0;  // the element whose offset is offset_
  size_t offset_ = 0;
};

// Monotonic clock in nanoseconds.
inline int64_t NowNs(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// An absolute CLOCK_REALTIME deadline `timeout_ms` from now, as the
// mq_timed* calls want it.
inline timespec RealtimeDeadline(int64_t timeout_ms) {
  int64_t ns = NowNs(CLOCK_REALTIME) + timeout_ms * 1000000LL;
  timespec ts;
  ts.tv_sec = ns / 1000000000LL;
  ts.tv_nsec = ns % 1000000000LL;
  return ts;
}

// The owner, creator and mode of a System V object, as the fields of `o`
// that every *Stat function reports.
inline void SetIpcPerm(Napi::Object o, const ipc_perm& perm) {
  o.Set("key", static_cast<double>(static_cast<uint32_t>(perm.__key)));
  o.Set("uid", static_cast<double>(perm.uid));
  o.Set("gid", static_cast<double>(perm.gid));
  o.Set("cuid", static_cast<double>(perm.cuid));
  o.Set("cgid", static_cast<double>(perm.cgid));
  o.Set("mode", static_cast<double>(perm.mode & 0777));
}

// One exported function: its JavaScript name and its implementation.
struct Method {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

// Exports every method of a file.
inline void ExportAll(Napi::Env env, Napi::Object exports, std::initializer_list<Method> methods) {
  for (const Method& m : methods) exports.Set(m.name, Napi::Function::New(env, m.fn, m.name));
}

// A JS callback invoked from a libuv callback that threw: hand the error to
// process 'uncaughtException' instead of leaving it pending. Plain Node-API
// calls whose failures are ignored: while a worker's JavaScript is being
// terminated they fail, and node-addon-api would abort the process building
// an Error object for the failure.
inline void ReportPendingException(napi_env env) {
  bool pending = false;
  napi_value error;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
  napi_fatal_exception(env, error);
}

// Calls `fn` from a libuv callback. While an environment is being torn down
// (a worker ending) JavaScript can no longer run and the call fails: that
// is ignored, never turned into an exception (node-addon-api's MakeCallback
// would abort the process trying to build one). An exception the callback
// threw goes to 'uncaughtException'.
bool JavaScriptCanRun();

inline void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, napi_async_context context, size_t argc,
                         const napi_value* argv) {
  napi_value global;
  napi_value result;
  if (fn.IsEmpty() || !JavaScriptCanRun() || napi_get_global(env, &global) != napi_ok) return;
  napi_make_callback(env, context, global, fn.Value(), argc, argv, &result);
  // An exception, unless it is the termination of the thread's JavaScript.
  if (JavaScriptCanRun()) ReportPendingException(env);
}

void InitFd(Napi::Env env, Napi::Object exports);
void InitReadiness(Napi::Env env, Napi::Object exports);
void InitJobs(Napi::Env env, Napi::Object exports);
void InitMessageQueue(Napi::Env env, Napi::Object exports);
void InitSharedMemory(Napi::Env env, Napi::Object exports);
void InitLock(Napi::Env env, Napi::Object exports);
void InitPipe(Napi::Env env, Napi::Object exports);
void InitFifo(Napi::Env env, Napi::Object exports);
void InitSignal(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitDoorbell(Napi::Env env, Napi::Object exports);
void InitRing(Napi::Env env, Napi::Object exports);
void InitSemaphore(Napi::Env env, Napi::Object exports);

// Whether the guarded mapping in `slot` lost pages to a truncation (shared-memory.cc).
bool MappingTruncated(int slot);

}  // namespace ipckit
