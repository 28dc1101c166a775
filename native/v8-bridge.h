// The few places that need V8 itself: Node-API cannot wrap foreign memory
// in a SharedArrayBuffer, nor keep a buffer's memory alive independently of
// its JavaScript object (what a waiter thread writing into it needs), nor
// tell whether a thread's JavaScript is being terminated. The
// addon is built from source against the installed Node, so the ABI matches.
#pragma once

#include <v8.h>

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

}  // namespace ipckit
