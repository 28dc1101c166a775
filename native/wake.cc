// The wake signal, thread-mask edits and bounded blocking calls; see wake.h.
#include "wake.h"

#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace ipckit {

int WakeSignal() { return SIGRTMAX; }
int MaskSignal() { return SIGRTMAX - 1; }

// A request to change one thread's signal mask (see ChangeThreadMask).
namespace {
std::atomic<int> g_mask_target{0};
sigset_t g_mask_add;
sigset_t g_mask_remove;
std::atomic<int> g_mask_done{0};
}  // namespace

// The wake signal's handler: its only effect is the EINTR of the interrupted call.
static void OnWake(int, siginfo_t*, void*) {}

// The mask signal's handler: when a mask change is requested for this very
// thread, it edits the signal mask the kernel restores on return.
static void OnMask(int, siginfo_t*, void* context) {
  int tid = static_cast<int>(syscall(SYS_gettid));
  if (g_mask_target.load() != tid) return;
  auto* uc = static_cast<ucontext_t*>(context);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sigismember(&g_mask_add, sig) == 1) sigaddset(&uc->uc_sigmask, sig);
    if (sigismember(&g_mask_remove, sig) == 1) sigdelset(&uc->uc_sigmask, sig);
  }
  g_mask_target.store(0);
  g_mask_done.fetch_add(1);
}

void InstallWakeHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = OnWake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: the blocked call must fail with EINTR
    sigaction(WakeSignal(), &sa, nullptr);
    sa.sa_sigaction = OnMask;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;  // the thread's own calls carry on
    sigaction(MaskSignal(), &sa, nullptr);
  });
}

bool ChangeThreadMask(int tid, const sigset_t& add, const sigset_t& remove) {
  InstallWakeHandler();
  g_mask_add = add;
  g_mask_remove = remove;
  int done = g_mask_done.load();
  g_mask_target.store(tid);
  if (syscall(SYS_tgkill, getpid(), tid, MaskSignal()) < 0) {
    g_mask_target.store(0);
    return false;
  }
  // The thread runs the handler as soon as it is scheduled.
  int64_t deadline = NowNs() + 200 * 1000000LL;
  while (g_mask_done.load() == done) {
    if (NowNs() > deadline) {
      g_mask_target.store(0);
      return false;
    }
    sched_yield();
  }
  return true;
}

namespace {

// A POSIX timer that signals the thread that created it.
struct ThreadTimer {
  timer_t id{};
  bool ok = false;
  ThreadTimer() {
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = WakeSignal();
    sev._sigev_un._tid = gettid();
    ok = timer_create(CLOCK_MONOTONIC, &sev, &id) == 0;
  }
  ~ThreadTimer() {
    if (ok) timer_delete(id);
  }
  int Arm(int64_t first_ns, int64_t interval_ns) {
    itimerspec its{};
    its.it_value.tv_sec = first_ns / 1000000000LL;
    its.it_value.tv_nsec = first_ns % 1000000000LL;
    its.it_interval.tv_sec = interval_ns / 1000000000LL;
    its.it_interval.tv_nsec = interval_ns % 1000000000LL;
    return timer_settime(id, 0, &its, nullptr);
  }
};

}  // namespace

int BoundedCall(const std::function<int()>& call, double timeout_ms) {
  int r;
  if (timeout_ms < 0) {
    do r = call();
    while (r == -EINTR);
    return r;
  }
  InstallWakeHandler();
  thread_local ThreadTimer timer;
  if (!timer.ok) return -errno;
  int64_t timeout_ns = static_cast<int64_t>(timeout_ms * 1e6);
  if (timeout_ns < 1) timeout_ns = 1;
  int64_t deadline = NowNs() + timeout_ns;
  // The timer keeps firing every millisecond after the deadline, so a signal
  // that lands just before the call enters the kernel cannot strand it.
  if (timer.Arm(timeout_ns, 1000000) < 0) return -errno;
  for (;;) {
    r = call();
    if (r != -EINTR) break;
    if (NowNs() >= deadline) {
      r = -ETIMEDOUT;
      break;
    }
  }
  timer.Arm(0, 0);
  return r;
}

}  // namespace ipckit
