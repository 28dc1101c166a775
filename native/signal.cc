// Signals with their siginfo: who sent them, and the sigqueue value.
//
// A signal JavaScript handles is blocked in every thread of the process,
// so it stays pending in the kernel, queued in the kernel's order (real-time
// signals queue; a standard one merges while pending). It is taken from a
// signalfd, which is readable while one is pending: each event loop that
// handles signals watches it (see signal.ts), and a *Sync wait polls it
// directly, so a signal costs one wake-up of the waiting thread and no
// thread in between.
//
// Every JavaScript thread (the main thread, each worker) that handles
// signals is a subscriber with its own queue and eventfd. Whichever thread
// takes a signal from the kernel copies it to the queue of every subscriber
// that handles it, and rings their eventfds: each thread with a handler sees
// every delivery, in kernel order. A thread's subscriptions end with its
// environment; the action that was there before ipckit returns when the
// last subscriber of a signal lets it go.
//
// Blocking a signal in threads that already exist (Node's and libuv's)
// uses the mask signal: its handler edits the mask the kernel restores
// (wake.cc, ChangeThreadMask), and being SA_RESTART it leaves the thread's
// own system call running. Threads created later inherit the block. As a
// safety net an SA_SIGINFO handler is installed too, for a thread that could
// not be reached: it records the signal in a small ring and rings a
// doorbell eventfd that every subscriber watches. A handler that was there
// before (libuv's, for process.on and child processes) is chained when a
// signal is taken, so Node keeps seeing the signal.
//
// SIGCHLD is the exception to "no thread in between": libuv learns that a
// child exited from it, and spawnSync() runs a nested loop on the main
// thread that no signalfd watcher can serve. While ipckit handles SIGCHLD a
// thread of its own (ipckit-sigchld) takes it with sigwaitinfo, records it
// in the ring and chains it at once.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "common.h"
#include "spin.h"
#include "sys.h"
#include "v8-bridge.h"
#include "wake.h"

namespace ipckit {

namespace {

// One delivery, as handed to JavaScript.
struct Taken {
  int32_t signo;
  int32_t code;
  int32_t pid;
  uint32_t uid;
  int64_t value;
};

struct Entry {
  std::atomic<uint64_t> ready;  // slot + 1 once the fields are written
  Taken taken;
};

// The safety net's ring: signals a thread caught with the handler, and
// SIGCHLD taken by ipckit-sigchld.
constexpr uint64_t kRingSize = 1 << 10;

struct Ring {
  Entry entries[kRingSize];
  std::atomic<uint64_t> tail{0};  // next slot to fill
  std::atomic<uint64_t> head{0};  // next slot to read (under g_setup)
  std::atomic<uint64_t> dropped{0};
  // Set after each write of the doorbell; a drain that clears it reads the
  // doorbell. (A drain can take an entry between its publication and the
  // write: the write then comes after the drain, with the ring empty, and
  // the doorbell must still be read once, or it stays readable for good.)
  std::atomic<uint32_t> rung{0};
};

// Most deliveries a subscriber holds before its thread takes them; beyond,
// newer ones are dropped and counted.
constexpr size_t kQueueLimit = 65536;

// A JavaScript thread that handles signals.
struct Subscriber {
  napi_env env;
  int eventfd;          // readable while `queue` holds something
  uint64_t mask = 0;    // the signals it handles (bit signo - 1)
  std::deque<Taken> queue;
  std::atomic<size_t> queued{0};
  uint64_t dropped = 0;
  bool rung = false;    // its eventfd was written and not read since (under g_setup)
  bool took = false;    // signalSpin took a signal from the kernel since the last drain (under g_setup)
};

Ring* g_ring = nullptr;
int g_doorbell = -1;  // the safety net's eventfd
int g_signalfd = -1;  // the handled signals, pending in the kernel
std::mutex g_setup;   // everything below, and the ring's reading end
std::vector<Subscriber*> g_subscribers;
thread_local Subscriber* tls_subscriber = nullptr;
struct sigaction g_previous[_NSIG];
bool g_installed[_NSIG];
// How many subscribers handle each signal.
int g_handlers[_NSIG];
// The disposition asked for (ignore, default) while other threads still
// handled the signal: it applies when the last one lets it go.
int g_final[_NSIG];
// Threads whose mask ipckit changed, per signal, to undo on release.
std::vector<int> g_blocked_in[_NSIG];
// The signals routed to ipckit (bit signo - 1).
std::atomic<uint64_t> g_caught{0};
uint64_t g_ring_dropped_seen = 0;

uint64_t Bit(int signo) { return uint64_t{1} << (signo - 1); }

sigset_t SetOf(uint64_t bits) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig = 1; sig <= 64; sig++) {
    if (bits & Bit(sig)) sigaddset(&set, sig);
  }
  return set;
}

