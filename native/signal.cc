// Signals with their siginfo: who sent them, and the sigqueue value.
//
// A signal JavaScript handles is blocked in every thread of the process,
// so it stays pending in the kernel, queued in the kernel's order (real-time
// signals queue; a standard one merges while pending). The main thread takes
// it from a signalfd, which is readable while one is pending: the event loop
// watches it (see signal.ts), and a *Sync wait polls it directly, so a
// signal costs one wake-up of the waiting thread and no thread in between.
//
// Blocking a signal in threads that already exist (Node's and libuv's)
// uses the mask signal: its handler edits the mask the kernel restores
// (wake.cc, ChangeThreadMask), and being SA_RESTART it leaves the thread's
// own system call running. Threads created later inherit the block
// from the main thread. As a safety net an SA_SIGINFO handler is installed
// too, for a thread that could not be reached: it records the signal in a
// small ring and writes an eventfd. JavaScript watches both descriptors. A
// handler that was there before (libuv's, for process.on) is chained when a
// signal is taken, so Node keeps seeing the signal.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common.h"
#include "spin.h"
#include "wake.h"

namespace ipckit {

namespace {

struct Entry {
  std::atomic<uint64_t> ready;  // slot + 1 once the fields are written
  int32_t signo;
  int32_t code;
  int32_t pid;
  uint32_t uid;
  int64_t value;
};

// The safety net's ring: signals a thread caught with the handler.
constexpr uint64_t kRingSize = 1 << 10;

struct Ring {
  Entry entries[kRingSize];
  std::atomic<uint64_t> tail{0};  // next slot to fill
  std::atomic<uint64_t> head{0};  // next slot to read (the event loop)
  std::atomic<uint64_t> dropped{0};
};

Ring* g_ring = nullptr;
int g_eventfd = -1;   // the safety net's doorbell
int g_signalfd = -1;  // the handled signals, pending in the kernel
std::mutex g_setup;
struct sigaction g_previous[_NSIG];
bool g_installed[_NSIG];
// Threads whose mask ipckit changed, per signal, to undo on release.
std::vector<int> g_blocked_in[_NSIG];
// The signals routed to the signalfd (bit signo - 1).
std::atomic<uint64_t> g_caught{0};

uint64_t Bit(int signo) { return uint64_t{1} << (signo - 1); }

sigset_t CaughtSet() {
  sigset_t set;
  sigemptyset(&set);
  uint64_t caught = g_caught.load();
  for (int sig = 1; sig <= 64; sig++) {
    if (caught & Bit(sig)) sigaddset(&set, sig);
  }
  return set;
}

void Record(int signo, const siginfo_t* info) {
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
    e.signo = signo;
    e.code = info->si_code;
    e.pid = info->si_pid;
    e.uid = info->si_uid;
    e.value = reinterpret_cast<intptr_t>(info->si_value.sival_ptr);
    e.ready.store(slot + 1, std::memory_order_release);
  }
  uint64_t one = 1;
  ssize_t ignored = write(g_eventfd, &one, sizeof one);
  (void)ignored;
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
  Record(signo, info);
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

std::vector<int> OtherThreads() {
  std::vector<int> tids;
  int self = static_cast<int>(syscall(SYS_gettid));
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return tids;
  while (dirent* d = readdir(dir)) {
    int tid = atoi(d->d_name);
    if (tid > 0 && tid != self) tids.push_back(tid);
  }
  closedir(dir);
  return tids;
}


}  // namespace

// signalSetup() -> [signalfd, eventfd]: the descriptors that become
// readable when a handled signal is pending, or the safety net caught one
// (created once)
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
    g_eventfd = efd;
  }
  Napi::Array fds = Napi::Array::New(info.Env(), 2);
  fds.Set(0u, g_signalfd);
  fds.Set(1u, g_eventfd);
  return fds;
}

// signalHandle(signo) -> 0: routes signo to ipckit (keeping the old action to chain and restore)
static Napi::Value SignalHandle(const Napi::CallbackInfo& info) {
  int signo = ArgInt(info, 0);
  std::lock_guard<std::mutex> lock(g_setup);
  if (g_installed[signo]) return Napi::Number::New(info.Env(), 0);
  struct sigaction sa {};
  sa.sa_sigaction = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  struct sigaction previous {};
  if (sigaction(signo, &sa, &previous) < 0) return Errno(info.Env(), errno);
  // If we were ever the previous action, do not chain to ourselves.
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction == OnSignal) previous = {};
  g_previous[signo] = previous;
  g_installed[signo] = true;
  g_caught.fetch_or(Bit(signo));
  sigset_t caught = CaughtSet();
  signalfd(g_signalfd, &caught, 0);
  // Block it everywhere, so every instance waits in the kernel for the signalfd, in order.
  sigset_t one, none;
  sigemptyset(&one);
  sigemptyset(&none);
  sigaddset(&one, signo);
  pthread_sigmask(SIG_BLOCK, &one, nullptr);
  for (int tid : OtherThreads()) {
    bool blocks = true;
    if (!ThreadBlocks(tid, signo, &blocks) || blocks) continue;
    if (ChangeThreadMask(tid, one, none)) g_blocked_in[signo].push_back(tid);
  }
  return Napi::Number::New(info.Env(), 0);
}

