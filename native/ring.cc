// The channel's ring, many records at a time: the copies of a packed batch
// (MessageBatch) into and out of the ring in one call, where JavaScript
// would copy each message into or out of the SharedArrayBuffer byte by
// byte and pay a call for each.
//
// The ring's layout and rules are src/channel.ts's (read there first); this
// file follows them exactly. A record is an 8-byte header (the payload's
// length, then its kind) and the payload, padded to a multiple of 8. A
// record never wraps: when one does not fit before the end of the ring, a
// padding record fills the rest and the record goes at the start. The
// producer publishes records by storing TAIL, the consumer gives their
// space back by storing HEAD; both stores stay in JavaScript (Atomics),
// after these calls.
//
// The other side may be hostile or broken: every header read from the
// ring is checked before it is used, as src/channel.ts checks it.
#include <atomic>
#include <cstring>

#include "common.h"

namespace ipckit {

namespace {

constexpr uint32_t kHeader = 8;
constexpr uint32_t kMessage = 1;
constexpr uint32_t kPadding = 2;

uint32_t Align8(uint32_t n) { return (n + 7) & ~7u; }

uint32_t LoadPosition(const int32_t* words, size_t index) {
  return static_cast<uint32_t>(reinterpret_cast<const std::atomic<int32_t>*>(words + index)->load(std::memory_order_acquire));
}

void WriteHeader(uint8_t* ring, uint32_t offset, uint32_t length, uint32_t kind) {
  std::memcpy(ring + offset, &length, 4);
  std::memcpy(ring + offset + 4, &kind, 4);
}

// The arguments both calls take: (ring, words, io, data, lengths).
struct RingCall {
  Bytes ring{nullptr, 0};
  int32_t* words = nullptr;
  size_t word_count = 0;
  Napi::Float64Array io;
  Bytes data{nullptr, 0};
  uint32_t* lengths = nullptr;
  size_t slots = 0;
  uint32_t capacity = 0;
  uint32_t mask = 0;

