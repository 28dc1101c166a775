// Waiter threads: blocking calls that have no descriptor to wait on
// (System V message queues, futexes) run on an ipckit thread, never on a
// libuv pool thread, and their results are delivered on the event loop of
// the environment (main thread or worker) that submitted them.
//
// The pool is bounded (kMaxWaiterThreads). A job that cannot get a thread
// ends at once instead of waiting for one that may never come free:
//   -EAGAIN  the kernel refused a new thread (RLIMIT_NPROC, a pids cgroup);
//   -ENOSR   the pool is at its cap.
// A cancelled job that had not completed ends with -ECANCELED; one whose
// call completed first ends with its result, which is never dropped.
#pragma once

#include <memory>
#include <vector>

#include "common.h"

namespace ipckit {

constexpr int kMaxWaiterThreads = 256;

// Work for a waiter thread.
class BlockingJob {
 public:
  virtual ~BlockingJob() = default;
  // Runs on the waiter thread. Returns >= 0 or -errno; -EINTR means the call
  // was interrupted and is run again unless the job was cancelled.
  virtual int Run() = 0;
  // Runs on the event loop: the callback arguments after the result number.
  virtual std::vector<napi_value> Results(Napi::Env env, int result) = 0;
};

// Queues `job`; `callback(result, ...Results())` runs on the event loop when
// it ends. Returns the job id that cancelJob() takes.
uint32_t SubmitJob(Napi::Env env, std::unique_ptr<BlockingJob> job, Napi::Function callback);

}  // namespace ipckit
