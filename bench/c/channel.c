/*
 * C reference for the channel benchmark: a single-producer single-consumer
 * ring of variable-size records in a POSIX shared-memory segment, with the
 * algorithm of src/channel.ts and nothing around it (no statistics
 * counters, no role words, no checks). This is the machine's limit.
 *
 *   channel rtt|tput server|client PING PONG ITERATIONS SIZE SPIN_US|busy
 *
 * PING and PONG are segments that already exist, zero-filled, of 1536 bytes
 * of header and a ring of a power of two bytes (the harness creates them).
 * The client produces on PING and consumes PONG, the server the other way
 * round.
 *
 * The layout is src/channel.ts's: 32-bit header words, each side's position
 * on a cache line of its own (TAIL word 16, HEAD word 32), the consumer's
 * futex word and sleeping flag (DATA_SEQ 48, CONSUMER_SLEEPING 49), the
 * producer's (SPACE_SEQ 64, PRODUCER_SLEEPING 65); the ring from byte 1536;
 * a record is [length][kind] and the payload padded to 8 bytes, and a
 * padding record fills the end of the ring when a record would straddle it.
 * Each side keeps its position and a cached copy of the other's, and reads
 * the other's word only when the cache says empty (or full).
 *
 * Waiting, with a number SPIN_US: spin on the other side's position for up
 * to SPIN_US microseconds (no yield, as the Node side spins; no spin at all
 * with one CPU to run on, as the Node side), then set the sleeping flag, read
 * the other side's position, look once more and FUTEX_WAIT on that word; the
 * other side FUTEX_WAKEs it only when the flag is set.
 * Every shared access is sequentially consistent. With `busy`: poll the
 * other side's position without ever sleeping (nor waking anyone).
 *
 * rtt: ITERATIONS/10 warm-up round trips then ITERATIONS timed ones of SIZE
 * bytes; the client prints {"p50_us":..,"p99_us":..}. tput: ITERATIONS/10
 * warm-up messages of SIZE bytes and an acknowledgement, then ITERATIONS
 * timed ones and an acknowledgement; the client prints {"mb_s":..}. Both
 * copy every message in (memcpy) and out (memcpy).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

enum {
  W_TAIL = 16, W_HEAD = 32,
  W_CONSUMER_SLEEPING = 49,
  W_PRODUCER_SLEEPING = 65,
};
#define DATA_OFFSET 1536u
#define RECORD_HEADER 8u
#define KIND_MESSAGE 1u
#define KIND_PADDING 2u
/* A process that has not finished by then is stopped: a lost peer must not hang the harness. */
#define WATCHDOG_S 120

static inline uint32_t align8(uint32_t n) { return (n + 7u) & ~7u; }

struct ring {
  uint32_t *words;   /* the header */
  uint8_t *data;     /* the ring */
  uint32_t capacity;
  uint32_t mask;
  /* The producer's position and cached HEAD; the consumer's position and cached TAIL. */
  uint32_t tail, head_cache, head, tail_cache;
};

static double spin_us; /* < 0: busy-poll */

static uint32_t load(struct ring *r, int w) { return __atomic_load_n(&r->words[w], __ATOMIC_SEQ_CST); }
static void store(struct ring *r, int w, uint32_t v) { __atomic_store_n(&r->words[w], v, __ATOMIC_SEQ_CST); }

static struct ring open_ring(const char *name) {
  size_t size;
  void *p = map_shared(name, &size);
  struct ring r = {0};
  r.words = p;
  r.data = (uint8_t *)p + DATA_OFFSET;
  r.capacity = (uint32_t)size - DATA_OFFSET;
  if (r.capacity < 64 || (r.capacity & (r.capacity - 1)) != 0) {
    fprintf(stderr, "%s: the ring of %u bytes is not a power of two\n", name, r.capacity);
    exit(1);
  }
  r.mask = r.capacity - 1;
  r.tail = r.head_cache = load(&r, W_TAIL);
  r.head = r.tail_cache = load(&r, W_HEAD);
  return r;
}

static void futex_wait(uint32_t *word, uint32_t expected) {
  struct timespec slice = {0, 20 * 1000 * 1000};
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &slice, NULL, 0);
}

