#define _GNU_SOURCE
/*
 * C reference for the socket benchmark: the system calls ipckit makes, on
 * blocking descriptors, with nothing around them.
 *
 *   socket KIND rtt|tput|tputv|burst ITERATIONS SIZE PATH
 *
 * KIND is unix (stream), seqpacket, dgram (Unix datagram), tcp or udp
 * (127.0.0.1, a port the kernel picks). PATH is the server's socket file
 * for the Unix kinds (a datagram client binds PATH.c); ignored otherwise.
 * The process makes the server socket, forks the server, and measures as
 * the client:
 *
 * rtt: ITERATIONS round trips of SIZE bytes after ITERATIONS/10 warm-up
 *   ones; prints {"p50_us","p99_us"} (and "resent", datagrams sent again after
 *   200 ms without an answer, for the datagram kinds).
 * tput: a warm-up batch of ITERATIONS/10 messages and an acknowledgement,
 *   then ITERATIONS messages of SIZE bytes and an acknowledgement; prints
 *   {"mb_s","sent","received"}: MB/s counts only what the server received
 *   (UDP may drop; the acknowledgement request is re-sent until answered).
 * tputv: tput with the messages sent GATHER at a time, as the kernel's
 *   batched calls allow: one sendmsg of GATHER frames on a stream, one
 *   sendmmsg of GATHER packets otherwise; the server takes packets GATHER at
 *   a time with recvmmsg (a stream's read-ahead already takes many).
 * burst: for K in 1, 10, ..., 10000, max(1, ITERATIONS/K) rounds (after
 *   one warm-up round) of K messages of SIZE bytes in flight: sent as fast
 *   as the socket takes them, each echoed, all received; prints
 *   {"bursts":{"K":ns per message,...}}.
 *
 * Stream kinds frame each message as a 4-byte big-endian length and the
 * bytes, written with one send and read through a 64 KiB read-ahead (one
 * recv per message when they come one at a time, as ipckit reads);
 * seqpacket and datagram kinds send one message per packet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

enum kind { UNIX_STREAM, SEQPACKET, DGRAM, TCP, UDP };

static enum kind kind;
static int framed;   /* stream kinds: length-prefixed messages */
static int datagram; /* dgram and udp: addressed sends, may need re-sends */
static int gathered; /* tputv: GATHER messages per system call */
#define GATHER 64

/* Where the datagram client sends. */
static struct sockaddr_storage server_addr;
static socklen_t server_len;

/* An acknowledgement request is a message this short: a 4-byte batch id. */
#define CONTROL 4
#define READ_AHEAD (64 * 1024)

static void put32(char *p, uint32_t v) {
  v = htonl(v);
  memcpy(p, &v, 4);
}

static uint32_t get32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return ntohl(v);
}

/* ---- framing: a read-ahead over a stream socket ---------------------------- */

struct reader {
  char *buf;
  size_t cap, start, end;
};

static struct reader reader_new(size_t size) {
  struct reader r = {malloc(READ_AHEAD + size + 8), READ_AHEAD + size + 8, 0, 0};
  if (!r.buf) die("malloc");
  return r;
}

/*
 * The next complete frame in the read-ahead, or NULL. Sets *len.
 * Consumes it: the pointer stays valid until the next read.
 */
static char *frame_ready(struct reader *r, size_t *len) {
  size_t have = r->end - r->start;
  if (have < 4) return NULL;
  uint32_t n = get32(r->buf + r->start);
  if (have < 4 + (size_t)n) return NULL;
  char *p = r->buf + r->start + 4;
  r->start += 4 + n;
  *len = n;
  return p;
}

/* One recv into the read-ahead (up to 64 KiB); returns what recv returned. */
static ssize_t fill(int fd, struct reader *r, int flags) {
  if (r->start == r->end) r->start = r->end = 0;
  if (r->cap - r->end < READ_AHEAD) {
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
  }
  size_t room = r->cap - r->end;
  ssize_t n = recv(fd, r->buf + r->end, room < READ_AHEAD ? room : READ_AHEAD, flags);
  if (n > 0) r->end += (size_t)n;
  return n;
}

/* ---- one message, blocking ------------------------------------------------ */

