/*
 * An LD_PRELOAD stand-in for another reader of a datagram socket, for the
 * tests: once the environment variable IPCKIT_STEAL_NEXT is set (a test
 * sets it through process.env just before the call it probes), the next
 * FIONREAD on a datagram socket measures the next datagram as usual, and
 * then this takes that datagram, as a second reader between the measure
 * and the receive would; the variable is then cleared.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int ioctl(int fd, unsigned long request, ...) {
  va_list args;
  va_start(args, request);
  void *argument = va_arg(args, void *);
  va_end(args);
  static int (*next)(int, unsigned long, ...);
  if (next == NULL) next = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
  int result = next(fd, request, argument);
  int type = 0;
  socklen_t size = sizeof type;
  if (request == FIONREAD && getenv("IPCKIT_STEAL_NEXT") != NULL &&
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_DGRAM) {
    unsetenv("IPCKIT_STEAL_NEXT");
    static char taken[1 << 16];
    (void)recv(fd, taken, sizeof taken, MSG_DONTWAIT);
  }
  return result;
}
