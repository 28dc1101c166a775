// The wake signal: how ipckit interrupts a thread that sleeps in a system
// call with no timeout of its own (msgrcv, a blocking open, a waiter thread
// being cancelled). It is SIGRTMAX, installed without SA_RESTART, so the
// interrupted call fails with EINTR.
//
// The mask signal, SIGRTMAX-1: how ipckit edits the signal mask of another
// thread. It is installed with SA_RESTART, so whatever that thread was doing
// (a libuv pool thread's read of a FIFO, a readSync) goes on undisturbed.
// ipckit reserves both.
#pragma once

#include <signal.h>

#include <functional>

#include "common.h"

namespace ipckit {

int WakeSignal();
int MaskSignal();

// Installs the wake and mask signals' handlers (idempotent).
void InstallWakeHandler();

// Adds `add` to and removes `remove` from the signal mask of thread `tid` of
// this process, by sending it the mask signal, whose handler edits the mask
// the kernel restores when the handler returns. Waits up to 200 ms for the
// thread to run it; false if it could not be reached (it blocks the wake
// signal, or never ran).
bool ChangeThreadMask(int tid, const sigset_t& add, const sigset_t& remove);

// One bounded blocking call: runs `call` (>= 0 or -errno) and retries it on
// EINTR. With timeout_ms >= 0 a per-thread timer interrupts it with the wake
// signal at the deadline, and the result is then -ETIMEDOUT; timeout_ms < 0
// waits as long as the call does.
int BoundedCall(const std::function<int()>& call, double timeout_ms);

}  // namespace ipckit
