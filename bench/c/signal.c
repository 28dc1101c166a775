/*
 * C reference for the signal benchmark: a real-time signal carrying a value
 * (sigqueue), taken synchronously with sigwaitinfo, between this process and
 * a forked child. Both block the signals first, so none is lost or handled
 * asynchronously.
 *
 *   signal rtt ITERATIONS
 *
 * Prints {"p50_us","p99_us"} of ITERATIONS round trips after ITERATIONS/10
 * warm-up ones: the parent sends SIGRTMIN+1 with value i, the child answers
 * SIGRTMIN+2 with the same value.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static long take(const sigset_t *set) {
  siginfo_t info;
  if (sigwaitinfo(set, &info) < 0) die("sigwaitinfo");
  return (long)(intptr_t)info.si_value.sival_ptr;
}

static void send_value(pid_t pid, int sig, long value) {
  union sigval v;
  memset(&v, 0, sizeof v);
  v.sival_ptr = (void *)(intptr_t)value;
  if (sigqueue(pid, sig, v) < 0) die("sigqueue");
}

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "rtt") != 0) {
    fprintf(stderr, "usage: signal rtt ITERATIONS\n");
    return 2;
  }
  long n = atol(argv[2]);
  long total = n + n / 10;
  int ping = SIGRTMIN + 1, pong = SIGRTMIN + 2;
  sigset_t both, ping_set, pong_set;
  sigemptyset(&both);
  sigaddset(&both, ping);
  sigaddset(&both, pong);
  if (sigprocmask(SIG_BLOCK, &both, NULL) < 0) die("sigprocmask");
  sigemptyset(&ping_set);
  sigaddset(&ping_set, ping);
  sigemptyset(&pong_set);
  sigaddset(&pong_set, pong);

  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (long i = 0; i < total; i++) send_value(parent, pong, take(&ping_set));
    _exit(0);
  }
  double *samples = calloc((size_t)n, sizeof(double));
  for (long i = 0; i < total; i++) {
    double t0 = now_us();
    send_value(child, ping, i);
    if (take(&pong_set) != i) {
      fprintf(stderr, "wrong value\n");
      return 1;
    }
    if (i >= n / 10) samples[i - n / 10] = now_us() - t0;
  }
  print_latency(samples, n);
  waitpid(child, NULL, 0);
  return 0;
}
