// The few places that need V8 itself: Node-API cannot wrap foreign memory
// in a SharedArrayBuffer, nor keep a buffer's memory alive independently of
// its JavaScript object (what a waiter thread writing into it needs), nor
// tell whether a thread's JavaScript is being terminated; and its calls cost
// more than the hot paths can spare (direct calls, below). The addon is
// built from source against the installed Node, so the ABI matches.
#pragma once

#include <v8.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "common.h"

namespace ipckit {

// Node-API values are V8 local handles; these convert between the two.
static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value is a v8::Local");

inline napi_value FromV8(v8::Local<v8::Value> value) {
  napi_value result;
  std::memcpy(static_cast<void*>(&result), static_cast<const void*>(&value), sizeof result);
  return result;
}

inline v8::Local<v8::Value> ToV8(napi_value value) {
  v8::Local<v8::Value> result;
  std::memcpy(static_cast<void*>(&result), static_cast<const void*>(&value), sizeof result);
  return result;
}

// The memory under a typed array, held for as long as the returned pointer
// lives: the JavaScript buffer may be collected (or detached) meanwhile.
inline std::shared_ptr<v8::BackingStore> HoldBacking(napi_value typed_array) {
  return ToV8(typed_array).As<v8::ArrayBufferView>()->Buffer()->GetBackingStore();
}

// Whether JavaScript may run on this thread now: not while its isolate is
// terminating (a worker ending), when Node-API calls into JavaScript fail
// and node-addon-api would abort the process building the error.
inline bool JavaScriptCanRunNow() {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  return isolate != nullptr && !isolate->IsExecutionTerminating();
}

// -- Direct calls ----------------------------------------------------------
//
// The functions a single message takes (a queue's send and receive, a
// descriptor's read and write, a futex's wait and wake...) are V8 function
// callbacks, not Node-API ones. Node-API brackets every call (a callback
// info, a handle scope, an exception check on return) and reads every
// argument through a checked call of its own: for a System V send and
// receive of 64 bytes in one process, about 60 ns a call, and twice that in
// a round trip between processes, where the caches are cold.
//
// The conventions stay those of common.h: results are >= 0 or -errno.
// Arguments are checked for their JavaScript type only (a wrong one is a
// TypeError, as Node-API's wrappers make it), never for their meaning.

using DirectFunction = void (*)(const v8::FunctionCallbackInfo<v8::Value>&);

class DirectArgs {
 public:
  explicit DirectArgs(const v8::FunctionCallbackInfo<v8::Value>& info) : info_(info) {}

  double Number(int i) {
    v8::Local<v8::Value> v = info_[i];
    if (v->IsNumber()) return v.As<v8::Number>()->Value();
    Fail(i, "a number");
    return 0;
  }

  // A number that is a 32-bit integer: -0 is 0, as Node-API's Int32Value makes it.
  int32_t Int(int i) {
    v8::Local<v8::Value> v = info_[i];
    if (v->IsInt32()) return v.As<v8::Int32>()->Value();
    if (v->IsNumber()) {
      double d = v.As<v8::Number>()->Value();
      if (d >= -2147483648.0 && d <= 2147483647.0 && d == static_cast<double>(static_cast<int32_t>(d))) {
        return static_cast<int32_t>(d);
      }
    }
    Fail(i, "a 32-bit integer");
    return 0;
  }

  // An integer held in a double (offsets, System V types): truncated toward
  // zero, NaN as 0, and kept within int64_t (a cast of a double beyond it
  // is undefined).
  int64_t Int64(int i) {
    double d = Number(i);
    if (!(d == d)) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return static_cast<int64_t>(d);
  }

  // A Uint8Array (or Buffer) argument: its bytes.
  ipckit::Bytes Bytes(int i) {
    v8::Local<v8::Value> v = info_[i];
    if (!v->IsUint8Array()) {
      Fail(i, "a Uint8Array");
      return ipckit::Bytes{nullptr, 0};
    }
    v8::Local<v8::Uint8Array> view = v.As<v8::Uint8Array>();
    size_t length = view->ByteLength();
    if (length == 0) return ipckit::Bytes{nullptr, 0};
    return ipckit::Bytes{static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset(), length};
  }

  // A Uint8Array argument that may be null or undefined: no bytes then.
  ipckit::Bytes OptionalBytes(int i) {
    if (info_[i]->IsNullOrUndefined()) return ipckit::Bytes{nullptr, 0};
    return Bytes(i);
  }

