/*
 * C reference for the message-queue benchmark: the same system calls ipckit
 * makes, with nothing around them. This is the machine's limit.
 *
 *   message-queue posix|sysv server|client rtt|tput A B ITERATIONS SIZE [SPIN_US]
 *
 * A and B are queue addresses (POSIX names, or System V keys in decimal)
 * that already exist: the client sends on A and receives on B, the server
 * the other way round. rtt: ITERATIONS round trips of SIZE bytes, client
 * prints {"p50_us":..,"p99_us":..}. tput: ITERATIONS/10 warm-up messages
 * and an acknowledgement, then ITERATIONS one-way messages of SIZE bytes and
 * an acknowledgement; the client times the second batch and prints
 * {"mb_s":..}.
 *
 * With SPIN_US > 0 every call first retries without blocking for up to
 * SPIN_US microseconds, yielding the CPU between attempts, then blocks: the
 * same spin-then-sleep strategy ipckit uses, written directly in C.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>

#include "common.h"

struct queue {
  int posix;
  mqd_t mq;
  int msqid;
};

static struct queue open_queue(int posix, const char *addr) {
  struct queue q = {posix, (mqd_t)-1, -1};
  if (posix) {
    q.mq = mq_open(addr, O_RDWR);
    if (q.mq == (mqd_t)-1) die("mq_open");
  } else {
    q.msqid = msgget((key_t)strtoul(addr, NULL, 10), 0);
    if (q.msqid < 0) die("msgget");
  }
  return q;
}

/* System V messages: a long type, then the payload. */
static char *sysv_buf;
static double spin_us;
static const struct timespec expired = {0, 0};

/* Whether a failed non-blocking attempt should be retried while spinning. */
static int keep_spinning(double start, int would_block) {
  if (!would_block) return 0;
  if (now_us() - start >= spin_us) return 0;
  sched_yield();
  return 1;
}

static void q_send(struct queue *q, const char *data, size_t size) {
  double start = now_us();
  if (q->posix) {
    if (spin_us > 0) {
      do {
        if (mq_timedsend(q->mq, data, size, 0, &expired) == 0) return;
      } while (keep_spinning(start, errno == ETIMEDOUT || errno == EAGAIN));
    }
    if (mq_send(q->mq, data, size, 0) < 0) die("mq_send");
  } else {
    long type = 1;
    memcpy(sysv_buf, &type, sizeof type);
    memcpy(sysv_buf + sizeof type, data, size);
    if (spin_us > 0) {
      do {
        if (msgsnd(q->msqid, sysv_buf, size, IPC_NOWAIT) == 0) return;
      } while (keep_spinning(start, errno == EAGAIN));
    }
    while (msgsnd(q->msqid, sysv_buf, size, 0) < 0) {
      if (errno != EINTR) die("msgsnd");
    }
  }
}

static size_t q_recv(struct queue *q, char *data, size_t cap) {
  double start = now_us();
  ssize_t n;
  if (q->posix) {
    if (spin_us > 0) {
      do {
        if ((n = mq_timedreceive(q->mq, data, cap, NULL, &expired)) >= 0) return (size_t)n;
      } while (keep_spinning(start, errno == ETIMEDOUT || errno == EAGAIN));
    }
    n = mq_receive(q->mq, data, cap, NULL);
    if (n < 0) die("mq_receive");
    return (size_t)n;
  }
  n = -1;
  if (spin_us > 0) {
    do {
      if ((n = msgrcv(q->msqid, sysv_buf, cap, 0, IPC_NOWAIT)) >= 0) break;
    } while (keep_spinning(start, errno == ENOMSG));
  }
  while (n < 0 && (n = msgrcv(q->msqid, sysv_buf, cap, 0, 0)) < 0) {
    if (errno != EINTR) die("msgrcv");
  }
  memcpy(data, sysv_buf + sizeof(long), (size_t)n);
  return (size_t)n;
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 9) {
    fprintf(stderr, "usage: %s posix|sysv server|client rtt|tput A B ITERATIONS SIZE [SPIN_US]\n", argv[0]);
    return 2;
  }
  spin_us = argc == 9 ? atof(argv[8]) : 0;
  int posix = strcmp(argv[1], "posix") == 0;
  int server = strcmp(argv[2], "server") == 0;
  int rtt = strcmp(argv[3], "rtt") == 0;
  long iterations = atol(argv[6]);
  size_t size = (size_t)atol(argv[7]);
  size_t cap = 16 * 1024 * 1024;
  if (posix) cap = 65536 > size ? 65536 : size;
  else cap = 65536;
  char *data = calloc(1, cap);
  sysv_buf = calloc(1, cap + sizeof(long));
  struct queue a = open_queue(posix, argv[4]);
  struct queue b = open_queue(posix, argv[5]);
  long warmup = rtt ? iterations / 10 : 0;

  if (server) {
    ready();
    if (rtt) {
      for (long i = 0; i < warmup + iterations; i++) {
        size_t n = q_recv(&a, data, cap);
        q_send(&b, data, n);
      }
    } else {
      /* A warm-up batch, acknowledged, then the measured one. */
      for (long i = 0; i < iterations / 10; i++) q_recv(&a, data, cap);
      q_send(&b, data, 1);
      for (long i = 0; i < iterations; i++) q_recv(&a, data, cap);
      q_send(&b, data, 1);
    }
    return 0;
  }

  if (rtt) {
    double *samples = calloc((size_t)iterations, sizeof(double));
    for (long i = 0; i < warmup + iterations; i++) {
      double t0 = now_us();
      q_send(&a, data, size);
      q_recv(&b, data, cap);
      if (i >= warmup) samples[i - warmup] = now_us() - t0;
    }
    print_latency(samples, iterations);
  } else {
    for (long i = 0; i < iterations / 10; i++) q_send(&a, data, size);
    q_recv(&b, data, cap);
    double t0 = now_us();
    for (long i = 0; i < iterations; i++) q_send(&a, data, size);
    q_recv(&b, data, cap);
    print_throughput((double)iterations * (double)size, now_us() - t0);
  }
  return 0;
}
