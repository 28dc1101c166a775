// Sockets: Unix (stream, datagram, seqpacket; path and abstract names),
// TCP and UDP over IPv4 and IPv6.
//
// Descriptors handed to users (connections, socket pairs, datagram
// sockets) stay blocking, as a child process expects; every attempt ipckit
// makes on them passes MSG_DONTWAIT. Only listening sockets (accept4 has no
// per-call flag) and connecting sockets (until the connection is made) are
// non-blocking. Messages carry descriptors (SCM_RIGHTS) both ways; received
// ones are close-on-exec (MSG_CMSG_CLOEXEC), and a cut-off control message
// closes every descriptor that did arrive.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <limits.h>
#include <string>
#include <vector>

#include "common.h"
#include "packed.h"
#include "spin.h"
#include "sys.h"
#include "v8-bridge.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace ipckit {

namespace {

// The most descriptors one message may carry (SCM_MAX_FD in the kernel).
constexpr int kMaxFds = 253;
// Room for a control message carrying that many.
constexpr size_t kRightsSpace = CMSG_SPACE(sizeof(int) * kMaxFds);

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04  // Linux 6.5: a pidfd of the sender, with SO_PASSPIDFD set on the receiving socket
#endif

// Room for what may come with a received message: the most descriptors,
// credentials (SO_PASSCRED) and a pidfd (SO_PASSPIDFD), either of which
// whoever else holds the socket may have turned on.
constexpr size_t kReceiveControl = kRightsSpace + CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int));

// Walks the control messages of a received message: each descriptor of
// SCM_RIGHTS is handed to `take(fd)`, which keeps it or closes it. A pidfd
// (SCM_PIDFD) is closed at once: ipckit never asks for one.
template <typename F>
void ReceivedFds(msghdr& msg, const F& take) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != SCM_PIDFD)) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* in = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < n; i++) {
      int got;
      memcpy(&got, in + i, sizeof got);
      if (c->cmsg_type == SCM_RIGHTS) take(got);
      else close(got);
    }
  }
}

// Puts the descriptors of `fds` (an Int32Array; anything else: none) in
// msg's control buffer `control` (kRightsSpace bytes) as SCM_RIGHTS.
// False when there are more than the kernel passes in one message.
bool AttachRights(msghdr& msg, char* control, const int32_t* fds, size_t n) {
  if (n > static_cast<size_t>(kMaxFds)) return false;
  if (n == 0) return true;
  memset(control, 0, kRightsSpace);
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  return true;
}

bool AttachRights(msghdr& msg, char* control, const Napi::Value& fds) {
  if (!fds.IsTypedArray()) return true;
  auto list = fds.As<Napi::Int32Array>();
  return AttachRights(msg, control, list.Data(), list.ElementLength());
}

// socketOpen(domain, type, nonBlocking) -> fd (close-on-exec)
Napi::Value SocketOpen(const Napi::CallbackInfo& info) {
  int type = ArgInt(info, 1) | SOCK_CLOEXEC | (info[2].As<Napi::Boolean>().Value() ? SOCK_NONBLOCK : 0);
  return SysResult(info.Env(), socket(ArgInt(info, 0), type, 0));
}

// socketPair(type) -> [fd, fd] (Unix, close-on-exec, blocking) or -errno
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, ArgInt(info, 0) | SOCK_CLOEXEC, 0, fds) < 0) return Errno(info.Env(), errno);
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, fds[0]);
  result.Set(1u, fds[1]);
  return result;
}

Napi::Value AddressBuffer(Napi::Env env, const void* addr, socklen_t length) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(addr), length);
}

// unixAddress(name, abstract) -> a sockaddr_un of exactly the name's
// length (abstract: a leading NUL and no terminator), or -ENAMETOOLONG
Napi::Value UnixAddress(const Napi::CallbackInfo& info) {
  Bytes name = ArgBytes(info, 0);
  bool abstract = info[1].As<Napi::Boolean>().Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t room = sizeof addr.sun_path - 1;  // a path's terminator, or an abstract name's leading NUL
  if (name.length > room) return Errno(info.Env(), ENAMETOOLONG);
  if (abstract) {
    memcpy(addr.sun_path + 1, name.data, name.length);
    return AddressBuffer(info.Env(), &addr, offsetof(sockaddr_un, sun_path) + 1 + name.length);
  }
  memcpy(addr.sun_path, name.data, name.length);
  return AddressBuffer(info.Env(), &addr, offsetof(sockaddr_un, sun_path) + name.length + 1);
}

// unixAutobind() -> the address that asks the kernel for an abstract name of its choosing
Napi::Value UnixAutobind(const Napi::CallbackInfo& info) {
  sa_family_t family = AF_UNIX;
  return AddressBuffer(info.Env(), &family, sizeof family);
}