// What the signalfd takes: every caught signal but SIGCHLD, which
// ipckit-sigchld takes.
void UpdateSignalfd() {
  sigset_t set = SetOf(g_caught.load() & ~Bit(SIGCHLD));
  signalfd(g_signalfd, &set, 0);
}

void Ring1(int fd) {
  uint64_t one = 1;
  ssize_t ignored = write(fd, &one, sizeof one);
  (void)ignored;
}

Taken FromSiginfo(int signo, const siginfo_t* info) {
  return Taken{signo, info->si_code, info->si_pid, info->si_uid,
               static_cast<int64_t>(reinterpret_cast<intptr_t>(info->si_value.sival_ptr))};
}

// Async-signal-safe: claims a slot of the ring, fills it, rings the doorbell.
void Record(const Taken& taken) {
  Ring* ring = g_ring;
  // A slot is claimed only when there is room: a claimed slot that is never
  // written would stop the reader there for good.
  uint64_t slot = ring->tail.load();
  bool room;
  while ((room = slot - ring->head.load() < kRingSize) && !ring->tail.compare_exchange_weak(slot, slot + 1)) {
  }
  if (!room) {
    ring->dropped.fetch_add(1);
  } else {
    Entry& e = ring->entries[slot & (kRingSize - 1)];
    e.taken = taken;
    e.ready.store(slot + 1, std::memory_order_release);
  }
  Ring1(g_doorbell);
  ring->rung.store(1);
}

void OnSignal(int signo, siginfo_t* info, void* context);

// Calls the other handler of `signo`: the one installed before ipckit's
// (libuv's, for process.on), or the one that replaced ipckit's since (a
// process.on added later), so Node's listeners keep working either way.
void Chain(int signo, siginfo_t* info, void* context) {
  struct sigaction current {};
  sigaction(signo, nullptr, &current);
  bool ours = (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSignal;
  const struct sigaction& other = ours ? g_previous[signo] : current;
  // A one-shot handler (SA_RESETHAND) ends in the default action: Node's own
  // SIGINT/SIGTERM handler restores the terminal and re-raises the signal to
  // die by it. Overriding the default overrides that too.
  if (other.sa_flags & SA_RESETHAND) return;
  if (other.sa_flags & SA_SIGINFO) {
    if (other.sa_sigaction != nullptr) other.sa_sigaction(signo, info, context);
  } else if (other.sa_handler != SIG_DFL && other.sa_handler != SIG_IGN && other.sa_handler != nullptr) {
    other.sa_handler(signo);
  }
}

// The safety net: a thread that does not block the signal runs this.
void OnSignal(int signo, siginfo_t* info, void* context) {
  int saved_errno = errno;
  Record(FromSiginfo(signo, info));
  Chain(signo, info, context);
  errno = saved_errno;
}

// The signal mask of thread `tid`, from /proc; false if it cannot be read.
bool ThreadBlocks(int tid, int signo, bool* blocks) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return false;
  char line[256];
  bool found = false;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, "SigBlk:", 7) == 0) {
      uint64_t mask = strtoull(line + 7, nullptr, 16);
      *blocks = (mask & Bit(signo)) != 0;
      found = true;
      break;
    }
  }
  fclose(f);
  return found;
}