static void futex_wake(uint32_t *word) {
  syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/*
 * Waits until `possible(r)`: spins on the other side's position word, then
 * sleeps on that word with `sleeping` set (or polls forever when busy).
 */
static void wait_until(struct ring *r, int (*possible)(struct ring *), int other, int sleeping) {
  if (spin_us < 0) {
    while (!possible(r)) { /* busy-poll */ }
    return;
  }
  while (!possible(r)) {
    if (spin_us > 0) {
      uint32_t seen = load(r, other);
      double until = now_us() + spin_us;
      while (load(r, other) == seen && now_us() < until) { /* spin */ }
      if (possible(r)) return;
    }
    store(r, sleeping, 1);
    uint32_t s = load(r, other);
    if (!possible(r)) futex_wait(&r->words[other], s);
    store(r, sleeping, 0);
  }
}

/* ---- producing ------------------------------------------------------------ */

static uint32_t want; /* the record size a waiting producer needs room for */

static uint32_t needed(struct ring *r, uint32_t size) {
  uint32_t offset = r->tail & r->mask;
  return (r->capacity - offset < size ? r->capacity - offset : 0) + size;
}

static int has_room(struct ring *r) {
  r->head_cache = load(r, W_HEAD);
  return r->capacity - (r->tail - r->head_cache) >= needed(r, want);
}

static void write_header(struct ring *r, uint32_t offset, uint32_t length, uint32_t kind) {
  uint32_t *h = (uint32_t *)(r->data + offset);
  h[0] = length;
  h[1] = kind;
}

static void ring_send(struct ring *r, const void *payload, uint32_t length) {
  uint32_t size = align8(RECORD_HEADER + length);
  if (r->capacity - (r->tail - r->head_cache) < needed(r, size)) {
    want = size;
    if (!has_room(r)) wait_until(r, has_room, W_HEAD, W_PRODUCER_SLEEPING);
  }
  uint32_t offset = r->tail & r->mask;
  if (r->capacity - offset < size) {
    write_header(r, offset, r->capacity - offset, KIND_PADDING);
    r->tail += r->capacity - offset;
    offset = 0;
  }
  write_header(r, offset, length, KIND_MESSAGE);
  memcpy(r->data + offset + RECORD_HEADER, payload, length);
  r->tail += size;
  store(r, W_TAIL, r->tail);
  if (spin_us >= 0 && load(r, W_CONSUMER_SLEEPING) != 0) futex_wake(&r->words[W_TAIL]);
}

/* ---- consuming ------------------------------------------------------------ */

static int has_data(struct ring *r) {
  r->tail_cache = load(r, W_TAIL);
  return r->tail_cache != r->head;
}

static uint32_t ring_receive(struct ring *r, void *out) {
  for (;;) {
    if (r->head == r->tail_cache && !has_data(r)) wait_until(r, has_data, W_TAIL, W_CONSUMER_SLEEPING);
    uint32_t offset = r->head & r->mask;
    const uint32_t *h = (const uint32_t *)(r->data + offset);
    uint32_t length = h[0];
    if (h[1] == KIND_PADDING) {
      r->head += length;
      continue;
    }
    memcpy(out, r->data + offset + RECORD_HEADER, length);
    r->head += align8(RECORD_HEADER + length);
    store(r, W_HEAD, r->head);
    if (spin_us >= 0 && load(r, W_PRODUCER_SLEEPING) != 0) futex_wake(&r->words[W_HEAD]);
    return length;
  }
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s rtt|tput server|client PING PONG ITERATIONS SIZE SPIN_US|busy\n", argv[0]);
    return 2;
  }
  alarm(WATCHDOG_S);
  int rtt = strcmp(argv[1], "rtt") == 0;
  int server = strcmp(argv[2], "server") == 0;
  struct ring ping = open_ring(argv[3]);
  struct ring pong = open_ring(argv[4]);
  long iterations = atol(argv[5]);
  uint32_t size = (uint32_t)atol(argv[6]);
  spin_us = strcmp(argv[7], "busy") == 0 ? -1 : atof(argv[7]);
  /* As the Node side: with one CPU to run on, the peer cannot move meanwhile, so no spinning. */
  cpu_set_t cpus;
  if (spin_us > 0 && sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) == 1) spin_us = 0;
  if (align8(RECORD_HEADER + size) > ping.capacity / 2) {
    fprintf(stderr, "a %u-byte message does not fit half of a %u-byte ring\n", size, ping.capacity);
    return 2;
  }
  uint8_t *data = calloc(1, size > 8 ? size : 8);
  long warmup = iterations / 10;

  if (server) {
    ready();
    if (rtt) {
      for (long i = 0; i < warmup + iterations; i++) {
        uint32_t n = ring_receive(&ping, data);
        ring_send(&pong, data, n);
      }
    } else {
      for (long i = 0; i < warmup; i++) ring_receive(&ping, data);
      ring_send(&pong, data, 1);
      for (long i = 0; i < iterations; i++) ring_receive(&ping, data);
      ring_send(&pong, data, 1);
    }
    return 0;
  }

  memset(data, 0x61, size);
  if (rtt) {
    double *samples = calloc((size_t)iterations, sizeof(double));
    for (long i = 0; i < warmup + iterations; i++) {
      double t0 = now_us();
      ring_send(&ping, data, size);
      ring_receive(&pong, data);
      if (i >= warmup) samples[i - warmup] = now_us() - t0;
    }
    print_latency(samples, iterations);
  } else {
    uint8_t *ack = calloc(1, size);
    for (long i = 0; i < warmup; i++) ring_send(&ping, data, size);
    ring_receive(&pong, ack);
    double t0 = now_us();
    for (long i = 0; i < iterations; i++) ring_send(&ping, data, size);
    ring_receive(&pong, ack);
    print_throughput((double)iterations * (double)size, now_us() - t0);
  }
  return 0;
}