// inetAddress(host, port, zone) -> a sockaddr_in or sockaddr_in6; -EINVAL
// for a host that is no literal, -ENODEV for an unknown zone
Napi::Value InetAddress(const Napi::CallbackInfo& info) {
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = ArgInt(info, 1);
  std::string zone = info[2].As<Napi::String>().Utf8Value();
  sockaddr_in in4{};
  if (inet_pton(AF_INET, host.c_str(), &in4.sin_addr) == 1) {
    in4.sin_family = AF_INET;
    in4.sin_port = htons(static_cast<uint16_t>(port));
    return AddressBuffer(info.Env(), &in4, sizeof in4);
  }
  sockaddr_in6 in6{};
  if (inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) != 1) return Errno(info.Env(), EINVAL);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(static_cast<uint16_t>(port));
  if (!zone.empty()) {
    char* end = nullptr;
    unsigned long index = strtoul(zone.c_str(), &end, 10);
    if (end == nullptr || *end != '\0') index = if_nametoindex(zone.c_str());
    if (index == 0) return Errno(info.Env(), ENODEV);
    in6.sin6_scope_id = static_cast<uint32_t>(index);
  }
  return AddressBuffer(info.Env(), &in6, sizeof in6);
}

// decodeAddress(sockaddr) -> ['unix', nameBytes, abstract] | ['inet', host, port, version, zone] | ['unnamed']
Napi::Value DecodeAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = ArgBytes(info, 0);
  Napi::Array out = Napi::Array::New(env);
  sockaddr_storage ss{};
  memcpy(&ss, b.data, b.length < sizeof ss ? b.length : sizeof ss);
  if (b.length < sizeof(sa_family_t)) {
    out.Set(0u, "unnamed");
    return out;
  }
  if (ss.ss_family == AF_UNIX) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    size_t n = b.length - offsetof(sockaddr_un, sun_path);
    if (n == 0) {
      out.Set(0u, "unnamed");
      return out;
    }
    bool abstract = un->sun_path[0] == '\0';
    const char* start = un->sun_path + (abstract ? 1 : 0);
    size_t len = abstract ? n - 1 : strnlen(un->sun_path, n);
    out.Set(0u, "unix");
    out.Set(1u, Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(start), len));
    out.Set(2u, Napi::Boolean::New(env, abstract));
    return out;
  }
  char text[INET6_ADDRSTRLEN] = "";
  char zone[IF_NAMESIZE] = "";
  if (ss.ss_family == AF_INET) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    out.Set(0u, "inet");
    out.Set(1u, text);
    out.Set(2u, ntohs(in4->sin_port));
    out.Set(3u, 4);
    out.Set(4u, "");
    return out;
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    if (in6->sin6_scope_id != 0 && if_indextoname(in6->sin6_scope_id, zone) == nullptr) {
      snprintf(zone, sizeof zone, "%u", in6->sin6_scope_id);
    }
    out.Set(0u, "inet");
    out.Set(1u, text);
    out.Set(2u, ntohs(in6->sin6_port));
    out.Set(3u, 6);
    out.Set(4u, zone);
    return out;
  }
  out.Set(0u, "unnamed");
  return out;
}

// bind(fd, sockaddr) -> 0
Napi::Value Bind(const Napi::CallbackInfo& info) {
  Bytes a = ArgBytes(info, 1);
  return SysResult(info.Env(), bind(ArgInt(info, 0), reinterpret_cast<sockaddr*>(a.data), static_cast<socklen_t>(a.length)));
}

// connect(fd, sockaddr) -> 0, -EINPROGRESS (in progress), -EAGAIN (a
// Unix listener's backlog is full: nothing started, try again)
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Bytes a = ArgBytes(info, 1);
  int r;
  do r = connect(ArgInt(info, 0), reinterpret_cast<sockaddr*>(a.data), static_cast<socklen_t>(a.length));
  while (r < 0 && errno == EINTR);
  return SysResult(info.Env(), r);
}

// listen(fd, backlog) -> 0
Napi::Value Listen(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), listen(ArgInt(info, 0), ArgInt(info, 1)));
}

// accept(fd) -> a blocking, close-on-exec connection, or -errno (-EAGAIN:
// none waiting; a connection reset before it was taken counts as none)
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int r;
  do r = accept4(ArgInt(info, 0), nullptr, nullptr, SOCK_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == ECONNABORTED) return Errno(info.Env(), EAGAIN);
  return SysResult(info.Env(), r);
}

// socketName(fd, peer) -> the bound (or peer) address, or -errno
Napi::Value SocketName(const Napi::CallbackInfo& info) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int fd = ArgInt(info, 0);
  int r = info[1].As<Napi::Boolean>().Value() ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                                               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) return Errno(info.Env(), errno);
  return AddressBuffer(info.Env(), &ss, len < sizeof ss ? len : sizeof ss);
}

// getSockOpt(fd, level, name) -> the integer value, or -errno
Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, &len) < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), value);
}

// setSockOpt(fd, level, name, value) -> 0
Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  int value = ArgInt(info, 3);
  return SysResult(info.Env(), setsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, sizeof value));
}

// peerCredentials(fd, out Int32Array[3]) -> 0 with out = [pid, uid, gid]
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(ArgInt(info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Errno(info.Env(), errno);
  auto out = info[1].As<Napi::Int32Array>();
  if (out.ElementLength() < 3) return Errno(info.Env(), ERANGE);
  out[0] = cred.pid;
  out[1] = static_cast<int32_t>(cred.uid);
  out[2] = static_cast<int32_t>(cred.gid);
  return Napi::Number::New(info.Env(), 0);
}

// peerPidfd(fd) -> a pid file descriptor of the peer (close-on-exec), or
// -errno (-ENOPROTOOPT: the kernel predates SO_PEERPIDFD)
Napi::Value PeerPidfd(const Napi::CallbackInfo& info) {
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(ArgInt(info, 0), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), pidfd);
}