static void send_all(int fd, const char *buf, size_t n) {
  for (size_t put = 0; put < n;) {
    ssize_t r = send(fd, buf + put, n - put, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("send");
    put += (size_t)r;
  }
}

/* Sends one message of `n` bytes found at out + 4 (out has 4 bytes of room in front for the frame header). */
static void send_message(int fd, char *out, size_t n, const struct sockaddr *to, socklen_t tolen) {
  if (framed) {
    put32(out, (uint32_t)n);
    send_all(fd, out, n + 4);
    return;
  }
  for (;;) {
    ssize_t r = sendto(fd, out + 4, n, MSG_NOSIGNAL, to, tolen);
    if (r >= 0) return;
    if (errno == EINTR) continue;
    /* UDP on loopback: the receiver's queue was full. */
    if (kind == UDP && (errno == ENOBUFS || errno == ECONNREFUSED)) return;
    die("sendto");
  }
}

/*
 * Receives one message: returns a pointer to it and sets *len, or NULL at
 * the end of the stream (or, with a receive timeout set, when it expires).
 * `from` (may be NULL) gets the sender of a datagram.
 */
static char *receive_message(int fd, struct reader *r, size_t *len, struct sockaddr_storage *from, socklen_t *fromlen) {
  if (framed) {
    for (;;) {
      char *p = frame_ready(r, len);
      if (p) return p;
      ssize_t n = fill(fd, r, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return NULL;
      if (n < 0) die("recv");
    }
  }
  for (;;) {
    if (fromlen) *fromlen = sizeof *from;
    ssize_t n = recvfrom(fd, r->buf, r->cap, 0, (struct sockaddr *)from, fromlen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return NULL;
    if (n < 0) die("recv");
    if (n == 0 && !datagram) return NULL; /* seqpacket: the peer closed */
    *len = (size_t)n;
    return r->buf;
  }
}

static void set_receive_timeout(int fd, long us) {
  struct timeval tv = {us / 1000000, us % 1000000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("setsockopt SO_RCVTIMEO");
}

/* ---- the server ----------------------------------------------------------- */

static ssize_t sendmsg_call(int fd, struct iovec *iov, int count) {
  struct msghdr msg = {0};
  msg.msg_iov = iov;
  msg.msg_iovlen = (size_t)count;
  return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Sends `count` messages of `n` bytes found at out + 4, GATHER per system call. */
static void send_gathered(int fd, char *out, size_t n, long count, const struct sockaddr *to, socklen_t tolen) {
  struct iovec iov[GATHER];
  struct mmsghdr msgs[GATHER];
  if (framed) put32(out, (uint32_t)n);
  for (long i = 0; i < count; i += GATHER) {
    int k = count - i < GATHER ? (int)(count - i) : GATHER;
    if (framed) {
      for (int j = 0; j < k; j++) iov[j] = (struct iovec){out, n + 4};
      put_all(fd, iov, k, sendmsg_call, "sendmsg");
      continue;
    }
    memset(msgs, 0, sizeof msgs);
    for (int j = 0; j < k; j++) {
      iov[j] = (struct iovec){out + 4, n};
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
      msgs[j].msg_hdr.msg_name = (void *)to;
      msgs[j].msg_hdr.msg_namelen = tolen;
    }
    for (int sent = 0; sent < k;) {
      int r = sendmmsg(fd, msgs + sent, (unsigned)(k - sent), MSG_NOSIGNAL);
      if (r < 0 && errno == EINTR) continue;
      /* UDP on loopback: the receiver's queue was full; the rest of the group is dropped. */
      if (r < 0 && kind == UDP && (errno == ENOBUFS || errno == ECONNREFUSED)) break;
      if (r <= 0) die("sendmmsg");
      sent += r;
    }
  }
}

/*
 * rtt and burst: echoes every message to its sender. tput: swallows
 * messages, and answers each acknowledgement request (batch id) with the id
 * and the number of messages received in that batch; a repeated request
 * (its answer was lost) gets the same answer again.
 */
static uint32_t count = 0, last_id = 0, last_count = 0;
static int answered = 0;

/* What the server does with one message `m` from `to`. */
static void handle(int fd, int echo, char *out, char *m, size_t len, const struct sockaddr *to, socklen_t tolen);

static void serve(int fd, int echo, size_t size) {
  struct reader r = reader_new(size);
  char *out = malloc(size + 8);
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof from;
  if (gathered && !framed) {
    /* Packets GATHER at a time. */
    struct mmsghdr msgs[GATHER];
    struct iovec iov[GATHER];
    struct sockaddr_storage froms[GATHER];
    char *slots = malloc(GATHER * (size + 8));
    if (!slots) die("malloc");
    for (;;) {
      memset(msgs, 0, sizeof msgs);
      for (int j = 0; j < GATHER; j++) {
        iov[j] = (struct iovec){slots + (size_t)j * (size + 8), size + 8};
        msgs[j].msg_hdr.msg_iov = &iov[j];
        msgs[j].msg_hdr.msg_iovlen = 1;
        msgs[j].msg_hdr.msg_name = datagram ? &froms[j] : NULL;
        msgs[j].msg_hdr.msg_namelen = datagram ? sizeof froms[j] : 0;
      }
      int got = recvmmsg(fd, msgs, GATHER, MSG_WAITFORONE, NULL);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) die("recvmmsg");
      for (int j = 0; j < got; j++) {
        if (!datagram && msgs[j].msg_len == 0) return; /* seqpacket: the peer closed */
        handle(fd, echo, out, iov[j].iov_base, msgs[j].msg_len, datagram ? (struct sockaddr *)&froms[j] : NULL,
               datagram ? msgs[j].msg_hdr.msg_namelen : 0);
      }
    }
  }
  for (;;) {
    size_t len;
    char *m = receive_message(fd, &r, &len, datagram ? &from : NULL, datagram ? &fromlen : NULL);
    if (!m) return;
    handle(fd, echo, out, m, len, datagram ? (struct sockaddr *)&from : NULL, datagram ? fromlen : 0);
  }
}

static void handle(int fd, int echo, char *out, char *m, size_t len, const struct sockaddr *to, socklen_t tolen) {
  {
    if (echo) {
      memcpy(out + 4, m, len);
      send_message(fd, out, len, to, tolen);
      return;
    }
    if (len != CONTROL) {
      count++;
      return;
    }
    uint32_t id = get32(m);
    if (!answered || id != last_id) {
      last_id = id;
      last_count = count;
      count = 0;
      answered = 1;
    }
    put32(out + 4, last_id);
    put32(out + 8, last_count);
    send_message(fd, out, 8, to, tolen);
  }
}

/* ---- the client ----------------------------------------------------------- */

static const struct sockaddr *dest(void) {
  return datagram ? (struct sockaddr *)&server_addr : NULL;
}

static long resent;

/* One round trip: sends seq in the first 4 bytes; for datagrams, re-sends after 200 ms without the answer. */
static void round_trip(int fd, struct reader *r, char *out, size_t size, uint32_t seq) {
  put32(out + 4, seq);
  send_message(fd, out, size, dest(), server_len);
  for (;;) {
    size_t len;
    char *m = receive_message(fd, r, &len, NULL, NULL);
    if (!m) {
      if (!datagram) {
        fprintf(stderr, "the server closed the connection\n");
        exit(1);
      }
      resent++;
      send_message(fd, out, size, dest(), server_len);
      continue;
    }
    if (len == size && get32(m) == seq) return;
    if (!datagram) {
      fprintf(stderr, "unexpected reply of %zu bytes\n", len);
      exit(1);
    }
    /* A late answer to a re-sent request: skip it. */
  }
}

static void drive_rtt(int fd, long n, size_t size) {
  struct reader r = reader_new(size);
  char *out = calloc(1, size + 8);
  double *samples = calloc((size_t)n, sizeof(double));
  if (datagram) set_receive_timeout(fd, 200000);
  for (long i = 0; i < n + n / 10; i++) {
    double t0 = now_us();
    round_trip(fd, &r, out, size, (uint32_t)i);
    if (i >= n / 10) samples[i - n / 10] = now_us() - t0;
  }
  qsort(samples, (size_t)n, sizeof(double), cmp_double);
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f", samples[n / 2], samples[(n * 99) / 100]);
  if (datagram) printf(",\"resent\":%ld", resent);
  printf("}\n");
  fflush(stdout);
}

/* Sends `n` messages and the acknowledgement request `id`; returns how many the server received. */
static uint32_t batch(int fd, struct reader *r, char *out, long n, size_t size, uint32_t id) {
  if (gathered) send_gathered(fd, out, size, n, dest(), server_len);
  else for (long i = 0; i < n; i++) send_message(fd, out, size, dest(), server_len);
  char ask[8];
  put32(ask + 4, id);
  for (;;) {
    send_message(fd, ask, CONTROL, dest(), server_len);
    size_t len;
    char *m;
    while ((m = receive_message(fd, r, &len, NULL, NULL)) != NULL) {
      if (len == 8 && get32(m) == id) return get32(m + 4);
    }
    if (!datagram) {
      fprintf(stderr, "the server closed the connection\n");
      exit(1);
    }
  }
}

static void drive_tput(int fd, long n, size_t size) {
  struct reader r = reader_new(size);
  char *out = calloc(1, size + 8);
  if (datagram) set_receive_timeout(fd, 20000);
  batch(fd, &r, out, n / 10, size, 1);
  double t0 = now_us();
  uint32_t got = batch(fd, &r, out, n, size, 2);
  double elapsed = now_us() - t0;
  if (!datagram && got != (uint32_t)n) {
    fprintf(stderr, "the server received %u of %ld messages\n", got, n);
    exit(1);
  }
  printf("{\"mb_s\":%.3f,\"sent\":%ld,\"received\":%u}\n", (double)got * (double)size / elapsed, n, got);
  fflush(stdout);
}

/*
 * One round of a burst: `k` messages in flight. Non-blocking sends and
 * receives of one message per call, poll() when neither can proceed. A
 * stream send the kernel took part of is finished before the next one.
 */
static void burst_round(int fd, struct reader *r, char *out, size_t size, long k) {
  long sent = 0, got = 0;
  size_t partial = 0; /* bytes of the current frame already sent */
  size_t whole = framed ? size + 4 : size;
  while (got < k) {
    int progressed = 0;
    while (sent < k) {
      ssize_t w;
      if (framed) w = send(fd, out + partial, whole - partial, MSG_DONTWAIT | MSG_NOSIGNAL);
      else w = sendto(fd, out + 4, size, MSG_DONTWAIT | MSG_NOSIGNAL, dest(), server_len);
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) die("send");
      progressed = 1;
      partial += (size_t)w;
      if (partial == whole) {
        partial = 0;
        sent++;
      }
    }
    for (;;) {
      size_t len;
      if (framed) {
        if (frame_ready(r, &len)) {
          got++;
          progressed = 1;
          continue;
        }
        ssize_t n = fill(fd, r, MSG_DONTWAIT);
        if (n > 0) continue;
        if (n == 0) {
          fprintf(stderr, "the server closed the connection\n");
          exit(1);
        }
      } else {
        ssize_t n = recv(fd, r->buf, r->cap, MSG_DONTWAIT);
        if (n > 0) {
          got++;
          progressed = 1;
          continue;
        }
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno != EINTR) die("recv");
    }
    if (!progressed && got < k) {
      struct pollfd p = {fd, (short)(POLLIN | (sent < k ? POLLOUT : 0)), 0};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) die("poll");
    }
  }
}

static void drive_burst(int fd, long n, size_t size) {
  static const long sizes[] = {1, 10, 100, 1000, 10000};
  struct reader r = reader_new(size);
  char *out = calloc(1, size + 8);
  put32(out, (uint32_t)size);
  printf("{\"bursts\":{");
  for (int s = 0; s < 5; s++) {
    long k = sizes[s];
    long rounds = n / k > 0 ? n / k : 1;
    burst_round(fd, &r, out, size, k);
    double t0 = now_us();
    for (long i = 0; i < rounds; i++) burst_round(fd, &r, out, size, k);
    double ns = (now_us() - t0) * 1000.0 / ((double)rounds * (double)k);
    printf("%s\"%ld\":%.1f", s ? "," : "", k, ns);
  }
  printf("}}\n");
  fflush(stdout);
}

/* ---- set-up --------------------------------------------------------------- */

static socklen_t unix_address(struct sockaddr_storage *ss, const char *path) {
  struct sockaddr_un *un = (struct sockaddr_un *)ss;
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof un->sun_path) {
    fprintf(stderr, "socket path too long: %s\n", path);
    exit(2);
  }
  strcpy(un->sun_path, path);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static socklen_t loopback(struct sockaddr_storage *ss) {
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  memset(in, 0, sizeof *in);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sizeof *in;
}

static int open_socket(void) {
  int domain = kind == TCP || kind == UDP ? AF_INET : AF_UNIX;
  int type = kind == UNIX_STREAM || kind == TCP ? SOCK_STREAM : kind == SEQPACKET ? SOCK_SEQPACKET : SOCK_DGRAM;
  int fd = socket(domain, type | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  return fd;
}

/* Binds a new socket to the server's address (the kernel picks the port) and records that address. */
static int server_socket(const char *path) {
  int fd = open_socket();
  if (kind == TCP || kind == UDP) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    server_len = loopback(&server_addr);
  } else {
    unlink(path);
    server_len = unix_address(&server_addr, path);
  }
  if (bind(fd, (struct sockaddr *)&server_addr, server_len) < 0) die("bind");
  server_len = sizeof server_addr;
  if (getsockname(fd, (struct sockaddr *)&server_addr, &server_len) < 0) die("getsockname");
  if (!datagram && listen(fd, 16) < 0) die("listen");
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: see the comment at the top of socket.c\n");
    return 2;
  }
  const char *k = argv[1];
  kind = !strcmp(k, "unix") ? UNIX_STREAM : !strcmp(k, "seqpacket") ? SEQPACKET : !strcmp(k, "dgram") ? DGRAM
       : !strcmp(k, "tcp") ? TCP : !strcmp(k, "udp") ? UDP : (enum kind)-1;
  if ((int)kind < 0) {
    fprintf(stderr, "unknown socket kind %s\n", k);
    return 2;
  }
  framed = kind == UNIX_STREAM || kind == TCP;
  datagram = kind == DGRAM || kind == UDP;
  const char *mode = argv[2];
  long n = atol(argv[3]);
  size_t size = (size_t)atol(argv[4]);
  const char *path = argv[5];
  if (size < 8) {
    fprintf(stderr, "SIZE must be at least 8 bytes\n");
    return 2;
  }
  gathered = strcmp(mode, "tputv") == 0;
  int echo = strcmp(mode, "tput") != 0 && !gathered;

  int listener = server_socket(path);
  char client_path[sizeof ((struct sockaddr_un *)0)->sun_path + 4];
  int client = -1;
  if (datagram) {
    /* The client binds too: the server answers to its address. */
    client = open_socket();
    struct sockaddr_storage ss;
    socklen_t len;
    if (kind == UDP) {
      len = loopback(&ss);
    } else {
      snprintf(client_path, sizeof client_path, "%s.c", path);
      unlink(client_path);
      len = unix_address(&ss, client_path);
    }
    if (bind(client, (struct sockaddr *)&ss, len) < 0) die("bind client");
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int fd = listener;
    if (!datagram) {
      fd = accept(listener, NULL, NULL);
      if (fd < 0) die("accept");
      close(listener);
      if (kind == TCP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
    }
    serve(fd, echo, size);
    _exit(0);
  }
  if (!datagram) {
    client = open_socket();
    if (connect(client, (struct sockaddr *)&server_addr, server_len) < 0) die("connect");
    if (kind == TCP) {
      int one = 1;
      setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    close(listener);
  }
  if (!strcmp(mode, "rtt")) drive_rtt(client, n, size);
  else if (!strcmp(mode, "tput") || gathered) drive_tput(client, n, size);
  else drive_burst(client, n, size);
  if (datagram) kill(pid, SIGKILL);
  else close(client);
  waitpid(pid, NULL, 0);
  if (kind == UNIX_STREAM || kind == SEQPACKET || kind == DGRAM) unlink(path);
  if (kind == DGRAM) unlink(client_path);
  return 0;
}
