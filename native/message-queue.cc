// POSIX message queues (mq_open family) and System V message queues
// (msgget family). Thin wrappers: every function returns >= 0 or -errno.
//
// Sends and receives are single bounded attempts: spin up to spinUs, then
// sleep up to timeoutMs (0: not at all; < 0: as long as it takes). "Nothing
// yet" is always -EAGAIN; the deadline loop around them is TypeScript's.
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "jobs.h"
#include "packed.h"
#include "spin.h"
#include "sys.h"
#include "v8-bridge.h"
#include "wake.h"

namespace ipckit {

// ---------------------------------------------------------------------------
// POSIX

// mqOpen(name, oflag, mode, maxMessages, maxMessageSize) -> fd
// With O_CREAT and maxMessages > 0 the attributes are passed to the kernel.
// A newly created queue gets exactly `mode` (fchmod on the descriptor), so
// the creator's umask cannot widen or narrow what was asked for.
static Napi::Value MqOpen(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int oflag = ArgInt(info, 1);
  mode_t mode = static_cast<mode_t>(ArgInt(info, 2));
  long maxmsg = ArgInt(info, 3);
  long msgsize = ArgInt(info, 4);
  mq_attr attr{};
  attr.mq_maxmsg = maxmsg;
  attr.mq_msgsize = msgsize;
  mqd_t fd = mq_open(name.c_str(), oflag, mode,
                     (oflag & O_CREAT) && maxmsg > 0 ? &attr : nullptr);
  if (fd < 0) return Errno(info.Env(), errno);
  if ((oflag & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) && fchmod(fd, mode) < 0) {
    int err = errno;
    mq_close(fd);
    mq_unlink(name.c_str());
    return Errno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value MqUnlink(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return SysResult(info.Env(), mq_unlink(name.c_str()));
}

// The descriptors stay in blocking mode. A non-blocking attempt passes an
// absolute deadline of 0 (the epoch), which the kernel treats as already
// expired: the call returns at once when it would block. So one descriptor
// serves sync, try and async calls without ever toggling O_NONBLOCK.
static const timespec kExpired = {0, 0};

// One bounded mq_* call: `call(deadline)` with nullptr blocks. With an
// expired or reached deadline the kernel answers ETIMEDOUT, or EAGAIN on
// some paths; both become -EAGAIN.
//
// A descriptor ipckit did not open (fromFd) may have O_NONBLOCK set on its
// open file description, which every holder shares: then the call that was
// meant to block answers EAGAIN at once. It then waits in poll(2) for
// `events` (POLLIN to receive, POLLOUT to send) for the rest of its time
// and tries again, never changing the description's flags, so a wait costs
// no CPU whatever mode the descriptor is in.
template <typename B, typename F>
static int MqAttempt(int fd, short events, double timeout_ms, const B& spin_us, const F& call) {
  auto once = [&](const timespec* deadline) {
    int r;
    do r = call(deadline);
    while (r == -EINTR);
    return r;
  };
  auto now = [&] {
    int r = once(&kExpired);
    return r == -ETIMEDOUT ? -EAGAIN : r;
  };
  int r = Spin([&] { return SpinBudget(timeout_ms, BudgetOf(spin_us)); }, EAGAIN, now);
  if (r != -EAGAIN || timeout_ms == 0) return r;
  int64_t end = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  if (timeout_ms < 0) {
    r = once(nullptr);
  } else {
    timespec deadline = RealtimeDeadline(static_cast<int64_t>(timeout_ms + 0.999));
    r = once(&deadline);
  }
  if (r != -EAGAIN) return r == -ETIMEDOUT ? -EAGAIN : r;
  // EAGAIN from a call allowed to block: the description is non-blocking.
  for (;;) {
    int wait_ms = -1;
    if (end >= 0) {
      int64_t left = end - NowNs();
      if (left <= 0) return -EAGAIN;
      wait_ms = static_cast<int>((left + 999999) / 1000000);
    }
    pollfd p = {fd, events, 0};
    if (poll(&p, 1, wait_ms) < 0 && errno != EINTR) return -errno;
    r = now();
    if (r != -EAGAIN) return r;
  }
}

// mqSend(fd, bytes, priority, timeoutMs, spinUs) -> 0, or -EAGAIN while full
static void MqSend(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int fd = args.Int(0);
  Bytes b = args.Bytes(1);
  unsigned prio = static_cast<unsigned>(args.Int(2));
  double timeout_ms = args.Number(3);
  double spin_us = args.Number(4);
  if (!args.ok()) return;
  const char* data = reinterpret_cast<const char*>(b.data);
  args.Return(MqAttempt(fd, POLLOUT, timeout_ms, spin_us, [&](const timespec* deadline) {
    int n = SysMqTimedSend(fd, data, b.length, prio, deadline);
    return n < 0 ? -errno : 0;
  }));
}

// mqReceive(fd, buffer, offset, timeoutMs, spinUs) -> priority * 2^32 +
// length, or -EAGAIN while empty. Receives into buffer[offset..]. (The
// priority, below MQ_PRIO_MAX, rides in the result: an out array would cost
// a typed-array argument a call.)
static void MqReceive(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int fd = args.Int(0);
  Bytes b = args.Bytes(1);
  int64_t offset = args.Int64(2);
  double timeout_ms = args.Number(3);
  double spin_us = args.Number(4);
  if (!args.ok()) return;
  if (offset < 0 || static_cast<uint64_t>(offset) > b.length) return args.Return(-ERANGE);
  char* data = reinterpret_cast<char*>(b.data) + offset;
  size_t capacity = b.length - static_cast<size_t>(offset);
  unsigned prio = 0;
  int r = MqAttempt(fd, POLLIN, timeout_ms, spin_us, [&](const timespec* deadline) {
    ssize_t n = SysMqTimedReceive(fd, data, capacity, &prio, deadline);
    return n < 0 ? -errno : static_cast<int>(n);
  });
  if (r < 0 || prio == 0) return args.Return(r);
  args.Return(static_cast<double>(prio) * 4294967296.0 + r);
}

// The next 8-byte aligned offset at or after `at`: where a batch puts its next message.
static size_t Aligned(size_t at) { return (at + 7) & ~static_cast<size_t>(7); }

// mqSendMany(fd, list: Uint8Array[], priority, next: Uint32Array(1), timeoutMs, spinUs[, lengths, count])
//   -> messages this call sent (> 0), -EAGAIN while full (none sent), or -errno (none sent).
// Sends list[next[0]..] in order, advancing next[0] past each one sent. The
// first waits as mqSend does; each other goes in while there is room, or
// when room comes while the call may still spin (BatchSpin: a whole budget
// since the last message went, within the call's slice and timeout; never
// a sleep). An error after some were sent ends the call with their count
// (the next call reports it). With `lengths` (a Uint32Array) and `count`, `list`
// is a packed batch: `count` messages back to back in one buffer.
static Napi::Value MqSendMany(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Elements list(info, 1, 6);
  unsigned prio = info[2].As<Napi::Number>().Uint32Value();
  auto next = info[3].As<Napi::Uint32Array>();
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  if (!list.Valid()) return Errno(info.Env(), EINVAL);
  uint32_t total = list.Length();
  int sent = 0;
  BatchSpin spin(timeout_ms, spin_us);
  while (next[0] < total) {
    Bytes b;
    if (!list.Get(next[0], &b)) return Napi::Number::New(info.Env(), sent > 0 ? sent : -EINVAL);
    const char* data = reinterpret_cast<const char*>(b.data);
    auto call = [&](const timespec* deadline) {
      int n = SysMqTimedSend(fd, data, b.length, prio, deadline);
      return n < 0 ? -errno : 0;
    };
    int r = sent == 0 ? MqAttempt(fd, POLLOUT, timeout_ms, spin_us, call) : MqAttempt(fd, POLLOUT, 0, [&] { return spin.Left(); }, call);
    if (r < 0) return Napi::Number::New(info.Env(), sent > 0 ? sent : r);
    next[0] = next[0] + 1;
    sent++;
    spin.Progress();
  }
  return Napi::Number::New(info.Env(), sent);
}

// mqReceiveMany(fd, buffer, offset, io: Uint32Array, timeoutMs, spinUs)
//   -> messages received (> 0), -EAGAIN while empty, or -errno (none received).
// io[0]: at most this many; io[1]: the queue's mq_msgsize (every receive
// needs that much room). Message i lands in buffer at an 8-byte aligned
// offset after message i - 1 (the first at `offset`); io[2 + 2i] is its
// length and io[3 + 2i] its priority. The first waits as mqReceive does;
// the others are taken only while queued now, and while room is left.
static Napi::Value MqReceiveMany(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  size_t at = static_cast<size_t>(ArgInt64(info, 2));
  auto io = info[3].As<Napi::Uint32Array>();
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  size_t slots = io.ElementLength() < 2 ? 0 : (io.ElementLength() - 2) / 2;
  size_t max = io[0] < slots ? io[0] : slots;
  size_t need = io[1];
  int got = 0;
  while (static_cast<size_t>(got) < max && at <= b.length && b.length - at >= need) {
    char* data = reinterpret_cast<char*>(b.data) + at;
    size_t capacity = b.length - at;
    unsigned prio = 0;
    auto call = [&](const timespec* deadline) {
      ssize_t n = SysMqTimedReceive(fd, data, capacity, &prio, deadline);
      return n < 0 ? -errno : static_cast<int>(n);
    };
    int r = got == 0 ? MqAttempt(fd, POLLIN, timeout_ms, spin_us, call) : MqAttempt(fd, POLLIN, 0, 0, call);
    if (r < 0) {
      if (got > 0) break;
      return Napi::Number::New(info.Env(), r);
    }
    io[2 + 2 * got] = static_cast<uint32_t>(r);
    io[3 + 2 * got] = prio;
    got++;
    at = Aligned(at + static_cast<size_t>(r));
  }
  if (got == 0) return Errno(info.Env(), ERANGE);
  return Napi::Number::New(info.Env(), got);
}

// mqReceiveBatch(fd, data, lengths: Uint32Array, io: Float64Array(3), timeoutMs, spinUs[, priorities: Uint32Array])
//   -> messages placed (> 0), -EAGAIN while empty, or -errno (none placed).
// Receives straight into a packed batch: io[0] messages of io[1] bytes are
// in it already, and message i goes to data[io[1]..], its length to
// lengths[io[0]], its priority to priorities[io[0]] (when given and long
// enough), and io[0], io[1] advance. mq_receive needs room for the queue's
// mq_msgsize (io[2]), so the call stops when less is left, or the slots are
// full. The first waits as mqReceive does; the others are taken only while
// queued now.
static Napi::Value MqReceiveBatch(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  auto io = info[3].As<Napi::Float64Array>();
  PackedReceive batch = ReceiveState(info, io);
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  uint32_t* priorities = nullptr;
  size_t priority_slots = 0;
  if (info.Length() > 6 && info[6].IsTypedArray()) {
    auto p = info[6].As<Napi::Uint32Array>();
    priorities = p.Data();
    priority_slots = p.ElementLength();
  }
  size_t need = io[2] > 0 ? static_cast<size_t>(io[2]) : 1;
  if (!batch.Valid()) return Errno(info.Env(), EINVAL);
  int got = 0;
  while (batch.count < batch.slots && batch.data.length - batch.size >= need) {
    char* at = reinterpret_cast<char*>(batch.data.data) + batch.size;
    size_t capacity = batch.data.length - batch.size;
    unsigned prio = 0;
    auto call = [&](const timespec* deadline) {
      ssize_t n = SysMqTimedReceive(fd, at, capacity, &prio, deadline);
      return n < 0 ? -errno : static_cast<int>(n);
    };
    int r = got == 0 ? MqAttempt(fd, POLLIN, timeout_ms, spin_us, call) : MqAttempt(fd, POLLIN, 0, 0, call);
    if (r < 0) {
      if (got > 0) break;
      return Napi::Number::New(info.Env(), r);
    }
    if (batch.count < priority_slots) priorities[batch.count] = prio;
    batch.Placed(static_cast<size_t>(r));
    got++;
  }
  return batch.Result(info.Env(), io, got);
}

// mqGetAttr(fd, out: Float64Array(4)) -> 0; out = [flags, maxmsg, msgsize, curmsgs]
static Napi::Value MqGetAttr(const Napi::CallbackInfo& info) {
  mq_attr attr{};
  int r = mq_getattr(ArgInt(info, 0), &attr);
  if (r < 0) return Errno(info.Env(), errno);
  auto out = info[1].As<Napi::Float64Array>();
  out[0] = static_cast<double>(attr.mq_flags);
  out[1] = static_cast<double>(attr.mq_maxmsg);
  out[2] = static_cast<double>(attr.mq_msgsize);
  out[3] = static_cast<double>(attr.mq_curmsgs);
  return Napi::Number::New(info.Env(), 0);
}

// ---------------------------------------------------------------------------
// System V

static Napi::Value Ftok(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  key_t key = ftok(path.c_str(), ArgInt(info, 1));
  if (key == -1) return Errno(info.Env(), errno);
  // key_t is signed; report the 32-bit pattern as an unsigned number.
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(key));
}

// msgGet(key, flags, mode) -> id. The key is the unsigned 32-bit pattern.
static Napi::Value MsgGet(const Napi::CallbackInfo& info) {
  key_t key = static_cast<key_t>(info[0].As<Napi::Number>().Uint32Value());
  int flags = ArgInt(info, 1) | (ArgInt(info, 2) & 0777);
  return SysResult(info.Env(), msgget(key, flags));
}

// The message buffer msgsnd/msgrcv expect: a long type, then the bytes.
static void PackMessage(std::vector<char>& msg, long type, const uint8_t* data, size_t length) {
  msg.resize(sizeof(long) + length);
  std::memcpy(msg.data(), &type, sizeof(long));
  if (length > 0) std::memcpy(msg.data() + sizeof(long), data, length);
}

// One bounded msgsnd/msgrcv call: `call(flags)`, first with IPC_NOWAIT
// (spinning up to spin_us), then blocking, interrupted at the deadline by
// the wake signal. `would_block` is what IPC_NOWAIT reports (EAGAIN for a
// send, ENOMSG for a receive); "nothing yet" becomes -EAGAIN.
template <typename B, typename F>
static int MsgAttempt(double timeout_ms, const B& spin_us, int would_block, const F& call) {
  int r = Spin([&] { return SpinBudget(timeout_ms, BudgetOf(spin_us)); }, would_block, [&] { return call(IPC_NOWAIT); });
  if (r == -would_block && timeout_ms != 0) r = BoundedCall([&] { return call(0); }, timeout_ms);
  return r == -would_block || r == -ETIMEDOUT ? -EAGAIN : r;
}

// msgSnd(id, type, bytes, timeoutMs, spinUs) -> 0, or -EAGAIN while full
static void MsgSnd(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int id = args.Int(0);
  long type = static_cast<long>(args.Int64(1));
  Bytes b = args.Bytes(2);
  double timeout_ms = args.Number(3);
  double spin_us = args.Number(4);
  if (!args.ok()) return;
  // One buffer per thread: a send allocates nothing once it has grown.
  thread_local std::vector<char> msg;
  PackMessage(msg, type, b.data, b.length);
  args.Return(MsgAttempt(timeout_ms, spin_us, EAGAIN, [&](int flags) {
    return SysMsgSnd(id, msg.data(), b.length, flags) < 0 ? -errno : 0;
  }));
}

// Where msgrcv writes: a long (the type), then the payload.
static bool ReceiveArea(const Bytes& b, size_t offset, uint8_t** area, size_t* capacity) {
  if (offset > b.length || b.length - offset < sizeof(long)) return false;
  *area = b.data + offset;
  *capacity = b.length - offset - sizeof(long);
  return true;
}

static double ReceivedType(const uint8_t* area) {
  long got;
  std::memcpy(&got, area, sizeof(long));
  return static_cast<double>(got);
}

// One msgrcv of `type` into `area` (a long, then up to `capacity` bytes),
// bounded as MsgAttempt bounds it: the payload's length, or -errno.
static int MsgReceiveArea(int id, uint8_t* area, size_t capacity, long type, double timeout_ms, double spin_us) {
  return MsgAttempt(timeout_ms, spin_us, ENOMSG, [&](int flags) {
    ssize_t n = SysMsgRcv(id, area, capacity, type, flags);
    return n < 0 ? -errno : static_cast<int>(n);
  });
}

// msgRcv(id, buffer, offset, type, timeoutMs, spinUs) -> length, or
// -EAGAIN while nothing matches. buffer[offset..] receives a long (the
// type, which TypeScript reads there) then the payload; `type` is the
// msgrcv selector.
static void MsgRcv(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int id = args.Int(0);
  Bytes b = args.Bytes(1);
  int64_t offset = args.Int64(2);
  long type = static_cast<long>(args.Int64(3));
  double timeout_ms = args.Number(4);
  double spin_us = args.Number(5);
  if (!args.ok()) return;
  uint8_t* area;
  size_t capacity;
  if (offset < 0 || !ReceiveArea(b, static_cast<size_t>(offset), &area, &capacity)) return args.Return(-ERANGE);
  args.Return(MsgReceiveArea(id, area, capacity, type, timeout_ms, spin_us));
}

// msgRcvInto(id, scratch, target, type, timeoutMs, spinUs) -> length, or
// -EAGAIN while nothing matches, or -errno. msgrcv writes a long (the type,
// which TypeScript reads at scratch[0..8]) then the payload into `scratch`;
// the payload is then copied to the start of `target` if it fits there.
// One that does not (a target that shrank while its receive waited) is
// taken but not copied: -(kNotCopied + length), below every -errno; the
// caller finds its bytes in `scratch` and puts them back.
// Above every errno (Linux's stop at 4095).
constexpr int kNotCopied = 4096;

static void MsgRcvInto(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int id = args.Int(0);
  Bytes scratch = args.Bytes(1);
  Bytes target = args.Bytes(2);
  long type = static_cast<long>(args.Int64(3));
  double timeout_ms = args.Number(4);
  double spin_us = args.Number(5);
  if (!args.ok()) return;
  uint8_t* area;
  size_t capacity;
  if (!ReceiveArea(scratch, 0, &area, &capacity)) return args.Return(-ERANGE);
  int r = MsgReceiveArea(id, area, capacity, type, timeout_ms, spin_us);
  if (r > 0 && static_cast<size_t>(r) > target.length) return args.Return(-(kNotCopied + r));
  // memmove: a direct caller may hand overlapping buffers.
  if (r > 0) std::memmove(target.data, area + sizeof(long), static_cast<size_t>(r));
  args.Return(r);
}

// msgSndMany(id, type, list: Uint8Array[], next: Uint32Array(1), timeoutMs, spinUs[, lengths, count])
//   -> messages this call sent (> 0), -EAGAIN while full (none sent), or -errno (none sent).
// As mqSendMany: the first waits as msgSnd does, the others go in only
// while there is room now; next[0] advances past each one sent. With
// `lengths` and `count`, `list` is a packed batch, as for mqSendMany.
static Napi::Value MsgSndMany(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  long type = static_cast<long>(ArgInt64(info, 1));
  Elements list(info, 2, 6);
  auto next = info[3].As<Napi::Uint32Array>();
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  if (!list.Valid()) return Errno(info.Env(), EINVAL);
  uint32_t total = list.Length();
  thread_local std::vector<char> msg;
  int sent = 0;
  BatchSpin spin(timeout_ms, spin_us);
  while (next[0] < total) {
    Bytes b;
    if (!list.Get(next[0], &b)) return Napi::Number::New(info.Env(), sent > 0 ? sent : -EINVAL);
    PackMessage(msg, type, b.data, b.length);
    auto call = [&](int flags) { return SysMsgSnd(id, msg.data(), b.length, flags) < 0 ? -errno : 0; };
    int r = sent == 0 ? MsgAttempt(timeout_ms, spin_us, EAGAIN, call) : MsgAttempt(0, [&] { return spin.Left(); }, EAGAIN, call);
    if (r < 0) return Napi::Number::New(info.Env(), sent > 0 ? sent : r);
    next[0] = next[0] + 1;
    sent++;
    spin.Progress();
  }
  return Napi::Number::New(info.Env(), sent);
}

// msgRcvMany(id, buffer, offset, io: Float64Array, timeoutMs, spinUs)
//   -> messages received (> 0), -EAGAIN while none matches, or -errno (none received).
// io[0]: the msgrcv type selector; io[1]: at most this many; io[2]: the
// largest payload (every receive needs a long and that much room). Message
// i lands as msgrcv writes it (a long type, then the payload) at an 8-byte
// aligned offset after message i - 1 (the first at `offset`); io[3 + 2i] is
// its payload length and io[4 + 2i] its type. The first waits as msgRcv
// does; the others are taken only while there now, and while room is left.
static Napi::Value MsgRcvMany(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  size_t at = static_cast<size_t>(ArgInt64(info, 2));
  auto io = info[3].As<Napi::Float64Array>();
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  long selector = static_cast<long>(io[0]);
  size_t slots = io.ElementLength() < 3 ? 0 : (io.ElementLength() - 3) / 2;
  size_t max = io[1] < 0 ? 0 : static_cast<size_t>(io[1]);
  if (max > slots) max = slots;
  size_t need = sizeof(long) + static_cast<size_t>(io[2]);
  int got = 0;
  while (static_cast<size_t>(got) < max && at <= b.length && b.length - at >= need) {
    uint8_t* area = b.data + at;
    size_t capacity = b.length - at - sizeof(long);
    auto call = [&](int flags) {
      ssize_t n = SysMsgRcv(id, area, capacity, selector, flags);
      return n < 0 ? -errno : static_cast<int>(n);
    };
    int r = got == 0 ? MsgAttempt(timeout_ms, spin_us, ENOMSG, call) : MsgAttempt(0, 0, ENOMSG, call);
    if (r < 0) {
      if (got > 0) break;
      return Napi::Number::New(info.Env(), r);
    }
    io[3 + 2 * got] = static_cast<double>(r);
    io[4 + 2 * got] = ReceivedType(area);
    got++;
    at = Aligned(at + sizeof(long) + static_cast<size_t>(r));
  }
  if (got == 0) return Errno(info.Env(), ERANGE);
  return Napi::Number::New(info.Env(), got);
}

// msgRcvBatch(id, data, lengths: Uint32Array, io: Float64Array(4), timeoutMs, spinUs[, types: Float64Array])
//   -> messages placed (> 0), -EAGAIN while none matches, or -errno (none placed).
// As mqReceiveBatch, for System V: io[2] is the msgrcv type selector, io[3]
// the largest message (kernel.msgmax when the handle opened), and each
// message's type goes to types[count]. msgrcv writes a long (the type)
// before the payload, so a message lands 8 bytes early, over the end of the
// one before it, whose bytes are put back once the type is read; the first
// (nothing before it) goes through a scratch buffer of the thread, of at
// most 8 + io[3] bytes (-ENOMEM if that cannot be had). A message goes in
// while it fits the room left (msgrcv refuses a larger one with E2BIG and
// leaves it queued: the call stops there, or fails with E2BIG when none
// was placed).
static Napi::Value MsgRcvBatch(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  auto io = info[3].As<Napi::Float64Array>();
  PackedReceive batch = ReceiveState(info, io);
  double timeout_ms = ArgDouble(info, 4);
  double spin_us = ArgDouble(info, 5);
  if (io.ElementLength() < 4) return Errno(info.Env(), EINVAL);
  long selector = static_cast<long>(io[2]);
  size_t largest = io[3] > 0 && io[3] < static_cast<double>(INT32_MAX) ? static_cast<size_t>(io[3]) : 0;
  double* types = nullptr;
  size_t type_slots = 0;
  if (info.Length() > 6 && info[6].IsTypedArray()) {
    auto t = info[6].As<Napi::Float64Array>();
    types = t.Data();
    type_slots = t.ElementLength();
  }
  if (!batch.Valid()) return Errno(info.Env(), EINVAL);
  // The first message's landing place (nothing before it to land over): malloc'd, so that a failure is an error, not an abort.
  struct Scratch {
    uint8_t* data = nullptr;
    size_t size = 0;
    ~Scratch() { std::free(data); }
  };
  thread_local Scratch scratch;
  int got = 0;
  while (batch.count < batch.slots && batch.size < batch.data.length) {
    size_t room = batch.data.length - batch.size;
    bool early = batch.size >= sizeof(long);
    uint8_t* area;
    uint8_t saved[sizeof(long)];
    if (early) {
      area = batch.data.data + batch.size - sizeof(long);
      std::memcpy(saved, area, sizeof(long));
    } else {
      // Room for the largest message the queue can hold, never more (the batch may be far larger).
      if (room > largest) room = largest;
      size_t want = sizeof(long) + room;
      if (scratch.size < want) {
        void* grown = std::realloc(scratch.data, want);
        if (grown == nullptr) {
          if (got > 0) break;
          return Errno(info.Env(), ENOMEM);
        }
        scratch.data = static_cast<uint8_t*>(grown);
        scratch.size = want;
      }
      area = scratch.data;
    }
    auto call = [&](int flags) {
      ssize_t n = SysMsgRcv(id, area, room, selector, flags);
      return n < 0 ? -errno : static_cast<int>(n);
    };
    int r = got == 0 ? MsgAttempt(timeout_ms, spin_us, ENOMSG, call) : MsgAttempt(0, 0, ENOMSG, call);
    double type = r >= 0 ? ReceivedType(area) : 0;
    if (early) std::memcpy(area, saved, sizeof(long));
    if (r < 0) {
      if (got > 0) break;
      return Napi::Number::New(info.Env(), r);
    }
    if (!early && r > 0) std::memcpy(batch.data.data + batch.size, area + sizeof(long), static_cast<size_t>(r));
    if (batch.count < type_slots) types[batch.count] = type;
    batch.Placed(static_cast<size_t>(r));
    got++;
  }
  return batch.Result(info.Env(), io, got);
}

// msgStat(id) -> object, or -errno
static Napi::Value MsgStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  msqid_ds ds{};
  if (msgctl(ArgInt(info, 0), IPC_STAT, &ds) < 0) return Errno(env, errno);
  Napi::Object o = Napi::Object::New(env);
  SetIpcPerm(o, ds.msg_perm);
  o.Set("messages", static_cast<double>(ds.msg_qnum));
  o.Set("bytes", static_cast<double>(ds.__msg_cbytes));
  o.Set("maxBytes", static_cast<double>(ds.msg_qbytes));
  o.Set("lastSendPid", static_cast<double>(ds.msg_lspid));
  o.Set("lastReceivePid", static_cast<double>(ds.msg_lrpid));
  o.Set("sendTime", static_cast<double>(ds.msg_stime));
  o.Set("receiveTime", static_cast<double>(ds.msg_rtime));
  o.Set("changeTime", static_cast<double>(ds.msg_ctime));
  return o;
}

// msgSetMaxBytes(id, bytes) -> 0 (IPC_SET of msg_qbytes)
static Napi::Value MsgSetMaxBytes(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  msqid_ds ds{};
  if (msgctl(id, IPC_STAT, &ds) < 0) return Errno(info.Env(), errno);
  ds.msg_qbytes = static_cast<msglen_t>(ArgInt64(info, 1));
  return SysResult(info.Env(), msgctl(id, IPC_SET, &ds));
}

static Napi::Value MsgRemove(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), msgctl(ArgInt(info, 0), IPC_RMID, nullptr));
}