int SelfTid() { return static_cast<int>(syscall(SYS_gettid)); }

std::vector<int> OtherThreads() {
  std::vector<int> tids;
  int self = SelfTid();
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return tids;
  while (dirent* d = readdir(dir)) {
    int tid = atoi(d->d_name);
    if (tid > 0 && tid != self) tids.push_back(tid);
  }
  closedir(dir);
  return tids;
}

// ipckit-sigchld: takes SIGCHLD while ipckit handles it (see the top).
pthread_t g_sigchld_thread;
bool g_sigchld_running = false;
std::atomic<bool> g_sigchld_stop{false};

void* SigchldMain(void*) {
  pthread_setname_np(pthread_self(), "ipckit-sigchld");
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  sigaddset(&wanted, WakeSignal());
  for (;;) {
    siginfo_t info;
    int signo = sigwaitinfo(&wanted, &info);
    if (signo == SIGCHLD) {
      Record(FromSiginfo(SIGCHLD, &info));
      Chain(SIGCHLD, &info, nullptr);
    } else if (signo == WakeSignal() && g_sigchld_stop.load()) {
      return nullptr;
    }
  }
}

// 0, or pthread_create's error.
int StartSigchldThread() {
  g_sigchld_stop.store(false);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int r = pthread_create(&g_sigchld_thread, &attr, SigchldMain, nullptr);
  pthread_attr_destroy(&attr);
  g_sigchld_running = r == 0;
  return r;
}

void StopSigchldThread() {
  if (!g_sigchld_running) return;
  g_sigchld_stop.store(true);
  pthread_kill(g_sigchld_thread, WakeSignal());  // queued: it waits for it
  pthread_join(g_sigchld_thread, nullptr);
  g_sigchld_running = false;
}

// Makes a subscriber's eventfd readable (under g_setup).
void RingSubscriber(Subscriber* sub) {
  Ring1(sub->eventfd);
  sub->rung = true;
}

// Adds a delivery to every subscriber that handles it; rings the eventfd of
// each one that had nothing queued, but `self`'s: the thread collecting
// takes its own queue right after, without a write and a read of its
// eventfd per signal.
void Deliver(const Taken& taken, Subscriber* self) {
  for (Subscriber* sub : g_subscribers) {
    if (!(sub->mask & Bit(taken.signo))) continue;
    if (sub->queue.size() >= kQueueLimit) {
      sub->dropped++;
      continue;
    }
    sub->queue.push_back(taken);
    if (sub->queued.fetch_add(1) == 0 && sub != self) RingSubscriber(sub);
  }
}

// Most signals taken from the kernel per call: a sender faster than the
// takers cannot hold a thread here.
constexpr size_t kTakeLimit = 1024;

