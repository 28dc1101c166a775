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
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The echo side: reads from `in`, answers on `out`. */
static void serve(int in, int out, int rtt, long n, size_t size) {
  char *buf = malloc(size);
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

static void drive(int out, int in, int rtt, long n, size_t size) {
  char *buf = calloc(1, size);
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
    long n = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(to_child[1]);
      close(to_parent[0]);
      serve(to_child[0], to_parent[1], rtt, n, size);
      _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    drive(to_child[1], to_parent[0], rtt, n, size);
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
      serve(in, out, rtt, n, size);
      return 0;
    }
    int out = open(argv[4], O_WRONLY);
    int in = open(argv[5], O_RDONLY);
    if (in < 0 || out < 0) die("open");
    drive(out, in, rtt, n, size);
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of pipe.c\n");
  return 2;
}
