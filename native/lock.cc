// Futexes on words in shared memory: the sleeping half of ipckit's Mutex
// and Semaphore (and of anything else that waits on a shared word).
//
// The lock protocols themselves (which values a word takes, how a lock is
// taken, handed over, or taken over from a dead owner) live in one place,
// src/lock.ts. This file only waits for a word to change, wakes waiters,
// and tells whether a thread still exists. It knows no lock states.
#include <fcntl.h>
#include <signal.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.h"
#include "jobs.h"
#include "spin.h"
#include "v8-bridge.h"

namespace ipckit {

namespace {

// Iterations of the pause loop before a spinning waiter starts yielding:
// about 2 µs where a pause takes 28 ns (recent x86), less on older CPUs. A
// holder on another CPU lets go within that; a holder that shares this CPU
// (two processes the scheduler placed together) needs this thread to yield,
// and 2,000 pauses (55 µs) kept it from doing so.
constexpr int kPauseSpins = 64;
// How often a waiter thread looks at the word again (a wake-up may be lost
// when another process overwrites a word) and at the thread it watches.
constexpr int64_t kWatchSliceNs = 20 * 1000000LL;

int32_t Load(const int32_t* addr) {
  return reinterpret_cast<const std::atomic<int32_t>*>(addr)->load();
}

// futex(FUTEX_WAIT) on a shared word: 0 when woken or the value differs
// from `expected`, -ETIMEDOUT after timeout_ns (< 0: no limit), -EINTR.
int FutexWait(int32_t* addr, int32_t expected, int64_t timeout_ns) {
  timespec ts{};
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, timeout_ns >= 0 ? &ts : nullptr, nullptr, 0);
  if (r == 0 || errno == EAGAIN) return 0;
  return -errno;
}

int FutexWake(int32_t* addr, int count) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

// Whether thread `tid`, started at `start` (the low 32 bits of field 22 of
// /proc/<tid>/stat; 0 = unknown), exists: a reused tid is not mistaken for
// it, and a zombie (killed, not yet reaped) is dead. Only a thread known to
// be gone is dead: when /proc hides it (hidepid, another user's process) or
// is missing, kill(tid, 0) says whether the id exists, and an existing one
// counts as alive, since its start time cannot be checked.
bool ThreadAlive(int32_t tid, uint32_t start) {
  if (tid <= 0) return false;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT && errno != ESRCH) return true;
    // Gone, or hidden: kill() finds any task by id, a thread's included.
    return kill(tid, 0) == 0 || errno == EPERM;
  }
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // Fields after the command name, which is in parentheses and may hold spaces.
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return true;
  if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) return false;
  if (start == 0) return true;
  int field = 2;
  for (; *p != '\0' && field < 22; p++) {
    if (*p == ' ') field++;
  }
  return static_cast<uint32_t>(strtoull(p, nullptr, 10)) == start;
}

// words[index] (arguments 0 and 1), or nullptr when it is not within the array.
int32_t* WordArg(const Napi::CallbackInfo& info) {
  auto words = info[0].As<Napi::Int32Array>();
  int at = ArgInt(info, 1);
  if (at < 0 || static_cast<size_t>(at) >= words.ElementLength()) return nullptr;
  return words.Data() + at;
}

// futexWait(words, index, expected, timeoutMs, spinUs) -> 0 once
// words[index] differs from `expected` (or a wake came), -EAGAIN if it
// still holds it after timeoutMs (0: only spin; < 0: no limit). Spinning
// watches the word without system calls, then yields the CPU between looks.
void FutexWaitJs(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int32_t* addr = args.Word(0, 1);
  int32_t expected = args.Int(2);
  double timeout_ms = args.Number(3);
  double spin_us = args.Number(4);
  if (!args.ok()) return;
  if (addr == nullptr) return args.Return(-ERANGE);
  auto changed = [&] { return Load(addr) != expected ? 0 : -EAGAIN; };
  if (spin_us > 0) {
    for (int i = 0; i < kPauseSpins; i++) {
      if (changed() == 0) return args.Return(0);
      CpuRelax();
    }
  }
  int r = Spin(SpinBudget(timeout_ms, spin_us), EAGAIN, changed);
  if (r == 0 || timeout_ms == 0) return args.Return(r);
  r = FutexWait(addr, expected, timeout_ms < 0 ? -1 : static_cast<int64_t>(timeout_ms * 1e6));
  args.Return(r == -ETIMEDOUT ? -EAGAIN : r == -EINTR ? 0 : r);
}

// A futex wait on a waiter thread: until the word differs from `expected`
// (result 0), or the watched thread no longer exists (result 1). It looks
// at the word after every slice too, so a change that came with no wake-up
// (a word another process overwrote) still ends it. Holds the memory, so
// the mapping cannot go away while the thread sleeps on it.
class FutexJob : public BlockingJob {
 public:
  FutexJob(napi_value words, int32_t* addr, int32_t expected, int32_t watch_tid, uint32_t watch_start)
      : memory_(HoldBacking(words)), addr_(addr), expected_(expected), watch_tid_(watch_tid), watch_start_(watch_start) {}
  int Run() override {
    for (;;) {
      int r = FutexWait(addr_, expected_, kWatchSliceNs);
      if (r != -ETIMEDOUT || Load(addr_) != expected_) return r == -ETIMEDOUT ? 0 : r;
      if (watch_tid_ != 0 && !ThreadAlive(watch_tid_, watch_start_)) return 1;
    }
  }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  std::shared_ptr<v8::BackingStore> memory_;
  int32_t* addr_;
  int32_t expected_;
  int32_t watch_tid_;
  uint32_t watch_start_;
};

// futexWaitAsync(words, index, expected, watchTid, watchStart, callback(result)) -> job id.
// watchTid 0 watches no thread.
Napi::Value FutexWaitAsync(const Napi::CallbackInfo& info) {
  int32_t* addr = WordArg(info);
  if (addr == nullptr) return Errno(info.Env(), ERANGE);
  auto job = std::make_unique<FutexJob>(info[0], addr, ArgInt(info, 2), ArgInt(info, 3),
                                        info[4].As<Napi::Number>().Uint32Value());
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[5].As<Napi::Function>()));
}

// futexWake(words, index, count) -> woken
void FutexWakeJs(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  int32_t* addr = args.Word(0, 1);
  int count = args.Int(2);
  if (args.ok()) args.Return(addr == nullptr ? -ERANGE : FutexWake(addr, count));
}

// threadAlive(tid, start) -> whether that thread (tid and start time) exists
Napi::Value ThreadAliveJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ThreadAlive(ArgInt(info, 0), info[1].As<Napi::Number>().Uint32Value()));
}

// gettid() of the calling thread.
Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"futexWaitAsync", FutexWaitAsync},
      {"threadAlive", ThreadAliveJs}, {"gettid", GetTid}
  });
  ExportDirect(exports, {{"futexWait", FutexWaitJs}, {"futexWake", FutexWakeJs}});
}

}  // namespace ipckit
