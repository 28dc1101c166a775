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

// Calls `attempt` (>= 0 on success, -errno on failure) until it succeeds,
// fails with something other than -would_block, or spin_us microseconds
// pass, yielding the CPU between attempts so a peer on the same CPU can run.
// Returns the last result; with spin_us <= 0 it tries exactly once.
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

// What is left of a spin budget of `spin_us` that a call started spending
// at `start_ns`, in microseconds (0 once it is spent). A batch spends one
// budget over all its messages: the first that finds no room spins, and so
// do the later ones while the budget lasts (the peer is draining now).
inline double SpinLeft(double spin_us, int64_t start_ns) {
  double left = spin_us - static_cast<double>(NowNs() - start_ns) / 1000.0;
  return left > 0 ? left : 0;
}

}  // namespace ipckit