// queuedBytes(fd) -> FIONREAD: for a datagram socket the size of the next
// datagram, for a stream or seqpacket socket every byte queued
Napi::Value QueuedBytes(const Napi::CallbackInfo& info) {
  int n = 0;
  if (ioctl(ArgInt(info, 0), FIONREAD, &n) < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), n);
}

// The full length of the next datagram queued on fd (MSG_PEEK | MSG_TRUNC
// with no room: nothing is taken, no descriptor installed), -EAGAIN when
// none is, or -errno. Unlike FIONREAD, it tells an empty queue from an
// empty datagram.
int NextDatagramLength(int fd) {
  ssize_t n;
  do n = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
}

// datagramSize(fd, spinUs) -> NextDatagramLength, after spinning up to
// spinUs while none is queued.
Napi::Value DatagramSize(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  return Napi::Number::New(info.Env(), Spin(ArgDouble(info, 1), EAGAIN, [&] { return NextDatagramLength(fd); }));
}

// shutdown(fd, how) -> 0
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), shutdown(ArgInt(info, 0), ArgInt(info, 1)));
}

// One sendmsg that never blocks (MSG_DONTWAIT) and never raises SIGPIPE,
// repeated on EAGAIN for up to spin_us: bytes sent, or -errno.
int SendOnce(int fd, const msghdr& msg, double spin_us) {
  return Spin(spin_us, EAGAIN, [&] {
    ssize_t n;
    do n = SysSendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
  });
}

// sendMsg(fd, data, offset, length, fds | null, to | null, spinUs
// [, head, headOffset]) -> bytes sent (head's first), or -errno. `head`
// (a frame's length prefix) goes in the same call, before the data. Never
// blocks (MSG_DONTWAIT) and never raises SIGPIPE.
void SendMsg(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int fd = args.Int(0);
  Bytes buffer = args.Bytes(1);
  int64_t offset = args.Int64(2);
  int64_t length = args.Int64(3);
  DirectArgs::Ints fds = args.Int32s(4, true);
  Bytes to = args.OptionalBytes(5);
  double spin_us = args.Number(6);
  bool has_head = args.Length() > 8 && !info[7]->IsNullOrUndefined();
  Bytes head = has_head ? args.Bytes(7) : Bytes{nullptr, 0};
  int64_t head_offset = has_head ? args.Int64(8) : 0;
  if (!args.ok()) return;
  Bytes data;
  Bytes head_left{nullptr, 0};
  if (!InRange(buffer, offset, length, &data) || !InRange(head, head_offset, static_cast<int64_t>(head.length) - head_offset, &head_left)) {
    return args.Return(-ERANGE);
  }
  iovec iov[2];
  int parts = 0;
  if (head_left.length > 0) iov[parts++] = iovec{head_left.data, head_left.length};
  iov[parts++] = iovec{data.data, data.length};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = parts;
  alignas(cmsghdr) char control[kRightsSpace];
  if (!AttachRights(msg, control, fds.data, fds.length)) return args.Return(-ETOOMANYREFS);
  if (to.data != nullptr) {
    msg.msg_name = to.data;
    msg.msg_namelen = static_cast<socklen_t>(to.length);
  }
  args.Return(SendOnce(fd, msg, spin_us));
}

// sendParts(fd, parts: Uint8Array[], fds | null, spinUs) -> bytes sent, or
// -errno: the parts in order in one sendmsg (at most IOV_MAX of them),
// descriptors with the first byte. Never blocks, never raises SIGPIPE.
Napi::Value SendParts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  auto parts = info[1].As<Napi::Array>();
  uint32_t count = parts.Length();
  if (count > IOV_MAX) return Errno(env, EINVAL);
  std::vector<iovec> iov(count);
  for (uint32_t i = 0; i < count; i++) {
    auto part = parts.Get(i).As<Napi::Uint8Array>();
    iov[i] = iovec{part.Data(), part.ByteLength()};
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  alignas(cmsghdr) char control[kRightsSpace];
  if (!AttachRights(msg, control, info[2])) return Errno(env, ETOOMANYREFS);
  return Napi::Number::New(env, SendOnce(fd, msg, ArgDouble(info, 3)));
}