// Moves what the ring and the signalfd hold to the subscribers' queues,
// for the thread of `self`; the signalfd is not read when `from_kernel` is
// false (what was pending stays there, and keeps the descriptor readable).
void Collect(Subscriber* self, bool from_kernel = true) {
  Ring* ring = g_ring;
  uint64_t ring_dropped = ring->dropped.load();
  if (ring_dropped != g_ring_dropped_seen) {
    for (Subscriber* sub : g_subscribers) sub->dropped += ring_dropped - g_ring_dropped_seen;
    g_ring_dropped_seen = ring_dropped;
  }
  if (ring->rung.exchange(0) != 0) {
    uint64_t counter;
    ssize_t ignored = SysRead(g_doorbell, &counter, sizeof counter);
    (void)ignored;
  }
  if (ring->tail.load() != ring->head.load()) {
    for (;;) {
      uint64_t head = ring->head.load();
      Entry& e = ring->entries[head & (kRingSize - 1)];
      if (e.ready.load(std::memory_order_acquire) != head + 1) break;
      Taken taken = e.taken;
      ring->head.store(head + 1);
      Deliver(taken, self);
    }
  }
  signalfd_siginfo batch[64];
  size_t total = 0;
  while (from_kernel && total < kTakeLimit) {
    ssize_t r = SysRead(g_signalfd, batch, sizeof batch);
    if (r <= 0) break;
    size_t count = static_cast<size_t>(r) / sizeof batch[0];
    for (size_t i = 0; i < count; i++) {
      const signalfd_siginfo& t = batch[i];
      siginfo_t si;
      std::memset(&si, 0, sizeof si);
      si.si_signo = static_cast<int>(t.ssi_signo);
      si.si_code = t.ssi_code;
      si.si_pid = static_cast<pid_t>(t.ssi_pid);
      si.si_uid = t.ssi_uid;
      si.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<intptr_t>(t.ssi_ptr));
      Deliver(FromSiginfo(si.si_signo, &si), self);
      Chain(si.si_signo, &si, nullptr);
    }
    total += count;
    if (count < sizeof batch / sizeof batch[0]) break;
  }
}

// Routes signo to ipckit: installs the handler (keeping the old action to
// chain and restore) and blocks the signal in every thread.
int Install(int signo) {
  struct sigaction sa {};
  sa.sa_sigaction = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  struct sigaction previous {};
  if (sigaction(signo, &sa, &previous) < 0) return -errno;
  // If we were ever the previous action, do not chain to ourselves.
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction == OnSignal) previous = {};
  g_previous[signo] = previous;
  g_installed[signo] = true;
  g_caught.fetch_or(Bit(signo));
  UpdateSignalfd();
  // Block it everywhere, so every instance waits in the kernel to be taken, in order.
  sigset_t one, none;
  sigemptyset(&one);
  sigemptyset(&none);
  sigaddset(&one, signo);
  bool blocked = true;
  if (ThreadBlocks(SelfTid(), signo, &blocked) && !blocked) g_blocked_in[signo].push_back(SelfTid());
  pthread_sigmask(SIG_BLOCK, &one, nullptr);
  for (int tid : OtherThreads()) {
    bool blocks = true;
    if (!ThreadBlocks(tid, signo, &blocks) || blocks) continue;
    if (ChangeThreadMask(tid, one, none)) g_blocked_in[signo].push_back(tid);
  }
  return 0;
}

