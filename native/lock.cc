// Cross-process Mutex and Semaphore living in shared memory, on futexes.
//
// The uncontended paths (lock, unlock, post, tryWait) run in JavaScript with
// Atomics and make no system call; this file holds the waiting paths.
//
// Mutex: four 32-bit words at a 4-byte aligned offset.
//   [0] state   0 = free; otherwise the owner's thread id | kWaiters
//   [1] start   the owner's start time (low 32 bits of /proc/<tid>/stat
//               field 22), 0 while it is being recorded
//   [2] magic   kMutexMagic once initialised
//   [3] status  0 consistent, 1 the previous owner died (not yet repaired),
//               2 not recoverable
// A waiter that finds the lock held sets kWaiters and sleeps on the state
// word in slices; after each slice it checks that the owner (tid plus start
// time, so a reused pid is not mistaken for the owner) still exists, and
// takes the lock over if it does not.
//
// Semaphore: [0] count, [1] sleeping waiters, [2] magic, [3] unused.
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <climits>
#include <cstring>

#include "common.h"
#include "waiter.h"

namespace ipckit {

constexpr int32_t kWaiters = 0x40000000;
constexpr int32_t kTidMask = 0x3fffffff;
constexpr int kAcquired = 0;
constexpr int kAcquiredOwnerDied = 1;
// Iterations of the pause loop before a waiter starts yielding the CPU.
constexpr int kPauseSpins = 2000;
// How long a waiter sleeps before it checks that the owner is alive.
constexpr int64_t kSliceNs = 20 * 1000000LL;

static std::atomic<int32_t>* Word(int32_t* base, int index) {
  return reinterpret_cast<std::atomic<int32_t>*>(base + index);
}

// futex(FUTEX_WAIT) on a shared word: returns 0 when woken (or the value had
// changed), -ETIMEDOUT after timeout_ns (< 0: no timeout), -EINTR on a signal.
static int FutexWait(int32_t* addr, int32_t expected, int64_t timeout_ns) {
  timespec ts{};
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, timeout_ns >= 0 ? &ts : nullptr, nullptr, 0);
  if (r == 0 || errno == EAGAIN) return 0;
  return -errno;
}

static int FutexWake(int32_t* addr, int count) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

// Whether thread `tid`, started at `start` (low 32 bits; 0 = unknown), exists.
static bool OwnerAlive(int32_t tid, uint32_t start) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT && errno != ESRCH;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  if (start == 0) return true;
  // Fields after the command name, which is in parentheses and may hold spaces.
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return true;
  int field = 2;
  for (; *p != '\0' && field < 22; p++) {
    if (*p == ' ') field++;
  }
  unsigned long long started = strtoull(p, nullptr, 10);
  return static_cast<uint32_t>(started) == start;
}

struct MutexRef {
  int32_t* base;
  int32_t tid;
  uint32_t start;
  bool allow_self;  // async waits: the owning thread may be this JS thread
};

// Gives back a lock just taken from a mutex that turned out to be not
// recoverable, waking everyone so they learn it too.
static int RefuseNotRecoverable(const MutexRef& m) {
  Word(m.base, 1)->store(0);
  Word(m.base, 0)->store(0);
  FutexWake(reinterpret_cast<int32_t*>(m.base), INT32_MAX);
  return -ENOTRECOVERABLE;
}

