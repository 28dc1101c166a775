/* Shared helpers of the C reference programs. */
#ifndef IPCKIT_BENCH_COMMON_H
#define IPCKIT_BENCH_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static inline void die(const char *what) {
  perror(what);
  exit(1);
}

/* Maps the whole POSIX segment `name` read-write; its size in *size_out. */
static inline void *map_shared(const char *name, size_t *size_out) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) die("shm_open");
  struct stat st;
  if (fstat(fd, &st) < 0) die("fstat");
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  close(fd);
  *size_out = (size_t)st.st_size;
  return p;
}

/*
 * Writes all of iov[0..count) with `put` (a writev, or a sendmsg): a
 * blocking descriptor may still take part of a large gathered write.
 * Moves iov past what went.
 */
static inline void put_all(int fd, struct iovec *iov, int count, ssize_t (*put)(int, struct iovec *, int), const char *what) {
  while (count > 0) {
    ssize_t r = put(fd, iov, count);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die(what);
    while (count > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      count--;
    }
    if (count > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
}

static inline double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Tells the harness the server is ready: one line on stdout. */
static inline void ready(void) {
  printf("{\"ready\":true}\n");
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Prints the median and 99th percentile of round-trip samples in µs. */
static inline void print_latency(double *samples, long n) {
  qsort(samples, (size_t)n, sizeof(double), cmp_double);
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f}\n", samples[n / 2], samples[(n * 99) / 100]);
  fflush(stdout);
}

static inline void print_throughput(double bytes, double elapsed_us) {
  printf("{\"mb_s\":%.3f}\n", bytes / elapsed_us);
  fflush(stdout);
}

#endif