// signalRelease(signo, disposition) -> 0: 0 restores the action found when
// ipckit took the signal, 1 the default (SIG_DFL), 2 ignores (SIG_IGN).
static Napi::Value SignalRelease(const Napi::CallbackInfo& info) {
  int signo = ArgInt(info, 0);
  int disposition = ArgInt(info, 1);
  std::lock_guard<std::mutex> lock(g_setup);
  g_caught.fetch_and(~Bit(signo));
  sigset_t caught = CaughtSet();
  signalfd(g_signalfd, &caught, 0);
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
  if (sigaction(signo, &sa, nullptr) < 0) return Errno(info.Env(), errno);
  g_installed[signo] = false;
  g_previous[signo] = {};
  sigset_t one, none;
  sigemptyset(&one);
  sigemptyset(&none);
  sigaddset(&one, signo);
  // Instances still pending arrived while the signal was handled: they are
  // taken here (nobody is left to hand them to), not given to the restored action.
  siginfo_t discarded;
  timespec now = {0, 0};
  while (sigtimedwait(&one, &discarded, &now) == signo) {
  }
  // Unblock where ipckit blocked it.
  for (int tid : g_blocked_in[signo]) ChangeThreadMask(tid, none, one);
  g_blocked_in[signo].clear();
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  return Napi::Number::New(info.Env(), 0);
}

// signalDrain(out: Float64Array) -> entries copied (6 numbers each:
// signo, code, pid, uid, value, dropped-so-far), oldest first: what the
// safety net caught, then what is pending in the kernel. Runs the chained
// handler (process.on) of each signal taken from the kernel.
static Napi::Value SignalDrain(const Napi::CallbackInfo& info) {
  auto out = info[0].As<Napi::Float64Array>();
  size_t capacity = out.ElementLength() / 6;
  Ring* ring = g_ring;
  if (ring == nullptr) return Napi::Number::New(info.Env(), 0);
  double dropped = static_cast<double>(ring->dropped.load());
  size_t n = 0;
  if (ring->tail.load() != ring->head.load()) {
    uint64_t counter;
    ssize_t ignored = read(g_eventfd, &counter, sizeof counter);
    (void)ignored;
    while (n < capacity) {
      uint64_t head = ring->head.load();
      Entry& e = ring->entries[head & (kRingSize - 1)];
      if (e.ready.load(std::memory_order_acquire) != head + 1) break;
      out[n * 6 + 0] = e.signo;
      out[n * 6 + 1] = e.code;
      out[n * 6 + 2] = e.pid;
      out[n * 6 + 3] = e.uid;
      out[n * 6 + 4] = static_cast<double>(e.value);
      out[n * 6 + 5] = dropped;
      ring->head.store(head + 1);
      n++;
    }
    // More remain: make sure the event loop comes back for them.
    if (n == capacity) {
      uint64_t one = 1;
      ignored = write(g_eventfd, &one, sizeof one);
      return Napi::Number::New(info.Env(), static_cast<double>(n));
    }
  }
  signalfd_siginfo taken[64];
  while (n < capacity) {
    size_t want = capacity - n < 64 ? capacity - n : 64;
    ssize_t r = read(g_signalfd, taken, want * sizeof taken[0]);
    if (r <= 0) break;
    size_t count = static_cast<size_t>(r) / sizeof taken[0];
    for (size_t i = 0; i < count; i++, n++) {
      const signalfd_siginfo& t = taken[i];
      out[n * 6 + 0] = t.ssi_signo;
      out[n * 6 + 1] = t.ssi_code;
      out[n * 6 + 2] = t.ssi_pid;
      out[n * 6 + 3] = t.ssi_uid;
      out[n * 6 + 4] = static_cast<double>(static_cast<int64_t>(t.ssi_ptr));
      out[n * 6 + 5] = dropped;
      siginfo_t si;
      std::memset(&si, 0, sizeof si);
      si.si_signo = static_cast<int>(t.ssi_signo);
      si.si_code = t.ssi_code;
      si.si_pid = static_cast<pid_t>(t.ssi_pid);
      si.si_uid = t.ssi_uid;
      si.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<intptr_t>(t.ssi_ptr));
      Chain(si.si_signo, &si, nullptr);
    }
    if (count < want) break;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// signalSpin(spinUs) -> 1 once a handled signal is pending (or the safety
// net caught one), 0 if none came within spinUs microseconds: the spin half
// of a spin-then-sleep wait, yielding the CPU between looks.
static Napi::Value SignalSpin(const Napi::CallbackInfo& info) {
  double spin_us = info[0].As<Napi::Number>().DoubleValue();
  if (g_ring == nullptr) return Napi::Number::New(info.Env(), 0);
  int r = Spin(spin_us, EAGAIN, [] {
    if (g_ring->tail.load() != g_ring->head.load()) return 1;
    sigset_t pending;
    if (sigpending(&pending) < 0) return -errno;
    uint64_t caught = g_caught.load();
    for (int sig = 1; sig <= 64; sig++) {
      if ((caught & Bit(sig)) && sigismember(&pending, sig) == 1) return 1;
    }
    return -EAGAIN;
  });
  return Napi::Number::New(info.Env(), r == 1 ? 1 : 0);
}

// kill(pid, signo) -> 0
static Napi::Value Kill(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), kill(ArgInt(info, 0), ArgInt(info, 1)));
}

// sigqueue(pid, signo, value) -> 0
static Napi::Value SigQueue(const Napi::CallbackInfo& info) {
  union sigval value;
  std::memset(&value, 0, sizeof value);
  value.sival_ptr = reinterpret_cast<void*>(static_cast<intptr_t>(ArgInt64(info, 2)));
  return SysResult(info.Env(), sigqueue(ArgInt(info, 0), ArgInt(info, 1), value));
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
      {"signalDrain", SignalDrain}, {"signalSpin", SignalSpin}, {"signalDisposition", SignalDisposition},
      {"kill", Kill}, {"sigqueue", SigQueue}
  });
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