  // False when the ring is not what a channel has (a power of two, 64 B to
  // 1 GiB) or io has fewer than `io_length` elements.
  bool Parse(const Napi::CallbackInfo& info, size_t io_length) {
    ring = ArgBytes(info, 0);
    if (ring.length < 64 || (ring.length & (ring.length - 1)) != 0 || ring.length > (1u << 30)) return false;
    auto w = info[1].As<Napi::Int32Array>();
    words = w.Data();
    word_count = w.ElementLength();
    io = info[2].As<Napi::Float64Array>();
    if (io.ElementLength() < io_length) return false;
    data = ArgBytes(info, 3);
    auto l = info[4].As<Napi::Uint32Array>();
    lengths = l.Data();
    slots = l.ElementLength();
    capacity = static_cast<uint32_t>(ring.length);
    mask = capacity - 1;
    return true;
  }
};

}  // namespace

// ringPut(ring, words, io: Float64Array(8), data, lengths: Uint32Array) -> records placed (>= 0), or -EINVAL
// Writes messages io[3].. (of io[4]) of a packed batch (`data`, `lengths`;
// message io[3] starts at byte io[5] of `data`) as records from the
// producer's tail io[0], while the ring has room: io[1] is the producer's
// cached HEAD, reloaded from words[io[2]] when the room it shows is not
// enough. io[6] is maxMessageSize. Advances io[0], io[1], io[3] and io[5]
// past what it placed, and sets io[7] to the payload bytes placed. Nothing
// is published: the caller stores TAIL. A length over maxMessageSize or
// past the end of `data` (the batch changed: -EINVAL), or a ring another
// process corrupted (-EPROTO: HEAD ahead of TAIL, or a tail that is not a
// multiple of 8, where a header would cross the ring's end) ends the call:
// that error when nothing was placed, else the count placed (the next
// call meets the failure).
static Napi::Value RingPut(const Napi::CallbackInfo& info) {
  RingCall call;
  if (!call.Parse(info, 8)) return Errno(info.Env(), EINVAL);
  auto& [ring, words, word_count, io, data, lengths, slots, capacity, mask] = call;
  uint32_t tail = static_cast<uint32_t>(io[0]);
  uint32_t head = static_cast<uint32_t>(io[1]);
  size_t head_index = static_cast<size_t>(io[2]);
  double next_d = io[3], count_d = io[4], at_d = io[5], max_d = io[6];
  io[7] = 0;
  if (head_index >= word_count || !(count_d >= 0 && count_d <= static_cast<double>(slots)) || !(next_d >= 0 && next_d <= count_d) ||
      !(at_d >= 0 && at_d <= static_cast<double>(data.length)) || !(max_d >= 0)) {
    return Errno(info.Env(), EINVAL);
  }
  size_t next = static_cast<size_t>(next_d), count = static_cast<size_t>(count_d), at = static_cast<size_t>(at_d);
  // A record is less than half the ring (a padding record always is): the channel's maxMessageSize keeps it so.
  const double max = max_d < capacity / 2.0 ? max_d : capacity / 2.0 - kHeader;
  int placed = 0;
  double bytes = 0;
  int error = (tail & 7) != 0 ? EPROTO : 0;
  while (error == 0 && next < count) {
    uint32_t length = lengths[next];
    if (length > max || length > data.length - at) {
      error = EINVAL;
      break;
    }
    uint32_t size = Align8(kHeader + length);
    uint32_t offset = tail & mask;
    uint32_t pad = capacity - offset < size ? capacity - offset : 0;
    uint32_t needed = pad + size;
    uint32_t room = tail - head <= capacity ? capacity - (tail - head) : 0;
    if (room < needed) {
      head = LoadPosition(words, head_index);
      uint32_t used = tail - head;
      if (used > capacity) {
        error = EPROTO;
        break;
      }
      if (capacity - used < needed) break;
    }
    if (pad > 0) {
      WriteHeader(ring.data, offset, pad, kPadding);
      tail += pad;
      offset = 0;
    }
    if (length > 0) std::memcpy(ring.data + offset + kHeader, data.data + at, length);
    WriteHeader(ring.data, offset, length, kMessage);
    tail += size;
    at += length;
    next++;
    placed++;
    bytes += length;
  }
  io[0] = tail;
  io[1] = head;
  io[3] = static_cast<double>(next);
  io[5] = static_cast<double>(at);
  io[7] = bytes;
  if (error != 0 && placed == 0) return Errno(info.Env(), error);
  return Napi::Number::New(info.Env(), placed);
}

// ringTake(ring, words, io: Float64Array(9), data, lengths: Uint32Array) -> messages taken (>= 0)
// Copies the messages published in the ring, from the consumer's head io[0],
// into a packed batch that holds io[3] messages of io[4] bytes already,
// while it has a slot and room for the next: io[1] is the consumer's cached
// TAIL, reloaded from words[io[2]] when it has caught up; io[5] is
// maxMessageSize. Advances io[0] past the last message taken (padding
// before it included), io[1], io[3] and io[4]; sets io[6] to the bytes
// taken and io[7] to the length of a message left because the batch had
// no room for it (-1 if none), or -2 when it stopped at a record that
// breaks the ring's rules (a corrupted ring; io[8] is that record's
// position). Nothing is given back: the caller stores HEAD.
static Napi::Value RingTake(const Napi::CallbackInfo& info) {
  RingCall call;
  if (!call.Parse(info, 9)) return Errno(info.Env(), EINVAL);
  auto& [ring, words, word_count, io, data, lengths, slots, capacity, mask] = call;
  uint32_t head = static_cast<uint32_t>(io[0]);
  uint32_t tail = static_cast<uint32_t>(io[1]);
  size_t tail_index = static_cast<size_t>(io[2]);
  double count_d = io[3], size_d = io[4], max = io[5];
  io[6] = 0;
  io[7] = -1;
  if (tail_index >= word_count || slots == 0 || data.length == 0 || !(count_d >= 0 && count_d <= static_cast<double>(slots)) ||
      !(size_d >= 0 && size_d <= static_cast<double>(data.length))) {
    return Errno(info.Env(), EINVAL);
  }
  size_t count = static_cast<size_t>(count_d), size = static_cast<size_t>(size_d);
  uint32_t committed = head;
  int taken = 0;
  double bytes = 0;
  while (count < slots) {
    if (head == tail) {
      tail = LoadPosition(words, tail_index);
      if (head == tail) break;
    }
    uint32_t available = tail - head;
    uint32_t offset = head & mask;
    if (available > capacity || (available & 7) != 0 || (head & 7) != 0) {
      io[7] = -2;
      break;
    }
    uint32_t length, kind;
    std::memcpy(&length, ring.data + offset, 4);
    std::memcpy(&kind, ring.data + offset + 4, 4);
    if (kind == kPadding) {
      if (length != capacity - offset || static_cast<uint64_t>(length) * 2 >= capacity || length + kHeader > available) {
        io[7] = -2;
        break;
      }
      // Padding is published with the message after it: taken only with that message.
      head += length;
      continue;
    }
    uint64_t record = Align8(kHeader + (length > capacity ? capacity : length));
    if (kind != kMessage || length > max || record > available || offset + record > capacity) {
      io[7] = -2;
      break;
    }
    if (length > data.length - size) {
      io[7] = length;
      break;
    }
    if (length > 0) std::memcpy(data.data + size, ring.data + offset + kHeader, length);
    lengths[count++] = length;
    size += length;
    head += static_cast<uint32_t>(record);
    committed = head;
    taken++;
    bytes += length;
  }
  if (io[7] == -2) io[8] = head;
  io[0] = committed;
  io[1] = tail;
  io[3] = static_cast<double>(count);
  io[4] = static_cast<double>(size);
  io[6] = bytes;
  return Napi::Number::New(info.Env(), taken);
}

void InitRing(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {{"ringPut", RingPut}, {"ringTake", RingTake}});
}

}  // namespace ipckit