// One attempt to take the lock when it looks free or dead-owned.
// Returns kAcquired / kAcquiredOwnerDied, -EBUSY, -EDEADLK, or -ENOTRECOVERABLE.
static int MutexAcquireStep(const MutexRef& m, bool waited, bool check_owner) {
  auto* state = Word(m.base, 0);
  int32_t c = state->load();
  int32_t mine = m.tid | (waited ? kWaiters : 0);
  if (c == 0) {
    if (!state->compare_exchange_strong(c, mine)) return -EBUSY;
    Word(m.base, 1)->store(static_cast<int32_t>(m.start));
    if (Word(m.base, 3)->load() == 2) return RefuseNotRecoverable(m);
    return kAcquired;
  }
  int32_t owner = c & kTidMask;
  if (owner == m.tid && !m.allow_self) return -EDEADLK;
  if (check_owner && owner != m.tid &&
      !OwnerAlive(owner, static_cast<uint32_t>(Word(m.base, 1)->load()))) {
    if (!state->compare_exchange_strong(c, m.tid | kWaiters)) return -EBUSY;
    Word(m.base, 1)->store(static_cast<int32_t>(m.start));
    if (Word(m.base, 3)->load() == 2) return RefuseNotRecoverable(m);
    Word(m.base, 3)->store(1);
    return kAcquiredOwnerDied;
  }
  return -EBUSY;
}

// The waiting path of a lock: spin, then sleep in slices, checking the
// owner's life after each. A signal ends the wait with -EINTR when
// `interruptible` (waiter threads: the pool then cancels or calls again);
// otherwise the wait goes on.
static int MutexLockWait(const MutexRef& m, double timeout_ms, double spin_us, bool interruptible) {
  int r = -EBUSY;
  // A holder running on another CPU usually lets go within a few hundred
  // nanoseconds: watch the word first, without system calls.
  if (spin_us > 0) {
    for (int i = 0; i < kPauseSpins && r == -EBUSY; i++) {
      if (Word(m.base, 0)->load(std::memory_order_relaxed) == 0) r = MutexAcquireStep(m, false, false);
      else CpuRelax();
    }
    if (r != -EBUSY) return r;
  }
  r = Spin(SpinBudget(timeout_ms, spin_us), EBUSY, [&] { return MutexAcquireStep(m, false, false); });
  if (r != -EBUSY) return r;
  int64_t deadline = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  auto* state = Word(m.base, 0);
  for (;;) {
    int32_t c = state->load();
    if (c != 0 && (c & kWaiters) == 0) {
      if (!state->compare_exchange_strong(c, c | kWaiters)) continue;
      c |= kWaiters;
    }
    int64_t slice = kSliceNs;
    bool last = false;
    if (deadline >= 0) {
      int64_t left = deadline - NowNs();
      if (left <= 0) return -ETIMEDOUT;
      if (left < slice) {
        slice = left;
        last = true;
      }
    }
    int w = c == 0 ? 0 : FutexWait(reinterpret_cast<int32_t*>(state), c, slice);
    if (w == -EINTR && interruptible) return -EINTR;
    r = MutexAcquireStep(m, true, w == -ETIMEDOUT);
    if (r != -EBUSY) return r;
    if (last && w == -ETIMEDOUT) return -ETIMEDOUT;
  }
}

static MutexRef ArgMutex(const Napi::CallbackInfo& info, bool allow_self) {
  auto words = info[0].As<Napi::Int32Array>();
  return MutexRef{words.Data(), ArgInt(info, 1), info[2].As<Napi::Number>().Uint32Value(), allow_self};
}

// mutexLock(words: Int32Array, tid, start, timeoutMs, spinUs, allowSelf)
//   -> 0 acquired, 1 acquired from a dead owner, or -errno (-ETIMEDOUT,
//   -ENOTRECOVERABLE, -EDEADLK when this thread holds it and !allowSelf)
static Napi::Value MutexLock(const Napi::CallbackInfo& info) {
  MutexRef m = ArgMutex(info, info[5].As<Napi::Boolean>().Value());
  return Napi::Number::New(info.Env(), MutexLockWait(m, ArgDouble(info, 3), ArgDouble(info, 4), false));
}

// mutexTryTakeOver(words, tid, start) -> 1 if the owner was dead and the
// lock is now ours, else -EBUSY (or -ENOTRECOVERABLE)
static Napi::Value MutexTryTakeOver(const Napi::CallbackInfo& info) {
  MutexRef m = ArgMutex(info, true);
  return Napi::Number::New(info.Env(), MutexAcquireStep(m, false, true));
}