// Gives signo back: 0 restores the action found when ipckit took the
// signal, 1 the default (SIG_DFL), 2 ignores (SIG_IGN).
int Uninstall(int signo, int disposition) {
  if (signo == SIGCHLD) StopSigchldThread();
  g_caught.fetch_and(~Bit(signo));
  UpdateSignalfd();
  struct sigaction current {};
  sigaction(signo, nullptr, &current);
  bool ours = (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSignal;
  struct sigaction sa {};
  if (disposition == 0 && g_installed[signo]) {
    // Someone (process.on) replaced ipckit's handler since: theirs stays.
    sa = ours ? g_previous[signo] : current;
  } else {
    sa.sa_handler = disposition == 2 ? SIG_IGN : SIG_DFL;
    sigemptyset(&sa.sa_mask);
  }
  if (sigaction(signo, &sa, nullptr) < 0) return -errno;
  bool was_installed = g_installed[signo];
  g_installed[signo] = false;
  g_previous[signo] = {};
  if (!was_installed) return 0;
  sigset_t one, none;
  sigemptyset(&one);
  sigemptyset(&none);
  sigaddset(&one, signo);
  // Instances still pending arrived while the signal was handled: they are
  // taken here (nobody is left to hand them to), not given to the restored
  // action. A SIGCHLD is the exception: libuv needs it to reap its children.
  siginfo_t taken;
  timespec now = {0, 0};
  while (sigtimedwait(&one, &taken, &now) == signo) {
    if (signo == SIGCHLD) Chain(signo, &taken, nullptr);
  }
  // Unblock where ipckit blocked it.
  int self = SelfTid();
  for (int tid : g_blocked_in[signo]) {
    if (tid != self) ChangeThreadMask(tid, none, one);
  }
  g_blocked_in[signo].clear();
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  return 0;
}

// Ends `sub`'s handling of signo; the last subscriber gives the signal back.
int Unsubscribe(Subscriber* sub, int signo, int disposition) {
  if (sub != nullptr && (sub->mask & Bit(signo))) {
    sub->mask &= ~Bit(signo);
    g_handlers[signo]--;
  } else if (disposition == 0) {
    return 0;  // Nothing of this thread's to release.
  }
  if (disposition != 0) g_final[signo] = disposition;
  if (g_handlers[signo] > 0) return 0;
  int final = g_final[signo];
  g_final[signo] = 0;
  return Uninstall(signo, final);
}

// An environment (the main thread's, a worker's) ends: its handlers go.
void DropSubscriber(void* arg) {
  auto* sub = static_cast<Subscriber*>(arg);
  std::lock_guard<std::mutex> lock(g_setup);
  for (int sig = 1; sig <= 64; sig++) {
    if (sub->mask & Bit(sig)) Unsubscribe(sub, sig, 0);
  }
  for (size_t i = 0; i < g_subscribers.size(); i++) {
    if (g_subscribers[i] == sub) {
      g_subscribers.erase(g_subscribers.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  if (tls_subscriber == sub) tls_subscriber = nullptr;
  close(sub->eventfd);
  delete sub;
}

}  // namespace

// signalSetup() -> [signalfd, doorbell, eventfd]: the descriptors that
// become readable when a handled signal is pending in the kernel, the
// safety net caught one, or another thread queued one for this one. The
// first two are the process's; the third is this thread's.
static Napi::Value SignalSetup(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_setup);
  if (g_signalfd < 0) {
    InstallWakeHandler();
    sigset_t none;
    sigemptyset(&none);
    int sfd = signalfd(-1, &none, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return Errno(info.Env(), errno);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
      int err = errno;
      close(sfd);
      return Errno(info.Env(), err);
    }
    g_ring = new Ring();
    g_signalfd = sfd;
    g_doorbell = efd;
  }
  if (tls_subscriber == nullptr) {
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return Errno(info.Env(), errno);
    auto* sub = new Subscriber;
    sub->env = info.Env();
    sub->eventfd = efd;
    g_subscribers.push_back(sub);
    tls_subscriber = sub;
    napi_add_env_cleanup_hook(info.Env(), DropSubscriber, sub);
  }
  Napi::Array fds = Napi::Array::New(info.Env(), 3);
  fds.Set(0u, g_signalfd);
  fds.Set(1u, g_doorbell);
  fds.Set(2u, tls_subscriber->eventfd);
  return fds;
}

// signalHandle(signo) -> 0: this thread handles signo (after signalSetup)
static Napi::Value SignalHandle(const Napi::CallbackInfo& info) {
  int signo = ArgInt(info, 0);
  std::lock_guard<std::mutex> lock(g_setup);
  Subscriber* sub = tls_subscriber;
  if (sub == nullptr) return Errno(info.Env(), EINVAL);
  if (sub->mask & Bit(signo)) return Napi::Number::New(info.Env(), 0);
  if (g_handlers[signo] == 0) {
    int r = Install(signo);
    if (r < 0) return Errno(info.Env(), -r);
    if (signo == SIGCHLD && (r = StartSigchldThread()) != 0) {
      Uninstall(signo, 0);
      return Errno(info.Env(), r);
    }
  }
  g_handlers[signo]++;
  sub->mask |= Bit(signo);
  return Napi::Number::New(info.Env(), 0);
}

// signalRelease(signo, disposition) -> 0: this thread no longer handles
// signo. Once no thread does, disposition 0 restores the action found when
// ipckit took the signal, 1 the default (SIG_DFL), 2 ignores (SIG_IGN); 1 or
// 2 asked while other threads still handle it applies when they let it go.
static Napi::Value SignalRelease(const Napi::CallbackInfo& info) {
  int signo = ArgInt(info, 0);
  int disposition = ArgInt(info, 1);
  std::lock_guard<std::mutex> lock(g_setup);
  int r = Unsubscribe(tls_subscriber, signo, disposition);
  return r < 0 ? Errno(info.Env(), -r) : Napi::Number::New(info.Env(), 0);
}

// signalDrain(out: Float64Array) -> entries copied (6 numbers each:
// signo, code, pid, uid, value, dropped-so-far), oldest first: this
// thread's deliveries, after moving what the safety net caught and what is
// pending in the kernel to every subscriber. Runs the chained handler
// (process.on) of each signal taken from the kernel.
static void SignalDrain(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  DirectArgs::Doubles out = args.Float64s(0);
  if (!args.ok()) return;
  size_t capacity = out.length / 6;
  std::lock_guard<std::mutex> lock(g_setup);
  Subscriber* sub = tls_subscriber;
  if (sub == nullptr || g_ring == nullptr) return args.Return(0);
  // Right after a spin took a signal (the caller drains at once), the
  // signalfd is left alone: the look found one, and a read now would most
  // often find none, for a system call. Anything still pending keeps the
  // descriptor readable for the next look or the event loop.
  // Nor is it read while this thread's queue holds a drain's worth already:
  // what is pending stays in the kernel, which queues it in order and makes
  // a sender faster than the handlers wait (EAGAIN past RLIMIT_SIGPENDING)
  // rather than a queue here grow to its limit and drop.
  Collect(sub, !sub->took && sub->queue.size() < capacity);
  sub->took = false;
  if (sub->rung) {
    uint64_t counter;
    ssize_t ignored = SysRead(sub->eventfd, &counter, sizeof counter);
    (void)ignored;
    sub->rung = false;
  }
  size_t n = 0;
  while (n < capacity && !sub->queue.empty()) {
    const Taken& t = sub->queue.front();
    double* row = out.data + n * 6;
    row[0] = t.signo;
    row[1] = t.code;
    row[2] = t.pid;
    row[3] = t.uid;
    row[4] = static_cast<double>(t.value);
    row[5] = static_cast<double>(sub->dropped);
    sub->queue.pop_front();
    n++;
  }
  sub->queued.store(sub->queue.size());
  // More remain: make sure the thread comes back for them.
  if (!sub->queue.empty()) RingSubscriber(sub);
  args.Return(static_cast<double>(n));
}

// Takes one handled signal pending in the kernel, if any, to the
// subscribers' queues (sigtimedwait with no wait: the look and the take in
// one system call). Under g_setup, as the signalfd's reads are, so that
// threads taking signals hand them on in the kernel's order.
bool TakeOne(Subscriber* self) {
  static const timespec kNow = {0, 0};
  std::lock_guard<std::mutex> lock(g_setup);
  sigset_t set = SetOf(g_caught.load() & ~Bit(SIGCHLD));
  siginfo_t si;
  int signo = sigtimedwait(&set, &si, &kNow);
  if (signo <= 0) return false;
  // As the signalfd reports it: a timer's or an I/O signal's siginfo holds
  // no sender where si_pid and si_uid are (the chained handler gets it whole).
  Taken taken = FromSiginfo(signo, &si);
  if (si.si_code == SI_TIMER || si.si_code == SI_SIGIO || (signo == SIGIO && si.si_code > 0 && si.si_code != SI_KERNEL)) {
    taken.pid = 0;
    taken.uid = 0;
  }
  Deliver(taken, self);
  Chain(signo, &si, nullptr);
  self->took = true;
  return true;
}

// signalSpin(spinUs) -> 1 once a handled signal is queued for this thread
// (one pending in the kernel is taken for it: the caller drains next), or
// is caught by the safety net, or SIGCHLD is pending; 0 if none came within
// spinUs microseconds: the spin half of a spin-then-sleep wait, yielding
// the CPU between looks. It looks at once, then while the budget lasts.
static void SignalSpin(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  double spin_us = args.Number(0);
  if (!args.ok()) return;
  Subscriber* sub = tls_subscriber;
  if (g_ring == nullptr || sub == nullptr) return args.Return(0);
  int r = Spin(spin_us, EAGAIN, [sub] {
    if (sub->queued.load() > 0 || g_ring->tail.load() != g_ring->head.load()) return 1;
    if (TakeOne(sub)) return 1;
    // SIGCHLD is ipckit-sigchld's to take: only seen pending.
    if (g_caught.load() & Bit(SIGCHLD)) {
      sigset_t pending;
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGCHLD) == 1) return 1;
    }
    return -EAGAIN;
  });
  args.Return(r == 1 ? 1 : 0);
}

