// The system calls of the hot paths, made without glibc's cancellation
// wrappers.
//
// read, write, readv, writev, sendmsg, recvmsg, sendmmsg, recvmmsg,
// mq_timedsend, mq_timedreceive, msgsnd and msgrcv are POSIX cancellation
// points. In a process with more than one thread (Node always has several)
// glibc wraps each of them in an enable and a disable of asynchronous
// cancellation, two atomic updates of the thread's cancellation state
// around the system call: about 25 ns a call on these machines, measured
// as a System V send and receive of 64 bytes taking 355 ns in a C program
// with one thread, 405–445 ns once it starts a second, and 360–385 ns with
// syscall(2). ipckit never cancels a thread (waits end by the wake signal,
// wake.h, or a descriptor), so it gives up nothing by calling the kernel
// directly.
//
// Each function keeps its libc twin's contract: the result, or -1 with
// errno set. Where the kernel's argument layout can differ from libc's
// (32-bit targets, where struct timespec and long may not be the kernel's),
// they are libc's own functions.
#pragma once

#include <mqueue.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

namespace ipckit {

#if defined(__LP64__) && defined(SYS_msgsnd) && defined(SYS_msgrcv) && defined(SYS_mq_timedsend) && \
    defined(SYS_mq_timedreceive) && defined(SYS_sendmmsg) && defined(SYS_recvmmsg)

// syscall(2) reads each argument as a long: a narrower integer passed
// through its variadic list could leave the register's upper half undefined.
inline long SysArg(int value) { return value; }
inline long SysArg(unsigned value) { return value; }

inline ssize_t SysRead(int fd, void* data, size_t length) { return syscall(SYS_read, SysArg(fd), data, length); }
inline ssize_t SysWrite(int fd, const void* data, size_t length) { return syscall(SYS_write, SysArg(fd), data, length); }
inline ssize_t SysReadv(int fd, const iovec* iov, int count) { return syscall(SYS_readv, SysArg(fd), iov, SysArg(count)); }
inline ssize_t SysWritev(int fd, const iovec* iov, int count) { return syscall(SYS_writev, SysArg(fd), iov, SysArg(count)); }
inline ssize_t SysSendmsg(int fd, const msghdr* msg, int flags) { return syscall(SYS_sendmsg, SysArg(fd), msg, SysArg(flags)); }
inline ssize_t SysRecvmsg(int fd, msghdr* msg, int flags) { return syscall(SYS_recvmsg, SysArg(fd), msg, SysArg(flags)); }
inline int SysSendmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) {
  return static_cast<int>(syscall(SYS_sendmmsg, SysArg(fd), msgs, SysArg(count), SysArg(flags)));
}
inline int SysRecvmmsg(int fd, mmsghdr* msgs, unsigned count, int flags, timespec* timeout) {
  return static_cast<int>(syscall(SYS_recvmmsg, SysArg(fd), msgs, SysArg(count), SysArg(flags), timeout));
}
// A null deadline blocks, as mq_send and mq_receive do.
inline int SysMqTimedSend(mqd_t fd, const char* data, size_t length, unsigned prio, const timespec* deadline) {
  return static_cast<int>(syscall(SYS_mq_timedsend, SysArg(fd), data, length, SysArg(prio), deadline));
}
inline ssize_t SysMqTimedReceive(mqd_t fd, char* data, size_t length, unsigned* prio, const timespec* deadline) {
  return syscall(SYS_mq_timedreceive, SysArg(fd), data, length, prio, deadline);
}
inline int SysMsgSnd(int id, const void* msg, size_t length, int flags) {
  return static_cast<int>(syscall(SYS_msgsnd, SysArg(id), msg, length, SysArg(flags)));
}
inline ssize_t SysMsgRcv(int id, void* msg, size_t length, long type, int flags) {
  return syscall(SYS_msgrcv, SysArg(id), msg, length, type, SysArg(flags));
}

#else

inline ssize_t SysRead(int fd, void* data, size_t length) { return read(fd, data, length); }
inline ssize_t SysWrite(int fd, const void* data, size_t length) { return write(fd, data, length); }
inline ssize_t SysReadv(int fd, const iovec* iov, int count) { return readv(fd, iov, count); }
inline ssize_t SysWritev(int fd, const iovec* iov, int count) { return writev(fd, iov, count); }
inline ssize_t SysSendmsg(int fd, const msghdr* msg, int flags) { return sendmsg(fd, msg, flags); }
inline ssize_t SysRecvmsg(int fd, msghdr* msg, int flags) { return recvmsg(fd, msg, flags); }
inline int SysSendmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) { return sendmmsg(fd, msgs, count, flags); }
inline int SysRecvmmsg(int fd, mmsghdr* msgs, unsigned count, int flags, timespec* timeout) {
  return recvmmsg(fd, msgs, count, flags, timeout);
}
inline int SysMqTimedSend(mqd_t fd, const char* data, size_t length, unsigned prio, const timespec* deadline) {
  return deadline ? mq_timedsend(fd, data, length, prio, deadline) : mq_send(fd, data, length, prio);
}
inline ssize_t SysMqTimedReceive(mqd_t fd, char* data, size_t length, unsigned* prio, const timespec* deadline) {
  return deadline ? mq_timedreceive(fd, data, length, prio, deadline) : mq_receive(fd, data, length, prio);
}
inline int SysMsgSnd(int id, const void* msg, size_t length, int flags) { return msgsnd(id, msg, length, flags); }
inline ssize_t SysMsgRcv(int id, void* msg, size_t length, long type, int flags) {
  return msgrcv(id, msg, length, type, flags);
}

#endif

}  // namespace ipckit
