// Blocking system calls that have no file descriptor to wait on.
//
// System V message queues (and, later, futexes and semaphores) can only be
// waited on by a thread sitting in the system call. Two tools cover that:
//
//  * CallWithTimeout() runs the call on the calling thread (the *Sync API)
//    and bounds it with a per-thread POSIX timer that interrupts the call
//    with the wake signal.
//  * SubmitJob() runs the call on an ipckit waiter thread (the async API),
//    never on a libuv pool thread, and delivers the result on the event
//    loop. Cancelling a job interrupts its thread with the wake signal.
//
// The wake signal is SIGRTMAX. ipckit installs a no-op handler for it
// without SA_RESTART, so the interrupted call fails with EINTR.
#pragma once

#include <sched.h>
#include <signal.h>

#include <functional>
#include <memory>
#include <vector>

#include "common.h"

namespace ipckit {

int WakeSignal();

// Installs the wake signal's handler (idempotent).
void InstallWakeHandler();

// Adds `add` to and removes `remove` from the signal mask of thread `tid` of
// this process, by sending it the wake signal, whose handler edits the mask
// the kernel restores when the handler returns. Waits up to 200 ms for the
// thread to run it; false if it could not be reached (it blocks the wake
// signal, or never ran).
bool ChangeThreadMask(int tid, const sigset_t& add, const sigset_t& remove);

// Spin-then-sleep, first half: calls `attempt` (a non-blocking try that
// returns >= 0 on success or -errno) until it succeeds, fails with
// something other than `would_block`, or `spin_us` microseconds pass,
// yielding the CPU between attempts so a peer on the same CPU can run.
// Returns the last result; with spin_us <= 0 it tries exactly once.
// Tells the CPU this is a spin-wait loop (saves power, frees the sibling
// hyperthread, and avoids a memory-order flush when the wait ends).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// How long a call may spin: its spin budget, but never beyond its timeout
// (timeout_ms < 0 is forever; 0 tries once and may spin the whole budget).
inline double SpinBudget(double timeout_ms, double spin_us) {
  if (timeout_ms <= 0) return spin_us;
  return spin_us < timeout_ms * 1000 ? spin_us : timeout_ms * 1000;
}

template <typename F>
int Spin(double spin_us, int would_block, const F& attempt) {
  int r = attempt();
  if (r != -would_block || spin_us <= 0) return r;
  int64_t end = NowNs() + static_cast<int64_t>(spin_us * 1000);
  do {
    sched_yield();
    r = attempt();
  } while (r == -would_block && NowNs() < end);
  return r;
}

// Runs `call` (returning >= 0 or -errno) until it returns something other
// than -EINTR. With timeout_ms >= 0 it gives up with -ETIMEDOUT once the
// deadline passes; timeout_ms < 0 waits forever.
int CallWithTimeout(const std::function<int()>& call, double timeout_ms);

// Work for a waiter thread.
class BlockingJob {
 public:
  virtual ~BlockingJob() = default;
  // Runs on the waiter thread. Returns >= 0 or -errno; -EINTR means the call
  // was interrupted and is retried unless the job was cancelled.
  virtual int Run() = 0;
  // Runs on the event loop: the callback arguments after the result number.
  virtual std::vector<napi_value> Results(Napi::Env env, int result) = 0;
};

// Queues `job`; `callback(result, ...Results())` runs on the event loop when
// it ends. A cancelled job that had not completed ends with -ECANCELED.
// Returns the job id used by cancelJob().
uint32_t SubmitJob(Napi::Env env, std::unique_ptr<BlockingJob> job,
                   Napi::Function callback);

}  // namespace ipckit