// kill(pid, signo) -> 0, or -errno
static void Kill(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int pid = args.Int(0);
  int signo = args.Int(1);
  if (!args.ok()) return;
  args.Return(kill(pid, signo) < 0 ? -errno : 0);
}

// sigqueue(pid, signo, value) -> 0, or -errno
static void SigQueue(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int pid = args.Int(0);
  int signo = args.Int(1);
  int64_t v = args.Int64(2);
  if (!args.ok()) return;
  union sigval value;
  std::memset(&value, 0, sizeof value);
  value.sival_ptr = reinterpret_cast<void*>(static_cast<intptr_t>(v));
  args.Return(sigqueue(pid, signo, value) < 0 ? -errno : 0);
}

// parentDeathSignal(signo, parentPid) -> 0, or -ESRCH when the parent is
// already gone (the signal would then never come: the caller stops itself).
static Napi::Value ParentDeathSignal(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(ArgInt(info, 0))) < 0) return Errno(info.Env(), errno);
  return Napi::Number::New(info.Env(), getppid() == ArgInt(info, 1) ? 0 : -ESRCH);
}

// signalDisposition(signo) -> 0 default, 1 ignored, 2 handled
static Napi::Value SignalDisposition(const Napi::CallbackInfo& info) {
  struct sigaction sa {};
  if (sigaction(ArgInt(info, 0), nullptr, &sa) < 0) return Errno(info.Env(), errno);
  int kind = (sa.sa_flags & SA_SIGINFO) ? 2 : sa.sa_handler == SIG_DFL ? 0 : sa.sa_handler == SIG_IGN ? 1 : 2;
  return Napi::Number::New(info.Env(), kind);
}

void InitSignal(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"signalSetup", SignalSetup}, {"signalHandle", SignalHandle}, {"signalRelease", SignalRelease},
      {"signalDisposition", SignalDisposition}, {"parentDeathSignal", ParentDeathSignal}
  });
  ExportDirect(exports, {{"signalDrain", SignalDrain}, {"signalSpin", SignalSpin}, {"kill", Kill}, {"sigqueue", SigQueue}});
  Napi::Object c = Napi::Object::New(env);
  c.Set("SIGRTMIN", SIGRTMIN);
  c.Set("SIGRTMAX", SIGRTMAX);
  c.Set("SI_USER", static_cast<int>(SI_USER));
  c.Set("SI_QUEUE", static_cast<int>(SI_QUEUE));
  c.Set("SI_KERNEL", static_cast<int>(SI_KERNEL));
  c.Set("SI_TKILL", static_cast<int>(SI_TKILL));
  exports.Set("signalConstants", c);
}

}  // namespace ipckit
