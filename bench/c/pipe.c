/*
 * C reference for the pipe benchmark: plain read(2)/write(2) on blocking
 * descriptors, the machine's limit.
 *
 *   pipe pipe rtt|tput ITERATIONS SIZE
 *       anonymous pipes between this process and a forked child
 *   pipe fifo server|client rtt|tput A B ITERATIONS SIZE
 *       FIFOs A (client to server) and B (server to client), made by the harness
 *
 * rtt: ITERATIONS round trips of SIZE bytes, prints {"p50_us","p99_us"};
 * tput: ITERATIONS/10 warm-up writes and an acknowledgement, then
 * ITERATIONS writes of SIZE bytes and an acknowledgement; prints {"mb_s"}.
 * msgs, msgsv, msgsa: the same shape in framed messages of SIZE bytes (a
 * 4-byte big-endian length, then the bytes), one write(2) per message
 * (msgs), one writev(2) per BATCH messages (msgsv), or one writev(2) per
 * group of whole frames of at most PIPE_BUF bytes (msgsa: what keeps every
 * message atomic when several processes write to the pipe); the reader
 * reads 64 KiB at a time and walks the frames, as a buffered C reader does.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static void read_full(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) die("read");
    got += (size_t)r;
  }
}

static void write_full(int fd, const char *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, buf + put, n - put);
    if (r <= 0) die("write");
    put += (size_t)r;
  }
}

/* Messages a msgsv writer gathers into one writev. */
#define BATCH 64

/* Reads n framed messages from fd: 64 KiB reads, frames walked in place. */
static void read_messages(int fd, long n) {
  static unsigned char buf[65536];
  static size_t have = 0;
  long got = 0;
  while (got < n) {
    size_t at = 0;
    while (have - at >= 4 && got < n) {
      size_t len = ((size_t)buf[at] << 24) | ((size_t)buf[at + 1] << 16) | ((size_t)buf[at + 2] << 8) | buf[at + 3];
      if (have - at < 4 + len) break;
      at += 4 + len;
      got++;
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    if (got == n) break;
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r <= 0) die("read");
    have += (size_t)r;
  }
}

static ssize_t writev_call(int fd, struct iovec *iov, int count) {
  return writev(fd, iov, count);
}

/* Writes n framed messages of `size` bytes: one write each, or BATCH per
 * writev (gathered 1), or as many whole frames as PIPE_BUF holds (gathered 2). */
static void write_messages(int fd, long n, size_t size, int gathered) {
  static unsigned char header[4];
  static char *data;
  if (!data) data = calloc(1, size);
  header[0] = (unsigned char)(size >> 24);
  header[1] = (unsigned char)(size >> 16);
  header[2] = (unsigned char)(size >> 8);
  header[3] = (unsigned char)size;
  if (!gathered) {
    char *frame = malloc(size + 4);
    memcpy(frame, header, 4);
    memcpy(frame + 4, data, size);
    for (long i = 0; i < n; i++) write_full(fd, frame, size + 4);
    free(frame);
    return;
  }
  struct iovec iov[2 * BATCH];
  long per = BATCH;
  if (gathered == 2) {
    per = (long)(PIPE_BUF / (size + 4));
    if (per < 1) per = 1;
    if (per > BATCH) per = BATCH;
  }
  for (long i = 0; i < n; i += per) {
    int k = n - i < per ? (int)(n - i) : (int)per;
    for (int j = 0; j < k; j++) {
      iov[2 * j] = (struct iovec){header, 4};
      iov[2 * j + 1] = (struct iovec){data, size};
    }
    put_all(fd, iov, 2 * k, writev_call, "writev");
  }
}

/* The echo side: reads from `in`, answers on `out`. */
static void serve(int in, int out, int rtt, long n, size_t size, int messages) {
  char *buf = malloc(size);
  if (messages) {
    long batches[2] = {n / 10, n};
    for (int b = 0; b < 2; b++) {
      read_messages(in, batches[b]);
      write_full(out, "k", 1);
    }
    return;
  }
  if (rtt) {
    for (long i = 0; i < n + n / 10; i++) {
      read_full(in, buf, size);
      write_full(out, buf, size);
    }
    return;
  }
  long batches[2] = {n / 10, n};
  for (int b = 0; b < 2; b++) {
    for (long i = 0; i < batches[b]; i++) read_full(in, buf, size);
    write_full(out, "k", 1);
  }
}

static void drive(int out, int in, int rtt, long n, size_t size, int messages, int gathered) {
  char *buf = calloc(1, size);
  if (messages) {
    write_messages(out, n / 10, size, gathered);
    read_full(in, buf, 1);
    double t0 = now_us();
    write_messages(out, n, size, gathered);
    read_full(in, buf, 1);
    print_throughput((double)n * (double)size, now_us() - t0);
    return;
  }
  if (rtt) {
    double *samples = calloc((size_t)n, sizeof(double));
    for (long i = 0; i < n + n / 10; i++) {
      double t0 = now_us();
      write_full(out, buf, size);
      read_full(in, buf, size);
      if (i >= n / 10) samples[i - n / 10] = now_us() - t0;
    }
    print_latency(samples, n);
    return;
  }
  for (long i = 0; i < n / 10; i++) write_full(out, buf, size);
  read_full(in, buf, 1);
  double t0 = now_us();
  for (long i = 0; i < n; i++) write_full(out, buf, size);
  read_full(in, buf, 1);
  print_throughput((double)n * (double)size, now_us() - t0);
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "pipe") == 0) {
    int rtt = strcmp(argv[2], "rtt") == 0;
    int gathered = strcmp(argv[2], "msgsv") == 0 ? 1 : strcmp(argv[2], "msgsa") == 0 ? 2 : 0;
    int messages = gathered || strcmp(argv[2], "msgs") == 0;
    long n = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(to_child[1]);
      close(to_parent[0]);
      serve(to_child[0], to_parent[1], rtt, n, size, messages);
      _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    drive(to_child[1], to_parent[0], rtt, n, size, messages, gathered);
    waitpid(pid, NULL, 0);
    return 0;
  }
  if (argc == 8 && strcmp(argv[1], "fifo") == 0) {
    int server = strcmp(argv[2], "server") == 0;
    int rtt = strcmp(argv[3], "rtt") == 0;
    long n = atol(argv[6]);
    size_t size = (size_t)atol(argv[7]);
    if (server) {
      ready();
      int in = open(argv[4], O_RDONLY);
      int out = open(argv[5], O_WRONLY);
      if (in < 0 || out < 0) die("open");
      serve(in, out, rtt, n, size, 0);
      return 0;
    }
    int out = open(argv[4], O_WRONLY);
    int in = open(argv[5], O_RDONLY);
    if (in < 0 || out < 0) die("open");
    drive(out, in, rtt, n, size, 0, 0);
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of pipe.c\n");
  return 2;
}
