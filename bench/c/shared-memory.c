/*
 * C reference for the shared-memory benchmark: a pthread robust,
 * process-shared mutex and POSIX semaphores living in a POSIX segment, and
 * memcpy. This is the machine's limit for the same work.
 *
 *   shared-memory lock-uncontended NAME ITERATIONS
 *       one process: lock + unlock; prints {"ns_per_op":..}
 *   shared-memory lock-contended server|client NAME ITERATIONS
 *       two processes: each does ITERATIONS of lock, counter++, unlock;
 *       the client prints {"ns_per_op":..} over both processes' operations
 *   shared-memory copy NAME ITERATIONS SIZE
 *       one process: copy SIZE bytes into the segment and back out;
 *       prints {"mb_s":..} (SIZE bytes per iteration)
 *   shared-memory transfer server|client NAME ITERATIONS SIZE
 *       two processes: the client copies SIZE bytes in and posts, the server
 *       waits, copies them out and posts back; prints {"mb_s":..}
 *
 * The segment NAME (at least 64 bytes + SIZE) is created by the harness; the
 * first process to run initialises it (lock-uncontended, copy, and the
 * server of the two-process modes).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

struct area {
  pthread_mutex_t mutex;
  sem_t filled;
  sem_t drained;
  atomic_int ready;
  atomic_int go;
  atomic_int done;
  long counter;
  char pad[64];
};

static struct area *map_area(const char *name, size_t *size_out) {
  return map_shared(name, size_out);
}

static void init_area(struct area *a) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&a->mutex, &attr);
  sem_init(&a->filled, 1, 0);
  sem_init(&a->drained, 1, 0);
  atomic_store(&a->ready, 0);
  atomic_store(&a->go, 0);
  atomic_store(&a->done, 0);
  a->counter = 0;
}

static void lock(struct area *a) {
  int r = pthread_mutex_lock(&a->mutex);
  if (r == EOWNERDEAD) pthread_mutex_consistent(&a->mutex);
  else if (r != 0) die("pthread_mutex_lock");
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: see the comment at the top of shared-memory.c\n");
    return 2;
  }
  const char *mode = argv[1];
  size_t size;

  if (strcmp(mode, "lock-uncontended") == 0) {
    struct area *a = map_area(argv[2], &size);
    init_area(a);
    long n = atol(argv[3]);
    for (long i = 0; i < n / 10; i++) { lock(a); pthread_mutex_unlock(&a->mutex); }
    double t0 = now_us();
    for (long i = 0; i < n; i++) { lock(a); pthread_mutex_unlock(&a->mutex); }
    printf("{\"ns_per_op\":%.3f}\n", (now_us() - t0) * 1000.0 / (double)n);
    return 0;
  }

  if (strcmp(mode, "copy") == 0) {
    struct area *a = map_area(argv[2], &size);
    long n = atol(argv[3]);
    size_t len = (size_t)atol(argv[4]);
    char *data = (char *)a + sizeof *a;
    char *src = malloc(len), *dst = malloc(len);
    memset(src, 7, len);
    for (long i = 0; i < n / 10; i++) { memcpy(data, src, len); memcpy(dst, data, len); }
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
      memcpy(data, src, len);
      memcpy(dst, data, len);
    }
    double us = now_us() - t0;
    if (dst[len - 1] != 7) die("copy check");
    print_throughput((double)n * (double)len, us);
    return 0;
  }

  int server = strcmp(argv[2], "server") == 0;
  struct area *a = map_area(argv[3], &size);
  long n = atol(argv[4]);

  if (strcmp(mode, "lock-contended") == 0) {
    if (server) init_area(a);
    for (long i = 0; i < n / 10; i++) { lock(a); pthread_mutex_unlock(&a->mutex); }
    if (server) {
      ready();
      while (atomic_load(&a->go) == 0) usleep(100);
    } else {
      atomic_store(&a->go, 1);
    }
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
      lock(a);
      a->counter++;
      pthread_mutex_unlock(&a->mutex);
    }
    if (server) {
      atomic_fetch_add(&a->done, 1);
      return 0;
    }
    /* Sleep while the other finishes, so a pinned run does not steal its CPU. */
    while (atomic_load(&a->done) == 0) usleep(100);
    double us = now_us() - t0;
    if (a->counter != 2 * n) die("lost an update");
    printf("{\"ns_per_op\":%.3f}\n", us * 1000.0 / (double)(2 * n));
    return 0;
  }

  if (strcmp(mode, "transfer") == 0) {
    size_t len = (size_t)atol(argv[5]);
    char *data = (char *)a + sizeof *a;
    char *buf = malloc(len);
    memset(buf, 7, len);
    if (server) {
      init_area(a);
      ready();
      for (long i = 0; i < n + n / 10; i++) {
        while (sem_wait(&a->filled) < 0) { }
        memcpy(buf, data, len);
        sem_post(&a->drained);
      }
      return 0;
    }
    for (long i = 0; i < n / 10; i++) {
      memcpy(data, buf, len);
      sem_post(&a->filled);
      while (sem_wait(&a->drained) < 0) { }
    }
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
      memcpy(data, buf, len);
      sem_post(&a->filled);
      while (sem_wait(&a->drained) < 0) { }
    }
    print_throughput((double)n * (double)len, now_us() - t0);
    return 0;
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