// recvMsg(fd, buffer, offset, length, fdsOut Int32Array(253), from | null,
// meta Int32Array(3), flags, spinUs) -> bytes received (with MSG_TRUNC in
// flags, a datagram's full length), 0 at the end of a stream, or -errno.
// meta = [msg_flags, descriptors received, address length]. With
// MSG_CTRUNC in msg_flags, every descriptor that arrived is already closed.
void RecvMsg(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int fd = args.Int(0);
  Bytes buffer = args.Bytes(1);
  int64_t offset = args.Int64(2);
  int64_t length = args.Int64(3);
  DirectArgs::Ints fds_out = args.Int32s(4);
  Bytes from_out = args.OptionalBytes(5);
  DirectArgs::Ints meta = args.Int32s(6);
  int flags = args.Int(7);
  double spin_us = args.Number(8);
  if (!args.ok()) return;
  Bytes into;
  if (!InRange(buffer, offset, length, &into)) return args.Return(-ERANGE);
  if (meta.length < 3 || fds_out.length < static_cast<size_t>(kMaxFds)) return args.Return(-ERANGE);
  iovec iov{into.data, into.length};
  msghdr msg{};
  alignas(cmsghdr) char control[kReceiveControl];
  sockaddr_storage from{};
  // A peek never takes descriptors: with no room for them, the kernel installs none.
  bool peek = (flags & MSG_PEEK) != 0;
  int r = Spin(spin_us, EAGAIN, [&] {
    msg = msghdr{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = peek ? nullptr : control;
    msg.msg_controllen = peek ? 0 : sizeof control;
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    ssize_t n;
    do n = SysRecvmsg(fd, &msg, flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
  });
  int received = 0;
  if (r >= 0) {
    bool cut = !peek && (msg.msg_flags & MSG_CTRUNC) != 0;
    if (peek) msg.msg_flags &= ~MSG_CTRUNC;
    ReceivedFds(msg, [&](int got) {
      if (cut || received >= kMaxFds) close(got);
      else fds_out.data[received++] = got;
    });
    if (cut) {
      for (int i = 0; i < received; i++) close(fds_out.data[i]);
      received = 0;
    }
    meta.data[0] = msg.msg_flags;
    meta.data[1] = received;
    meta.data[2] = static_cast<int32_t>(msg.msg_namelen);
    if (from_out.data != nullptr) {
      size_t n = msg.msg_namelen < from_out.length ? msg.msg_namelen : from_out.length;
      memcpy(from_out.data, &from, n < sizeof from ? n : sizeof from);
    }
  }
  args.Return(r);
}

// sendMmsg(fd, list: Uint8Array[] | packed, to: Uint8Array | null, next: Uint32Array(1), spinUs[, lengths, count[, timeoutMs]])
//   -> messages sent (> 0), -EAGAIN (none), or -errno (none).
// Sends list[next[0]..] as one datagram (or seqpacket message) each, by
// sendmmsg in groups of up to 1024, all to `to` (null: the connected peer),
// and moves next[0] past what went. A sendmmsg that finds no room spins:
// the call's first as a single send would, the later ones while the call
// may still spin (BatchSpin, bounded by `timeoutMs` when given); an
// error after some went ends the call with their count (the next call
// reports it). Never blocks (MSG_DONTWAIT), never raises SIGPIPE.
Napi::Value SendMmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  Elements list(info, 1, 5);  // an array, or a packed batch with its lengths and count at 5 and 6
  if (!list.Valid()) return Errno(env, EINVAL);
  Bytes to{nullptr, 0};
  if (info[2].IsTypedArray()) to = ArgBytes(info, 2);
  auto next = info[3].As<Napi::Uint32Array>();
  double spin_us = ArgDouble(info, 4);
  constexpr uint32_t kGroup = 1024;
  const uint32_t total = list.Length();
  uint32_t index = next[0];
  int sent = 0;
  // info[7], when there: the call's timeout, which bounds its spinning for room (see BatchSpin).
  BatchSpin later(info.Length() > 7 && info[7].IsNumber() ? ArgDouble(info, 7) : 0, spin_us);
  std::vector<mmsghdr> msgs;
  std::vector<iovec> iov;
  while (index < total) {
    uint32_t count = total - index < kGroup ? total - index : kGroup;
    msgs.assign(count, mmsghdr{});
    iov.resize(count);
    uint32_t ready = 0;
    for (; ready < count; ready++) {
      Bytes b;
      if (!list.Get(index + ready, &b)) break;  // what precedes it goes; the next call reports it
      iov[ready] = iovec{b.data, b.length};
      msghdr& h = msgs[ready].msg_hdr;
      h.msg_iov = &iov[ready];
      h.msg_iovlen = 1;
      h.msg_name = to.data;
      h.msg_namelen = static_cast<socklen_t>(to.length);
    }
    if (ready == 0) {
      if (sent > 0) break;
      return Errno(env, EINVAL);
    }
    auto once = [&] {
      int n;
      do n = SysSendmmsg(fd, msgs.data(), ready, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      return n < 0 ? -errno : n;
    };
    int r = sent == 0 ? Spin(spin_us, EAGAIN, once) : Spin([&] { return later.Left(); }, EAGAIN, once);
    if (r < 0) {
      if (sent > 0) break;
      return Errno(env, -r);
    }
    index += static_cast<uint32_t>(r);
    sent += r;
    later.Progress();
    if (static_cast<uint32_t>(r) < count && later.Left() == 0) break;
  }
  next[0] = index;
  return Napi::Number::New(env, sent);
}

// The bookkeeping of received message i (recvMmsg, recvDatagrams): its
// descriptors go to fdsOut after those of the messages before it (*filled
// of them; all closed when the kernel cut them: MSG_CTRUNC), and its
// entries of io: its length, msg_flags, descriptor count, address length.
void RecordReceived(msghdr& h, uint32_t length, size_t i, Napi::Uint32Array& io, Napi::Int32Array& fds_out, size_t* filled) {
  bool cut = (h.msg_flags & MSG_CTRUNC) != 0;
  uint32_t received = 0;
  ReceivedFds(h, [&](int got) {
    if (cut || received >= static_cast<uint32_t>(kMaxFds)) close(got);
    else fds_out[*filled + received++] = got;
  });
  if (cut) {
    for (uint32_t k = 0; k < received; k++) close(fds_out[*filled + k]);
    received = 0;
  }
  *filled += received;
  io[1 + 4 * i] = length;
  io[2 + 4 * i] = static_cast<uint32_t>(h.msg_flags);
  io[3 + 4 * i] = received;
  io[4 + 4 * i] = h.msg_namelen;
}

// recvMmsg(fd, scratch, slot, io: Uint32Array, from: Uint8Array, fdsOut: Int32Array, spinUs)
//   -> messages received (> 0), -EAGAIN (none), or -errno.
// One recvmmsg of up to io[0] datagrams (or seqpacket messages), bounded by
// what scratch (`slot` bytes each), from (128 bytes each) and, when fdsOut
// is not empty, fdsOut (the most descriptors per message each) hold.
// Message i lands at scratch[i * slot]; io[1 + 4i] is its length (its full
// length, even when it was longer than the slot: MSG_TRUNC), io[2 + 4i] its
// msg_flags, io[3 + 4i] how many descriptors it brought (after those of the
// messages before it in fdsOut), io[4 + 4i] its sender address's length (at
// from[i * 128]). Without descriptor room, none is accepted (the kernel
// closes them and sets MSG_CTRUNC). With MSG_CTRUNC, every descriptor of
// that message that did arrive is closed.
// The arrays recvMmsg and recvDatagrams write into, from argument `first`
// on: io (Uint32Array, room for one message), from (bytes), fdsOut
// (Int32Array); anything else, or a detached array, and they refuse.
bool ReceiveArrays(const Napi::CallbackInfo& info, size_t first) {
  return ArgIsTyped(info, 1, napi_uint8_array) && ArgIsTyped(info, first, napi_uint32_array) &&
         info[first].As<Napi::Uint32Array>().ElementLength() >= 5 && ArgIsTyped(info, first + 1, napi_uint8_array) &&
         ArgIsTyped(info, first + 2, napi_int32_array);
}

Napi::Value RecvMmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ReceiveArrays(info, 3)) return Errno(env, ERANGE);
  int fd = ArgInt(info, 0);
  Bytes scratch = ArgBytes(info, 1);
  size_t slot = static_cast<size_t>(ArgInt64(info, 2));
  auto io = info[3].As<Napi::Uint32Array>();
  Bytes from = ArgBytes(info, 4);
  auto fds_out = info[5].As<Napi::Int32Array>();
  constexpr size_t kAddr = 128;
  static_assert(sizeof(sockaddr_storage) <= kAddr, "an address slot holds any address");
  constexpr size_t kControl = kReceiveControl;
  size_t want = io[0];
  if (slot == 0) return Errno(env, EINVAL);
  if (scratch.length / slot < want) want = scratch.length / slot;
  if (from.length / kAddr < want) want = from.length / kAddr;
  if ((io.ElementLength() - 1) / 4 < want) want = (io.ElementLength() - 1) / 4;
  bool rights = fds_out.ElementLength() > 0;
  if (rights && fds_out.ElementLength() / kMaxFds < want) want = fds_out.ElementLength() / kMaxFds;
  if (want > 1024) want = 1024;
  if (want == 0) return Errno(env, ERANGE);
  std::vector<mmsghdr> msgs(want);
  std::vector<iovec> iov(want);
  std::vector<char> control(rights ? want * kControl : 0);
  auto prepare = [&] {
    for (size_t i = 0; i < want; i++) {
      iov[i] = iovec{scratch.data + i * slot, slot};
      msghdr& h = msgs[i].msg_hdr;
      h = msghdr{};
      h.msg_iov = &iov[i];
      h.msg_iovlen = 1;
      h.msg_name = from.data + i * kAddr;
      h.msg_namelen = kAddr;
      if (rights) {
        h.msg_control = control.data() + i * kControl;
        h.msg_controllen = kControl;
      }
      msgs[i].msg_len = 0;
    }
  };
  int r = Spin(ArgDouble(info, 6), EAGAIN, [&] {
    prepare();
    int n;
    do n = SysRecvmmsg(fd, msgs.data(), static_cast<unsigned>(want), MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC, nullptr);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
  });
  if (r <= 0) return Napi::Number::New(env, r);
  size_t filled = 0;
  for (int i = 0; i < r; i++) RecordReceived(msgs[i].msg_hdr, msgs[i].msg_len, i, io, fds_out, &filled);
  return Napi::Number::New(env, r);
}