// A lock wait on a waiter thread, on behalf of the JS thread whose tid it
// records as owner. Holds the typed array so the mapping cannot be
// collected while the thread sleeps on it.
class MutexJob : public BlockingJob {
 public:
  explicit MutexJob(const Napi::CallbackInfo& info)
      : m_(ArgMutex(info, true)), words_(Napi::Persistent(info[0].As<Napi::Object>())) {}
  int Run() override { return MutexLockWait(m_, -1, 0, true); }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  MutexRef m_;
  Napi::ObjectReference words_;
};

// mutexLockAsync(words, tid, start, callback(result)) -> job id
static Napi::Value MutexLockAsync(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<MutexJob>(info);
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[3].As<Napi::Function>()));
}

// futexWake(words, index, count) -> woken
static Napi::Value FutexWakeJs(const Napi::CallbackInfo& info) {
  auto words = info[0].As<Napi::Int32Array>();
  return Napi::Number::New(info.Env(), FutexWake(words.Data() + ArgInt(info, 1), ArgInt(info, 2)));
}

// ---------------------------------------------------------------------------
// Semaphore

static int SemTryWait(int32_t* base) {
  auto* count = Word(base, 0);
  int32_t c = count->load();
  while (c > 0) {
    if (count->compare_exchange_weak(c, c - 1)) return 0;
  }
  return -EAGAIN;
}

// Waits for the count to be positive and takes one; interruptible as MutexLockWait.
static int SemWait(int32_t* base, double timeout_ms, double spin_us, bool interruptible) {
  int r = Spin(SpinBudget(timeout_ms, spin_us), EAGAIN, [&] { return SemTryWait(base); });
  if (r != -EAGAIN) return r;
  int64_t deadline = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  auto* waiters = Word(base, 1);
  for (;;) {
    int64_t left = -1;
    if (deadline >= 0) {
      left = deadline - NowNs();
      if (left <= 0) return -ETIMEDOUT;
    }
    waiters->fetch_add(1);
    int w = FutexWait(base, 0, left);
    waiters->fetch_sub(1);
    if (SemTryWait(base) == 0) return 0;
    if (w == -EINTR && interruptible) return -EINTR;
  }
}

// semWait(words, timeoutMs, spinUs) -> 0 or -ETIMEDOUT
static Napi::Value SemWaitJs(const Napi::CallbackInfo& info) {
  auto words = info[0].As<Napi::Int32Array>();
  return Napi::Number::New(info.Env(), SemWait(words.Data(), ArgDouble(info, 1), ArgDouble(info, 2), false));
}

class SemJob : public BlockingJob {
 public:
  explicit SemJob(const Napi::CallbackInfo& info)
      : base_(info[0].As<Napi::Int32Array>().Data()), words_(Napi::Persistent(info[0].As<Napi::Object>())) {}
  int Run() override { return SemWait(base_, -1, 0, true); }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  int32_t* base_;
  Napi::ObjectReference words_;
};

// semWaitAsync(words, callback(result)) -> job id
static Napi::Value SemWaitAsync(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<SemJob>(info);
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[1].As<Napi::Function>()));
}

// gettid() of the calling thread.
static Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("mutexLock", Napi::Function::New(env, MutexLock, "mutexLock"));
  exports.Set("mutexTryTakeOver", Napi::Function::New(env, MutexTryTakeOver, "mutexTryTakeOver"));
  exports.Set("mutexLockAsync", Napi::Function::New(env, MutexLockAsync, "mutexLockAsync"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWakeJs, "futexWake"));
  exports.Set("semWait", Napi::Function::New(env, SemWaitJs, "semWait"));
  exports.Set("semWaitAsync", Napi::Function::New(env, SemWaitAsync, "semWaitAsync"));
  exports.Set("gettid", Napi::Function::New(env, GetTid, "gettid"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("WAITERS", kWaiters);
  c.Set("TID_MASK", kTidMask);
  exports.Set("lockConstants", c);
}

}  // namespace ipckit