  // An Int32Array argument's elements (descriptors); null or undefined
  // give none when `optional`.
  struct Ints {
    int32_t* data;
    size_t length;
  };
  Ints Int32s(int i, bool optional = false) {
    v8::Local<v8::Value> v = info_[i];
    if (optional && v->IsNullOrUndefined()) return Ints{nullptr, 0};
    if (!v->IsInt32Array()) {
      Fail(i, optional ? "an Int32Array or null" : "an Int32Array");
      return Ints{nullptr, 0};
    }
    v8::Local<v8::Int32Array> view = v.As<v8::Int32Array>();
    size_t length = view->Length();
    if (length == 0) return Ints{nullptr, 0};
    return Ints{reinterpret_cast<int32_t*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset()), length};
  }

  // A Float64Array argument's elements (where results are written).
  struct Doubles {
    double* data;
    size_t length;
  };
  Doubles Float64s(int i) {
    v8::Local<v8::Value> v = info_[i];
    if (!v->IsFloat64Array()) {
      Fail(i, "a Float64Array");
      return Doubles{nullptr, 0};
    }
    v8::Local<v8::Float64Array> view = v.As<v8::Float64Array>();
    size_t length = view->Length();
    if (length == 0) return Doubles{nullptr, 0};
    return Doubles{reinterpret_cast<double*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset()), length};
  }

  int Length() const { return info_.Length(); }

  // Int32Array arguments (shared words): the element `index` of it, with
  // `count` elements from there (nullptr if they are not all within the
  // array, a detached or shrunk one included: the caller answers -ERANGE).
  int32_t* Word(int array, int index, size_t count = 1) {
    v8::Local<v8::Value> v = info_[array];
    int32_t at = Int(index);
    if (!v->IsInt32Array()) {
      Fail(array, "an Int32Array");
      return nullptr;
    }
    if (!ok_) return nullptr;
    v8::Local<v8::Int32Array> view = v.As<v8::Int32Array>();
    size_t length = view->Length();
    if (at < 0 || static_cast<size_t>(at) > length || count > length - static_cast<size_t>(at)) return nullptr;
    return reinterpret_cast<int32_t*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset()) + at;
  }

  // Whether every argument read so far had its type; if not, a TypeError is pending.
  bool ok() const { return ok_; }

  void Return(int32_t value) { info_.GetReturnValue().Set(value); }
  void Return(double value) { info_.GetReturnValue().Set(value); }

 private:
  void Fail(int i, const char* what) {
    if (!ok_) return;
    ok_ = false;
    char message[96];
    std::snprintf(message, sizeof message, "ipckit native call: argument %d must be %s", i, what);
    v8::Isolate* isolate = info_.GetIsolate();
    v8::Local<v8::String> text;
    if (v8::String::NewFromUtf8(isolate, message).ToLocal(&text)) isolate->ThrowException(v8::Exception::TypeError(text));
  }

  const v8::FunctionCallbackInfo<v8::Value>& info_;
  bool ok_ = true;
};

// bytes[offset .. offset + length] into *out; false (nothing set) unless it lies within the bytes.
inline bool InRange(const Bytes& bytes, int64_t offset, int64_t length, Bytes* out) {
  if (offset < 0 || length < 0 || static_cast<uint64_t>(offset) > bytes.length ||
      static_cast<uint64_t>(length) > bytes.length - static_cast<uint64_t>(offset)) {
    return false;
  }
  *out = Bytes{bytes.data == nullptr ? nullptr : bytes.data + offset, static_cast<size_t>(length)};
  return true;
}

struct DirectMethod {
  const char* name;
  DirectFunction fn;
};

// Sets each of `methods` on `exports` as a plain function (not a constructor).
inline void ExportDirect(Napi::Object exports, std::initializer_list<DirectMethod> methods) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::Object> target = ToV8(exports).As<v8::Object>();
  for (const DirectMethod& m : methods) {
    v8::Local<v8::FunctionTemplate> tmpl = v8::FunctionTemplate::New(
        isolate, m.fn, v8::Local<v8::Value>(), v8::Local<v8::Signature>(), 0, v8::ConstructorBehavior::kThrow);
    v8::Local<v8::String> name;
    v8::Local<v8::Function> fn;
    if (!v8::String::NewFromUtf8(isolate, m.name, v8::NewStringType::kInternalized).ToLocal(&name)) return;
    tmpl->SetClassName(name);
    if (!tmpl->GetFunction(context).ToLocal(&fn)) return;
    fn->SetName(name);
    if (target->Set(context, name, fn).IsNothing()) return;
  }
}

}  // namespace ipckit
