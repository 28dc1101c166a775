// POSIX message queues (mq_open family) and System V message queues
// (msgget family). Thin wrappers: every function returns >= 0 or -errno.
#include <fcntl.h>
#include <mqueue.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "waiter.h"

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

// The descriptors stay in blocking mode. A "try" passes an absolute
// deadline of 0 (the epoch), which the kernel treats as already expired: the
// call returns at once, with ETIMEDOUT instead of EAGAIN, when it would
// block. So one descriptor serves sync, try and async calls without ever
// toggling O_NONBLOCK.
static const timespec kExpired = {0, 0};

// Runs a mq_* call with the timeout rule: timeout_ms < 0 blocks, 0 tries
// once (after spinning up to spin_us), > 0 spins then waits until the
// deadline.
template <typename F>
static int MqCall(double timeout_ms, double spin_us, const F& call) {
  auto once = [&](const timespec* deadline) {
    int r;
    do r = call(deadline);
    while (r == -EINTR);
    return r;
  };
  // With an expired deadline the kernel answers ETIMEDOUT, or on some paths
  // EAGAIN; both mean "would block" here.
  auto attempt = [&] {
    int r = once(&kExpired);
    return r == -EAGAIN ? -ETIMEDOUT : r;
  };
  int r = -ETIMEDOUT;
  // Without a spin budget a waiting call goes straight to the kernel.
  if (timeout_ms == 0 || spin_us > 0) r = Spin(SpinBudget(timeout_ms, spin_us), ETIMEDOUT, attempt);
  if (r != -ETIMEDOUT || timeout_ms == 0) return r;
  if (timeout_ms < 0) return once(nullptr);
  timespec deadline = RealtimeDeadline(static_cast<int64_t>(timeout_ms));
  int64_t deadline_ns = static_cast<int64_t>(deadline.tv_sec) * 1000000000LL + deadline.tv_nsec;
  for (;;) {
    r = once(&deadline);
    if (r != -EAGAIN) return r;
    if (NowNs(CLOCK_REALTIME) >= deadline_ns) return -ETIMEDOUT;
  }
}

// mqSend(fd, bytes, priority, timeoutMs, spinUs) -> 0
static Napi::Value MqSend(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  unsigned prio = info[2].As<Napi::Number>().Uint32Value();
  const char* data = reinterpret_cast<const char*>(b.data);
  int r = MqCall(ArgDouble(info, 3), ArgDouble(info, 4), [&](const timespec* deadline) {
    int n = deadline ? mq_timedsend(fd, data, b.length, prio, deadline) : mq_send(fd, data, b.length, prio);
    return n < 0 ? -errno : 0;
  });
  return Napi::Number::New(info.Env(), r);
}

