// Packed receives: native calls that place messages straight into a
// MessageBatch's buffer and lengths (src/internal/message-batch.ts).
#pragma once

#include "common.h"

namespace ipckit {

// The state a packed receive (mqReceiveBatch, msgRcvBatch, recvPackets)
// works on: the batch's buffer and lengths, and io = [count, size, ...] of
// the batch, which the call advances past each message it places.
struct PackedReceive {
  Bytes data;
  uint32_t* lengths;
  size_t slots;
  size_t count;
  size_t size;
  bool Valid() const { return count <= slots && size <= data.length; }
  // A message of `length` bytes is in place at data[size..].
  void Placed(size_t length) {
    lengths[count++] = static_cast<uint32_t>(length);
    size += length;
  }
  // The call's result, io[0] and io[1] advanced: how many it placed, or -ERANGE when there was no room for one.
  Napi::Value Result(Napi::Env env, Napi::Float64Array& io, int placed) const {
    io[0] = static_cast<double>(count);
    io[1] = static_cast<double>(size);
    return placed == 0 ? Errno(env, ERANGE) : Napi::Number::New(env, placed);
  }
};

// The batch of a call (data, lengths) = (info[1], info[2]), io = [count, size, ...].
inline PackedReceive ReceiveState(const Napi::CallbackInfo& info, const Napi::Float64Array& io) {
  auto lengths = info[2].As<Napi::Uint32Array>();
  PackedReceive r{ArgBytes(info, 1), lengths.Data(), lengths.ElementLength(), 0, 0};
  double count = io[0], size = io[1];
  // Out of range: an invalid batch (Valid() says so), never a read or write past it.
  r.count = count >= 0 && count <= static_cast<double>(r.slots) ? static_cast<size_t>(count) : r.slots + 1;
  r.size = size >= 0 && size <= static_cast<double>(r.data.length) ? static_cast<size_t>(size) : r.data.length + 1;
  return r;
}

}  // namespace ipckit
