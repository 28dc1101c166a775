// Spin-then-sleep, first half: retrying a non-blocking attempt for a short
// budget before a wait goes to sleep. Waking a sleeping thread costs tens of
// microseconds on the machines ipckit runs on; a reply that arrives within
// the budget costs none of that.
#pragma once

#include <sched.h>

#include "common.h"

namespace ipckit {

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

// A spin budget in microseconds: a number, or a callable that works it out
// (a batch's later waits: see BatchSpin), asked only once an attempt found
// no room, so the clock is not read for every message that goes at once.
inline double BudgetOf(double spin_us) { return spin_us; }
inline double BudgetOf(int spin_us) { return spin_us; }
template <typename B>
double BudgetOf(const B& budget) {
  return budget();
}

// Calls `attempt` (>= 0 on success, -errno on failure) until it succeeds,
// fails with something other than -would_block, or the spin budget
// (microseconds; see BudgetOf) passes, yielding the CPU between attempts so
// a peer on the same CPU can run. Returns the last result; with a budget
// <= 0 it tries exactly once.
template <typename B, typename F>
int Spin(const B& budget, int would_block, const F& attempt) {
  int r = attempt();
  if (r != -would_block) return r;
  double spin_us = BudgetOf(budget);
  if (spin_us <= 0) return r;
  int64_t end = NowNs() + static_cast<int64_t>(spin_us * 1000);
  do {
    sched_yield();
    r = attempt();
  } while (r == -would_block && NowNs() < end);
  return r;
}

// What is left of a spin budget of `spin_us` that a call started spending
// at `start_ns`, in microseconds (0 once it is spent).
inline double SpinLeft(double spin_us, int64_t start_ns) {
  double left = spin_us - static_cast<double>(NowNs() - start_ns) / 1000.0;
  return left > 0 ? left : 0;
}

// How long a batch's call may go on spinning for room after its first
// message went, in all, when its spin budget is shorter: long enough for a
// receiver on the same CPU to drain a queue several times over (20-40 us
// a refill), short enough that an async call's attempt holds the event
// loop no longer than the loop's own starvation limit (STARVE_MS).
constexpr double kBatchSliceUs = 1000;

// The spin of a batch's later waits, those after its first message went
// (the first waits as a single call would). Each may spin a whole budget
// since the last progress, as the same messages sent one by one would,
// so a receiver draining as fast as it can keeps the call going; but the
// call as a whole stops spinning kBatchSliceUs (or its budget, if longer)
// after its first message went, and never past its timeout, counted from
// the call's start. It then returns what went; the caller waits for the
// rest as a new call would.
//
// The clock is read when a wait asks (Left), not as each message goes: the
// loops ask right after an attempt finds no room, which follows the last
// progress at once, so that moment stands for it (and the slice starts at
// the first wait after the first message). Reading the clock for every
// message (two reads each) cost a batch of ten 8 KiB messages on a queue
// about half a microsecond.
class BatchSpin {
 public:
  // timeout_ms: the call's (> 0 bounds it; 0 or < 0: only the slice does).
  BatchSpin(double timeout_ms, double spin_us) : timeout_ms_(timeout_ms), spin_us_(spin_us), start_(NowNs()) {}

  // Something went in.
  void Progress() { fresh_ = true; }

  // Microseconds the next wait may spin (0 before anything went: the first wait is the call's own).
  double Left() {
    if ((!fresh_ && end_ == 0) || spin_us_ <= 0) return 0;
    int64_t now = NowNs();
    if (fresh_) {
      fresh_ = false;
      last_ = now;
      if (end_ == 0) {
        double slice = spin_us_ > kBatchSliceUs ? spin_us_ : kBatchSliceUs;
        end_ = now + static_cast<int64_t>(slice * 1000);
        if (timeout_ms_ > 0) {
          int64_t by_timeout = start_ + static_cast<int64_t>(timeout_ms_ * 1e6);
          if (by_timeout < end_) end_ = by_timeout;
        }
      }
    }
    double budget = spin_us_ - static_cast<double>(now - last_) / 1000.0;
    double slice = static_cast<double>(end_ - now) / 1000.0;
    double left = budget < slice ? budget : slice;
    return left > 0 ? left : 0;
  }

 private:
  double timeout_ms_;
  double spin_us_;
  int64_t start_;
  int64_t last_ = 0;
  int64_t end_ = 0;
  bool fresh_ = false;  // progress since the clock was last read
};

}  // namespace ipckit