// mqReceive(fd, buffer, offset, out: Uint32Array, timeoutMs, spinUs) -> length
// Receives into buffer[offset..]; out[0] = priority.
static Napi::Value MqReceive(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  size_t offset = static_cast<size_t>(ArgInt64(info, 2));
  auto out = info[3].As<Napi::Uint32Array>();
  if (offset > b.length) return Errno(info.Env(), EINVAL);
  char* data = reinterpret_cast<char*>(b.data) + offset;
  size_t capacity = b.length - offset;
  unsigned prio = 0;
  int r = MqCall(ArgDouble(info, 4), ArgDouble(info, 5), [&](const timespec* deadline) {
    ssize_t n = deadline ? mq_timedreceive(fd, data, capacity, &prio, deadline) : mq_receive(fd, data, capacity, &prio);
    return n < 0 ? -errno : static_cast<int>(n);
  });
  if (r >= 0) out[0] = prio;
  return Napi::Number::New(info.Env(), r);
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

// Runs a msgsnd/msgrcv call with the timeout rule: timeout_ms < 0 blocks,
// 0 tries once with IPC_NOWAIT (after spinning up to spin_us), > 0 spins
// then blocks until the deadline. `would_block` is what IPC_NOWAIT reports.
template <typename F>
static int MsgCall(double timeout_ms, double spin_us, int would_block, const F& call) {
  int r = -would_block;
  // Without a spin budget a waiting call goes straight to the kernel.
  if (timeout_ms == 0 || spin_us > 0) r = Spin(SpinBudget(timeout_ms, spin_us), would_block, [&] { return call(IPC_NOWAIT); });
  if (r != -would_block) return r;
  if (timeout_ms == 0) return -ETIMEDOUT;
  return CallWithTimeout([&] { return call(0); }, timeout_ms);
}

// msgSnd(id, type, bytes, timeoutMs, spinUs) -> 0
static Napi::Value MsgSnd(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  long type = static_cast<long>(ArgInt64(info, 1));
  Bytes b = ArgBytes(info, 2);
  // One buffer per thread: a send allocates nothing once it has grown.
  thread_local std::vector<char> msg;
  PackMessage(msg, type, b.data, b.length);
  int r = MsgCall(ArgDouble(info, 3), ArgDouble(info, 4), EAGAIN, [&](int flags) {
    return msgsnd(id, msg.data(), b.length, flags) < 0 ? -errno : 0;
  });
  return Napi::Number::New(info.Env(), r);
}

// msgRcv(id, buffer, offset, typeInOut: Float64Array, timeoutMs, spinUs) -> length
// buffer[offset..] receives a long (the type) then the payload. typeInOut[0]
// is the msgrcv type selector on the way in and the received type on the way
// out. (Six arguments: node-addon-api allocates for more.)
static Napi::Value MsgRcv(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  Bytes b = ArgBytes(info, 1);
  size_t offset = static_cast<size_t>(ArgInt64(info, 2));
  auto io = info[3].As<Napi::Float64Array>();
  long type = static_cast<long>(io[0]);
  if (offset + sizeof(long) > b.length) return Errno(info.Env(), EINVAL);
  uint8_t* msg = b.data + offset;
  size_t capacity = b.length - offset - sizeof(long);
  int r = MsgCall(ArgDouble(info, 4), ArgDouble(info, 5), ENOMSG, [&](int flags) {
    ssize_t n = msgrcv(id, msg, capacity, type, flags);
    return n < 0 ? -errno : static_cast<int>(n);
  });
  if (r >= 0) {
    long got;
    std::memcpy(&got, msg, sizeof(long));
    io[0] = static_cast<double>(got);
  }
  return Napi::Number::New(info.Env(), r);
}

// msgStat(id) -> object, or -errno
static Napi::Value MsgStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  msqid_ds ds{};
  if (msgctl(ArgInt(info, 0), IPC_STAT, &ds) < 0) return Errno(env, errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("key", static_cast<double>(static_cast<uint32_t>(ds.msg_perm.__key)));
  o.Set("uid", static_cast<double>(ds.msg_perm.uid));
  o.Set("gid", static_cast<double>(ds.msg_perm.gid));
  o.Set("cuid", static_cast<double>(ds.msg_perm.cuid));
  o.Set("cgid", static_cast<double>(ds.msg_perm.cgid));
  o.Set("mode", static_cast<double>(ds.msg_perm.mode & 0777));
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

// A blocking msgrcv on a waiter thread.
class ReceiveJob : public BlockingJob {
 public:
  ReceiveJob(int id, size_t capacity, long type)
      : id_(id), type_(type), buffer_(sizeof(long) + capacity) {}
  int Run() override {
    ssize_t n = msgrcv(id_, buffer_.data(), buffer_.size() - sizeof(long), type_, 0);
    return n < 0 ? -errno : static_cast<int>(n);
  }
  // -> (result, bytes, type)
  std::vector<napi_value> Results(Napi::Env env, int result) override {
    if (result < 0) return {};
    long got;
    std::memcpy(&got, buffer_.data(), sizeof(long));
    return {Napi::Buffer<char>::Copy(env, buffer_.data() + sizeof(long), result),
            Napi::Number::New(env, static_cast<double>(got))};
  }

 private:
  int id_;
  long type_;
  std::vector<char> buffer_;
};

// A blocking msgsnd on a waiter thread; owns a copy of the message.
class SendJob : public BlockingJob {
 public:
  SendJob(int id, long type, Bytes b) : id_(id), length_(b.length) { PackMessage(msg_, type, b.data, b.length); }
  int Run() override { return msgsnd(id_, msg_.data(), length_, 0) < 0 ? -errno : 0; }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  int id_;
  size_t length_;
  std::vector<char> msg_;
};

// msgRcvAsync(id, capacity, type, callback(result, bytes, type)) -> job id
static Napi::Value MsgRcvAsync(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<ReceiveJob>(ArgInt(info, 0), static_cast<size_t>(ArgInt64(info, 1)),
                                          static_cast<long>(ArgInt64(info, 2)));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[3].As<Napi::Function>()));
}

// msgSndAsync(id, type, bytes, callback(result)) -> job id
static Napi::Value MsgSndAsync(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<SendJob>(ArgInt(info, 0), static_cast<long>(ArgInt64(info, 1)),
                                       ArgBytes(info, 2));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[3].As<Napi::Function>()));
}

void InitMessageQueue(Napi::Env env, Napi::Object exports) {
  exports.Set("mqOpen", Napi::Function::New(env, MqOpen, "mqOpen"));
  exports.Set("mqUnlink", Napi::Function::New(env, MqUnlink, "mqUnlink"));
  exports.Set("mqSend", Napi::Function::New(env, MqSend, "mqSend"));
  exports.Set("mqReceive", Napi::Function::New(env, MqReceive, "mqReceive"));
  exports.Set("mqGetAttr", Napi::Function::New(env, MqGetAttr, "mqGetAttr"));
  exports.Set("ftok", Napi::Function::New(env, Ftok, "ftok"));
  exports.Set("msgGet", Napi::Function::New(env, MsgGet, "msgGet"));
  exports.Set("msgSnd", Napi::Function::New(env, MsgSnd, "msgSnd"));
  exports.Set("msgRcv", Napi::Function::New(env, MsgRcv, "msgRcv"));
  exports.Set("msgStat", Napi::Function::New(env, MsgStat, "msgStat"));
  exports.Set("msgSetMaxBytes", Napi::Function::New(env, MsgSetMaxBytes, "msgSetMaxBytes"));
  exports.Set("msgRemove", Napi::Function::New(env, MsgRemove, "msgRemove"));
  exports.Set("msgRcvAsync", Napi::Function::New(env, MsgRcvAsync, "msgRcvAsync"));
  exports.Set("msgSndAsync", Napi::Function::New(env, MsgSndAsync, "msgSndAsync"));

  Napi::Object c = Napi::Object::New(env);
  c.Set("O_RDONLY", O_RDONLY);
  c.Set("O_WRONLY", O_WRONLY);
  c.Set("O_RDWR", O_RDWR);
  c.Set("O_CREAT", O_CREAT);
  c.Set("O_EXCL", O_EXCL);
  c.Set("O_CLOEXEC", O_CLOEXEC);
  c.Set("IPC_CREAT", IPC_CREAT);
  c.Set("IPC_EXCL", IPC_EXCL);
  c.Set("MQ_PRIO_MAX", static_cast<double>(sysconf(_SC_MQ_PRIO_MAX)));
  exports.Set("mqConstants", c);
}

}  // namespace ipckit