// recvDatagrams(fd, scratch, io: Uint32Array, from: Uint8Array, fdsOut: Int32Array, max, spinUs)
//   -> datagrams received (> 0), -EAGAIN (none queued), -EMSGSIZE (the
//   next is larger than all of scratch: io[1] is its size), or -errno.
// recvMmsg for datagrams of any size up to `max`, where slots of `max`
// bytes would not do: one recvmsg each, up to io[0] of them, in one call
// into the addon. Datagram i lands in scratch right after datagram i - 1,
// each first measured by a peek (MSG_PEEK | MSG_TRUNC with no room: the
// next datagram's full length), so none is cut: the next one larger than
// the room left stays queued. io,
// from and fdsOut as for recvMmsg (lengths are full lengths: MSG_TRUNC).
// The batch ends after a datagram that is not placed whole: one over
// `max` (taken with no room, to be discarded), one longer than the room it
// got (MSG_TRUNC: another reader took the datagram the peek measured) and
// one whose descriptors the kernel cut (MSG_CTRUNC). Only the first
// recvmsg spins. On return io[0] is 1 when the call stopped at a datagram
// that did not fit the room left (a next call with the area emptied takes
// it), else 0.
Napi::Value RecvDatagrams(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ReceiveArrays(info, 2)) return Errno(env, ERANGE);
  int fd = ArgInt(info, 0);
  Bytes scratch = ArgBytes(info, 1);
  auto io = info[2].As<Napi::Uint32Array>();
  Bytes from = ArgBytes(info, 3);
  auto fds_out = info[4].As<Napi::Int32Array>();
  double max = ArgDouble(info, 5);
  constexpr size_t kAddr = 128;
  size_t want = io[0];
  if (from.length / kAddr < want) want = from.length / kAddr;
  if ((io.ElementLength() - 1) / 4 < want) want = (io.ElementLength() - 1) / 4;
  if (fds_out.ElementLength() / kMaxFds < want) want = fds_out.ElementLength() / kMaxFds;
  if (want == 0 || !(max >= 0)) return Errno(env, ERANGE);
  alignas(cmsghdr) char control[kReceiveControl];
  size_t at = 0;
  size_t filled = 0;
  int count = 0;
  bool room = false;
  for (size_t i = 0; i < want; i++) {
    iovec iov{};
    msghdr h{};
    size_t next = 0;
    // -EMSGSIZE: the next datagram does not fit the room left; else recvmsg's result.
    auto once = [&]() -> int {
      // (Not FIONREAD, which says 0 for both an empty queue and an empty datagram: one that came between it and
      // the recvmsg could be cut.)
      int queued = NextDatagramLength(fd);
      if (queued < 0) return queued;
      next = static_cast<size_t>(queued);
      bool discard = static_cast<double>(next) > max;
      if (!discard && next > scratch.length - at) return -EMSGSIZE;
      // All the room left (not just `next`): a datagram other than the one measured still fits if it can.
      iov = iovec{scratch.data + at, discard ? 0 : scratch.length - at};
      h = msghdr{};
      h.msg_iov = &iov;
      h.msg_iovlen = 1;
      h.msg_name = from.data + i * kAddr;
      h.msg_namelen = kAddr;
      h.msg_control = control;
      h.msg_controllen = sizeof control;
      ssize_t n;
      do n = SysRecvmsg(fd, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
      while (n < 0 && errno == EINTR);
      return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
    };
    int r = i == 0 ? Spin(ArgDouble(info, 6), EAGAIN, once) : once();
    if (r < 0) {
      if (count == 0) {
        if (r == -EMSGSIZE) io[1] = static_cast<uint32_t>(next > UINT32_MAX ? UINT32_MAX : next);
        return Errno(env, -r);
      }
      room = r == -EMSGSIZE;
      break;
    }
    RecordReceived(h, static_cast<uint32_t>(r), i, io, fds_out, &filled);
    count++;
    if ((h.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<double>(r) > max) break;
    at += static_cast<size_t>(r);
  }
  // Whether the batch stopped at a datagram the room left could not hold (more are queued).
  io[0] = room ? 1 : 0;
  return Napi::Number::New(env, count);
}


// Why recvPackets stopped (io[3]); io[4] says more where noted.
enum PacketStop {
  kPacketsDone = 0,      // the batch's slots are full, or nothing more is queued now
  kPacketTooLarge = 1,   // a message of io[4] bytes, over the maximum, was taken and discarded
  kPacketCut = 2,        // a message's descriptors were cut (MSG_CTRUNC): taken and discarded
  kPacketEmpty = 3,      // a message of no bytes and no descriptors was taken, not placed: an empty message, or the end
  kPacketNoRoom = 4,     // the next message, io[4] bytes, is larger than the room left: it stays queued
  kPacketFailed = 5,     // recvmsg failed with errno io[4]
  kPacketLost = 6,       // a message of io[4] bytes was longer than the room it was given (another reader took messages)
};

// Where recvPackets writes each sender's address, when asked: slots of
// kSenderSlot bytes, the sockaddr first, its length (little-endian 32 bits)
// at kSenderLength.
constexpr size_t kSenderLength = sizeof(sockaddr_storage);
constexpr size_t kSenderSlot = kSenderLength + 8;

// One recvmsg of the next message into [at, at + length), MSG_TRUNC (its
// full length is returned), never blocking. Every descriptor it brought is
// closed: a batch has no place for them. `fds` says how many came, `cut`
// whether the kernel cut them (MSG_CTRUNC). `sender` (a kSenderSlot slot,
// or null) receives the sender's address.
int TakePacket(int fd, uint8_t* at, size_t length, int* fds, bool* cut, uint8_t* sender = nullptr) {
  iovec iov{at, length};
  alignas(cmsghdr) char control[kReceiveControl];
  sockaddr_storage from;
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (sender != nullptr) {
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
  }
  ssize_t n;
  do n = SysRecvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (sender != nullptr) {
    uint32_t named = msg.msg_namelen < sizeof from ? msg.msg_namelen : sizeof from;
    std::memcpy(sender, &from, named);
    for (int i = 0; i < 4; i++) sender[kSenderLength + i] = static_cast<uint8_t>(named >> (8 * i));
  }
  *fds = 0;
  *cut = (msg.msg_flags & MSG_CTRUNC) != 0;
  ReceivedFds(msg, [&](int got) {
    close(got);
    (*fds)++;
  });
  return static_cast<int>(n > INT_MAX ? INT_MAX : n);
}

// recvPackets(fd, data, lengths: Uint32Array, io: Float64Array(5 or 6), spinUs[, senders: Uint8Array])
//   -> messages placed (>= 0), or -EINVAL for a batch out of range.
// Receives seqpacket messages (or datagrams, with io[5] = 1) straight into a packed batch: io[0] messages
// of io[1] bytes are in it already; message i goes to data[io[1]..], its
// length to lengths[io[0]], and io[0], io[1] advance. None is longer than
// io[2] (maxMessageSize). The call stops when the slots are full, when
// nothing more is queued, or at a message it does not place, and says why
// in io[3] (PacketStop) and io[4]. Only the first receive waits, spinning
// up to spinUs; none blocks.
//
// A message must never meet less room than its length (the kernel would
// cut it), and FIONREAD on seqpacket counts the bytes of every message
// queued: while what it counted fits in the room left, the next message
// fits too and is received at once; otherwise its length is peeked first
// (MSG_PEEK | MSG_TRUNC), one more system call (as for an empty message,
// which FIONREAD does not count). Messages are counted from the front of
// the queue, so this holds unless another process receives from the same
// socket meanwhile (kPacketLost then says so).
//
// Datagrams: while the room left holds more than io[2] bytes, each is
// received straight into it, one recvmsg a datagram; once it holds less,
// each is measured first (FIONREAD counts the next datagram only), as a
// seqpacket message is when the room is short. A
// datagram of no bytes is a message like any other (on seqpacket, one with
// no descriptors is the end, or an empty message: kPacketEmpty). With
// `senders`, the address of the i-th datagram this call places goes to its
// slot i (kSenderSlot bytes each), and the call stops (kPacketsDone) when
// the slots are used up.
Napi::Value RecvPackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  auto io = info[3].As<Napi::Float64Array>();
  if (io.ElementLength() < 5) return Errno(env, EINVAL);
  PackedReceive batch = ReceiveState(info, io);
  if (!batch.Valid()) return Errno(env, EINVAL);
  const double max = io[2];
  const bool datagrams = io.ElementLength() > 5 && io[5] == 1;
  double spin_us = ArgDouble(info, 4);
  uint8_t* senders = nullptr;
  size_t sender_slots = 0;
  if (info.Length() > 5 && info[5].IsTypedArray()) {
    Bytes area = ArgBytes(info, 5);
    senders = area.data;
    sender_slots = area.length / kSenderSlot;
    if (sender_slots == 0) return Errno(env, EINVAL);
  }
  int placed = 0;
  PacketStop why = kPacketsDone;
  double detail = 0;
  int64_t counted = 0;  // bytes of the messages FIONREAD counted that are still queued
  auto peek = [&] {
    iovec iov{nullptr, 0};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n;
    do n = SysRecvmsg(fd, &msg, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<int>(n > INT_MAX ? INT_MAX : n);
  };
  // A seqpacket peer that closes with messages of ours unread leaves ECONNRESET, which the next receive reports (and
  // clears) before the messages it sent that are still queued: taken once, it is looked past. (On a datagram socket
  // it says that a peer dropped datagrams sent to it: reported, as by a single receive.)
  bool reset = false;
  // A peek or receive failed with -errno `r`: true to try again (past a first ECONNRESET); false to stop, with why
  // and detail said unless nothing is queued now.
  auto failed = [&](int r) {
    if (r == -ECONNRESET && !reset && !datagrams) return reset = true;
    if (r != -EAGAIN) {
      why = kPacketFailed;
      detail = -r;
    }
    return false;
  };
  while (batch.count < batch.slots && (senders == nullptr || static_cast<size_t>(placed) < sender_slots)) {
    size_t room = batch.data.length - batch.size;
    // A datagram goes straight into room that holds more than the largest one the socket accepts: no FIONREAD, no
    // peek. One over the maximum is still seen whole (MSG_TRUNC gives its real length), and discarded.
    const bool direct = datagrams && static_cast<double>(room) > max;
    if (counted <= 0 && !direct) {
      int queued = 0;
      counted = ioctl(fd, FIONREAD, &queued) == 0 && queued > 0 ? queued : 0;
    }
    size_t length = room;
    if (!direct && (counted <= 0 || static_cast<size_t>(counted) > room)) {
      int next = Spin(placed == 0 ? spin_us : 0, EAGAIN, peek);
      if (next < 0) {
        if (failed(next)) continue;
        break;
      }
      if (next <= max && static_cast<size_t>(next) > room) {
        why = kPacketNoRoom;
        detail = next;
        break;
      }
      // One over the maximum is taken into no room at all, and discarded. One that fits is given all the room
      // left: if another reader took the one peeked, the next is cut only when the room cannot hold it.
      length = next <= max ? room : 0;
    }
    int fds = 0;
    bool cut = false;
    auto take = [&] {
      return TakePacket(fd, batch.data.data + batch.size, length, &fds, &cut, senders == nullptr ? nullptr : senders + placed * kSenderSlot);
    };
    int n = direct ? Spin(placed == 0 ? spin_us : 0, EAGAIN, take) : take();
    if (n < 0) {
      if (failed(n)) continue;
      break;
    }
    // (A datagram socket's count was of that datagram only: the next one is measured again.)
    counted = datagrams ? 0 : counted - n;
    if (cut) {
      why = kPacketCut;
      break;
    }
    if (n > max || static_cast<size_t>(n) > length) {
      why = n > max ? kPacketTooLarge : kPacketLost;
      detail = n;
      break;
    }
    if (n == 0 && fds == 0 && !datagrams) {
      why = kPacketEmpty;
      break;
    }
    batch.Placed(static_cast<size_t>(n));
    placed++;
  }
  io[0] = static_cast<double>(batch.count);
  io[1] = static_cast<double>(batch.size);
  io[3] = why;
  io[4] = detail;
  return Napi::Number::New(env, placed);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"socketOpen", SocketOpen}, {"socketPair", SocketPair}, {"unixAddress", UnixAddress},
      {"unixAutobind", UnixAutobind}, {"inetAddress", InetAddress}, {"decodeAddress", DecodeAddress},
      {"bind", Bind}, {"connect", Connect}, {"listen", Listen}, {"accept", Accept}, {"socketName", SocketName},
      {"getSockOpt", GetSockOpt}, {"setSockOpt", SetSockOpt}, {"peerCredentials", PeerCredentials},
      {"peerPidfd", PeerPidfd}, {"queuedBytes", QueuedBytes}, {"shutdown", Shutdown}, {"sendParts", SendParts},
      {"sendMmsg", SendMmsg}, {"recvMmsg", RecvMmsg}, {"recvDatagrams", RecvDatagrams}, {"datagramSize", DatagramSize}, {"recvPackets", RecvPackets},
  });
  ExportDirect(exports, {{"sendMsg", SendMsg}, {"recvMsg", RecvMsg}});
  Napi::Object c = Napi::Object::New(env);
  c.Set("AF_UNIX", static_cast<double>(AF_UNIX));
  c.Set("AF_INET", static_cast<double>(AF_INET));
  c.Set("AF_INET6", static_cast<double>(AF_INET6));
  c.Set("SOCK_STREAM", static_cast<double>(SOCK_STREAM));
  c.Set("SOCK_DGRAM", static_cast<double>(SOCK_DGRAM));
  c.Set("SOCK_SEQPACKET", static_cast<double>(SOCK_SEQPACKET));
  c.Set("SOL_SOCKET", static_cast<double>(SOL_SOCKET));
  c.Set("SO_ERROR", static_cast<double>(SO_ERROR));
  c.Set("SO_TYPE", static_cast<double>(SO_TYPE));
  c.Set("SO_DOMAIN", static_cast<double>(SO_DOMAIN));
  c.Set("SO_ACCEPTCONN", static_cast<double>(SO_ACCEPTCONN));
  c.Set("SO_REUSEADDR", static_cast<double>(SO_REUSEADDR));
  c.Set("SO_SNDBUF", static_cast<double>(SO_SNDBUF));
  c.Set("SO_RCVBUF", static_cast<double>(SO_RCVBUF));
  c.Set("IPPROTO_TCP", static_cast<double>(IPPROTO_TCP));
  c.Set("TCP_NODELAY", static_cast<double>(TCP_NODELAY));
  c.Set("IPPROTO_IPV6", static_cast<double>(IPPROTO_IPV6));
  c.Set("IPV6_V6ONLY", static_cast<double>(IPV6_V6ONLY));
  c.Set("MSG_TRUNC", static_cast<double>(MSG_TRUNC));
  c.Set("MSG_CTRUNC", static_cast<double>(MSG_CTRUNC));
  c.Set("MSG_PEEK", static_cast<double>(MSG_PEEK));
  c.Set("POLLRDHUP", static_cast<double>(POLLRDHUP));
  c.Set("SHUT_RD", static_cast<double>(SHUT_RD));
  c.Set("SHUT_WR", static_cast<double>(SHUT_WR));
  c.Set("SHUT_RDWR", static_cast<double>(SHUT_RDWR));
  c.Set("SCM_MAX_FD", static_cast<double>(kMaxFds));
  exports.Set("socketConstants", c);
}

}  // namespace ipckit