// A blocking msgrcv on a waiter thread, straight into the caller's receive
// buffer (whose memory it holds, so nothing is copied twice).
class ReceiveJob : public BlockingJob {
 public:
  ReceiveJob(int id, napi_value buffer, uint8_t* area, size_t capacity, long type)
      : id_(id), memory_(HoldBacking(buffer)), area_(area), capacity_(capacity), type_(type) {}
  int Run() override {
    ssize_t n = SysMsgRcv(id_, area_, capacity_, type_, 0);
    return n < 0 ? -errno : static_cast<int>(n);
  }
  // -> (result, type)
  std::vector<napi_value> Results(Napi::Env env, int result) override {
    if (result < 0) return {};
    return {Napi::Number::New(env, ReceivedType(area_))};
  }

 private:
  int id_;
  std::shared_ptr<v8::BackingStore> memory_;
  uint8_t* area_;
  size_t capacity_;
  long type_;
};

// A blocking msgsnd on a waiter thread; owns a copy of the message.
class SendJob : public BlockingJob {
 public:
  SendJob(int id, long type, Bytes b) : id_(id), length_(b.length) { PackMessage(msg_, type, b.data, b.length); }
  int Run() override { return SysMsgSnd(id_, msg_.data(), length_, 0) < 0 ? -errno : 0; }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  int id_;
  size_t length_;
  std::vector<char> msg_;
};

