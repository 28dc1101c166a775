/*
 * C reference for the semaphore benchmark: POSIX named semaphores (sem_open,
 * sem_trywait, sem_wait, sem_post) and System V semaphores (semop, with and
 * without SEM_UNDO), the same calls a C program makes, with nothing around
 * them. This is the machine's limit.
 *
 * A semaphore is addressed as ipckit's roles address it: "/name" for a named
 * semaphore, "KEY:INDEX" (key in decimal) for semaphore INDEX of a System V
 * set. Every object exists already: the harness creates and removes them.
 *
 *   semaphore pair try|wait|wait-undo SEM ITERATIONS
 *       one process, no waiting: ITERATIONS/10 warm-up then ITERATIONS
 *       (take, give) pairs on SEM, whose value is 1; prints {"ns_per_op"}
 *       per pair. try: sem_trywait or IPC_NOWAIT; wait: sem_wait or a
 *       blocking semop; wait-undo: semop with SEM_UNDO (System V only).
 *   semaphore rtt server|client X Y ITERATIONS SPIN_US
 *       two processes, X and Y of value 0: the client posts X and waits
 *       for Y, the server waits for X and posts Y; the client times
 *       ITERATIONS round trips after ITERATIONS/10 warm-up ones and prints
 *       {"p50_us","p99_us"}. With SPIN_US > 0 a wait first retries without
 *       blocking for up to SPIN_US µs, yielding the CPU between attempts
 *       (ipckit's default strategy, written directly in C), then blocks.
 *   semaphore contend server|client wait|wait-undo LOCK SEGMENT ITERATIONS
 *       two processes at once, each ITERATIONS × (take LOCK, counter += 1,
 *       give LOCK), LOCK of value 1 used as a mutex, started and ended
 *       together (the start and end words count the processes there); the
 *       two words and the counter are int32 at byte FLAGS of the POSIX
 *       segment SEGMENT. The client prints {"cycles_per_s"} over both
 *       processes' cycles, and fails if the counter lost an update.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>

#include "common.h"

/* Byte offset of the contend flags in SEGMENT; bench/semaphore.ts says the same. */
#define FLAGS 1024

struct flags {
  atomic_int start;
  atomic_int end;
  int counter;
};

/* A named semaphore (named != NULL), or semaphore `index` of set `semid`. */
struct sem {
  sem_t *named;
  int semid;
  unsigned short index;
  short undo;
};

static struct sem open_sem(const char *addr, int undo) {
  struct sem s = {NULL, -1, 0, (short)(undo ? SEM_UNDO : 0)};
  if (addr[0] == '/') {
    if (undo) {
      fprintf(stderr, "undo is for System V semaphores only\n");
      exit(2);
    }
    s.named = sem_open(addr, 0);
    if (s.named == SEM_FAILED) die("sem_open");
    return s;
  }
  char *end;
  key_t key = (key_t)strtoul(addr, &end, 10);
  if (*end != ':') {
    fprintf(stderr, "a System V semaphore is KEY:INDEX, not %s\n", addr);
    exit(2);
  }
  s.index = (unsigned short)atoi(end + 1);
  s.semid = semget(key, 0, 0);
  if (s.semid < 0) die("semget");
  return s;
}

static int semop1(struct sem *s, short delta, short flags) {
  struct sembuf op = {s->index, delta, (short)(s->undo | flags)};
  return semop(s->semid, &op, 1);
}

/* Takes one unit if there is one now: 1 if taken, 0 if not. */
static int try_take(struct sem *s) {
  int r = s->named ? sem_trywait(s->named) : semop1(s, -1, IPC_NOWAIT);
  if (r == 0) return 1;
  if (errno != EAGAIN) die(s->named ? "sem_trywait" : "semop");
  return 0;
}

/* Takes one unit: tries for up to spin_us µs (yielding between attempts), then blocks. */
static void take(struct sem *s, double spin_us) {
  if (spin_us > 0) {
    double start = now_us();
    if (try_take(s)) return;
    do {
      sched_yield();
      if (try_take(s)) return;
    } while (now_us() - start < spin_us);
  }
  while ((s->named ? sem_wait(s->named) : semop1(s, -1, 0)) < 0) {
    if (errno != EINTR) die(s->named ? "sem_wait" : "semop");
  }
}

static void give(struct sem *s) {
  if ((s->named ? sem_post(s->named) : semop1(s, 1, 0)) < 0) die(s->named ? "sem_post" : "semop");
}

static void pair(const char *how, struct sem *s, long n) {
  int try = strcmp(how, "try") == 0;
  for (long round = 0; round < 2; round++) {
    long count = round == 0 ? n / 10 : n;
    double t0 = now_us();
    for (long i = 0; i < count; i++) {
      if (try) {
        if (!try_take(s)) die("the semaphore was taken");
      } else {
        take(s, 0);
      }
      give(s);
    }
    if (round == 1) printf("{\"ns_per_op\":%.3f}\n", (now_us() - t0) * 1000.0 / (double)n);
  }
}

static void rtt(int server, struct sem *x, struct sem *y, long n, double spin_us) {
  long total = n + n / 10;
  if (server) {
    ready();
    for (long i = 0; i < total; i++) {
      take(x, spin_us);
      give(y);
    }
    return;
  }
  double *samples = calloc((size_t)n, sizeof(double));
  for (long i = 0; i < total; i++) {
    double t0 = now_us();
    give(x);
    take(y, spin_us);
    if (i >= n / 10) samples[i - n / 10] = now_us() - t0;
  }
  print_latency(samples, n);
}

static void cycles(struct sem *lock, struct flags *f, long n, int count) {
  for (long i = 0; i < n; i++) {
    take(lock, 0);
    if (count) f->counter++;
    give(lock);
  }
}

/* Arrives at `word`, then sleeps 50 µs at a time until both processes have. */
static void meet(atomic_int *word) {
  atomic_fetch_add(word, 1);
  while (atomic_load(word) < 2) usleep(50);
}

static void contend(int server, struct sem *lock, struct flags *f, long n) {
  if (server) {
    atomic_store(&f->start, 0);
    atomic_store(&f->end, 0);
    f->counter = 0;
  }
  cycles(lock, f, n / 10, 0);
  if (server) ready();
  meet(&f->start);
  double t0 = now_us();
  cycles(lock, f, n, 1);
  meet(&f->end);
  if (server) return;
  double us = now_us() - t0;
  if (f->counter != 2 * n) die("lost an update");
  printf("{\"cycles_per_s\":%.1f}\n", (double)(2 * n) * 1e6 / us);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "pair") == 0 && argc == 5) {
    struct sem s = open_sem(argv[3], strcmp(argv[2], "wait-undo") == 0);
    pair(argv[2], &s, atol(argv[4]));
    return 0;
  }
  if (strcmp(mode, "rtt") == 0 && argc == 7) {
    struct sem x = open_sem(argv[3], 0), y = open_sem(argv[4], 0);
    rtt(strcmp(argv[2], "server") == 0, &x, &y, atol(argv[5]), atof(argv[6]));
    return 0;
  }
  if (strcmp(mode, "contend") == 0 && argc == 7) {
    struct sem lock = open_sem(argv[4], strcmp(argv[3], "wait-undo") == 0);
    size_t size;
    struct flags *f = (struct flags *)((char *)map_shared(argv[5], &size) + FLAGS);
    contend(strcmp(argv[2], "server") == 0, &lock, f, atol(argv[6]));
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of semaphore.c\n");
  return 2;
}