// msgRcvAsync(id, buffer, offset, type, callback(result, type)) -> job id.
// buffer[offset..] must stay reserved for this job until it ends.
static Napi::Value MsgRcvAsync(const Napi::CallbackInfo& info) {
  Bytes b = ArgBytes(info, 1);
  uint8_t* area;
  size_t capacity;
  if (!ReceiveArea(b, static_cast<size_t>(ArgInt64(info, 2)), &area, &capacity)) return Errno(info.Env(), ERANGE);
  auto job = std::make_unique<ReceiveJob>(ArgInt(info, 0), info[1], area, capacity, static_cast<long>(ArgInt64(info, 3)));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[4].As<Napi::Function>()));
}

// msgSndAsync(id, type, bytes, callback(result)) -> job id
static Napi::Value MsgSndAsync(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<SendJob>(ArgInt(info, 0), static_cast<long>(ArgInt64(info, 1)), ArgBytes(info, 2));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[3].As<Napi::Function>()));
}

void InitMessageQueue(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"mqOpen", MqOpen}, {"mqUnlink", MqUnlink},
      {"mqGetAttr", MqGetAttr}, {"ftok", Ftok}, {"msgGet", MsgGet},
      {"msgStat", MsgStat}, {"msgSetMaxBytes", MsgSetMaxBytes}, {"msgRemove", MsgRemove},
      {"msgRcvAsync", MsgRcvAsync}, {"msgSndAsync", MsgSndAsync}, {"mqSendMany", MqSendMany},
      {"mqReceiveMany", MqReceiveMany}, {"msgSndMany", MsgSndMany}, {"msgRcvMany", MsgRcvMany},
      {"mqReceiveBatch", MqReceiveBatch}, {"msgRcvBatch", MsgRcvBatch}
  });

  ExportDirect(exports, {{"mqSend", MqSend}, {"mqReceive", MqReceive}, {"msgSnd", MsgSnd}, {"msgRcv", MsgRcv}, {"msgRcvInto", MsgRcvInto}});
  exports.Set("mqPrioMax", Napi::Number::New(env, static_cast<double>(sysconf(_SC_MQ_PRIO_MAX))));
}

}  // namespace ipckit
