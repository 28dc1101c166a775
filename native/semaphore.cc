// The kernel's own semaphores: POSIX named semaphores (the sem_open family)
// and System V semaphore sets (semget, semop, semtimedop, semctl). Thin
// wrappers: every function returns >= 0 or -errno.
//
// A POSIX named semaphore is a 32-byte file, /dev/shm/sem.NAME, holding
// glibc's sem_t; every program that calls sem_open on the name maps that
// file and runs glibc's protocol on it. TypeScript opens and maps the file
// itself (with the ownership checks sem_open lacks) and this file runs the
// same protocol on the mapping, with raw shared futex calls: glibc would
// take the futex flags from the file, and a file someone wrote garbage
// into would make glibc abort the process. The layout (64-bit atomics,
// little or big endian as the machine):
//   u64 data     the value in the low 32 bits, the number of threads that
//                may be asleep on it in the high 32 bits;
//   i32 private  FUTEX_PRIVATE_FLAG (128) for a process-shared semaphore.
// A post adds one to the value and, when the waiter count is not zero,
// wakes one sleeper on the value's word; a wait takes one when the value
// is not zero, else adds itself to the waiter count and sleeps while the
// value is zero. Both directions interoperate with glibc's sem_post and
// sem_wait, which do exactly this. The uncontended halves (a take, the add
// of a post) are compare-and-swaps that TypeScript makes with Atomics on
// the value's 32 bits; this file does what needs the kernel: the counted
// sleep, the wake, and the waiter thread of an async wait.
//
// Bounded attempts as elsewhere: spin up to spinUs, then sleep up to
// timeoutMs (0: not at all; < 0: as long as it takes); "nothing yet" is
// -EAGAIN and the deadline loop is TypeScript's.
#include <linux/futex.h>
#include <semaphore.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <vector>

#include "common.h"
#include "jobs.h"
#include "spin.h"
#include "v8-bridge.h"

namespace ipckit {

namespace {

// ---------------------------------------------------------------------------
// POSIX named semaphores

static_assert(sizeof(sem_t) == 32, "glibc's sem_t on a 64-bit machine");

constexpr uint64_t kValueMask = 0xffffffffULL;
constexpr int kWaitersShift = 32;
constexpr uint64_t kOneWaiter = 1ULL << kWaitersShift;
// A sleeping waiter looks at the mapping's truncation flag this often.
constexpr int64_t kSliceNs = 1000 * 1000000LL;

std::atomic<uint64_t>* DataOf(uint8_t* base) {
  return reinterpret_cast<std::atomic<uint64_t>*>(base);
}

// The 32-bit word holding the value: what glibc's futex calls name.
uint32_t* ValueWord(uint8_t* base) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return reinterpret_cast<uint32_t*>(base);
#else
  return reinterpret_cast<uint32_t*>(base) + 1;
#endif
}

// Takes one unit if the value is not zero.
bool TryTake(uint8_t* base) {
  auto* data = DataOf(base);
  uint64_t d = data->load(std::memory_order_relaxed);
  while ((d & kValueMask) != 0) {
    if (data->compare_exchange_weak(d, d - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
  return false;
}

// Sleeps on the value word while it reads 0: 0 (woken, or it changed),
// -ETIMEDOUT after timeout_ns (< 0: no limit), -EINTR.
int SleepOnValue(uint8_t* base, int64_t timeout_ns) {
  timespec ts{};
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
  }
  long r = syscall(SYS_futex, ValueWord(base), FUTEX_WAIT, 0, timeout_ns >= 0 ? &ts : nullptr, nullptr, 0);
  if (r == 0 || errno == EAGAIN) return 0;
  return -errno;
}

// glibc's slow path: counted as a waiter, sleeps until a unit can be taken
// (0) or `deadline_ns` (CLOCK_MONOTONIC; < 0: none) passes (-ETIMEDOUT), or
// a signal interrupts the sleep (-EINTR). Sleeps at most kSliceNs at a
// time and then returns -ETIMEDOUT too when `stop()` says so.
template <typename F>
int WaitCounted(uint8_t* base, int64_t deadline_ns, const F& stop) {
  auto* data = DataOf(base);
  uint64_t d = data->fetch_add(kOneWaiter, std::memory_order_relaxed);
  for (;;) {
    if ((d & kValueMask) == 0) {
      int64_t left = -1;
      if (deadline_ns >= 0) {
        left = deadline_ns - NowNs();
        if (left <= 0) break;
      }
      int r = SleepOnValue(base, left < 0 || left > kSliceNs ? kSliceNs : left);
      if (r == -EINTR) {
        data->fetch_sub(kOneWaiter, std::memory_order_relaxed);
        return r;
      }
      if (r == -ETIMEDOUT && stop()) break;
      d = data->load(std::memory_order_relaxed);
    } else if (data->compare_exchange_weak(d, d - 1 - kOneWaiter, std::memory_order_acquire, std::memory_order_relaxed)) {
      return 0;
    }
  }
  data->fetch_sub(kOneWaiter, std::memory_order_relaxed);
  return -ETIMEDOUT;
}

// The sem_t a view holds, or nullptr when the view is smaller than one.
uint8_t* SemArg(const Napi::CallbackInfo& info, size_t i) {
  auto view = info[i].As<Napi::Uint8Array>();
  return view.ByteLength() < sizeof(sem_t) ? nullptr : view.Data();
}

uint8_t* SemArg(DirectArgs& args, int i) {
  Bytes b = args.Bytes(i);
  return b.length < sizeof(sem_t) ? nullptr : b.data;
}

// semInit(view, value) -> 0: a process-shared sem_t with `value`, written by
// glibc's own sem_init into a file nobody else has opened yet.
Napi::Value SemInit(const Napi::CallbackInfo& info) {
  auto* sem = reinterpret_cast<sem_t*>(SemArg(info, 0));
  if (sem == nullptr) return Errno(info.Env(), ERANGE);
  return SysResult(info.Env(), sem_init(sem, 1, info[1].As<Napi::Number>().Uint32Value()));
}

// semWait(view, timeoutMs, spinUs, truncatedSlot) -> 0 once a unit is taken,
// -EAGAIN if none came within timeoutMs (a sleep is cut after a second, so
// the caller checks the mapping's truncation flag between sleeps).
void SemWait(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  uint8_t* base = SemArg(args, 0);
  double timeout_ms = args.Number(1);
  double spin_us = args.Number(2);
  if (!args.ok()) return;
  if (base == nullptr) return args.Return(-ERANGE);
  int r = Spin(SpinBudget(timeout_ms, spin_us), EAGAIN, [&] { return TryTake(base) ? 0 : -EAGAIN; });
  if (r == 0 || timeout_ms == 0) return args.Return(r);
  int64_t budget = timeout_ms < 0 || timeout_ms * 1e6 > kSliceNs ? kSliceNs : static_cast<int64_t>(timeout_ms * 1e6);
  int64_t deadline = NowNs() + budget;
  do r = WaitCounted(base, deadline, [] { return true; });
  while (r == -EINTR && NowNs() < deadline);
  args.Return(r == 0 ? 0 : -EAGAIN);
}

// semWake(view, n) -> woken: wakes up to n sleepers on the value word (the
// second half of a post whose first, the add, JavaScript did with Atomics).
void SemWake(const v8::FunctionCallbackInfo<v8::Value>& info) {
  DirectArgs args(info);
  uint8_t* base = SemArg(args, 0);
  int count = args.Int(1);
  if (!args.ok()) return;
  if (base == nullptr) return args.Return(-ERANGE);
  long r = syscall(SYS_futex, ValueWord(base), FUTEX_WAKE, count, nullptr, nullptr, 0);
  args.Return(r < 0 ? -errno : static_cast<int>(r));
}

// A wait on a waiter thread. Holds the mapping, so it cannot go away while
// the thread sleeps on it; ends with -ESTALE if the file is truncated.
class SemWaitJob : public BlockingJob {
 public:
  SemWaitJob(napi_value view, uint8_t* base, int slot) : memory_(HoldBacking(view)), base_(base), slot_(slot) {}
  int Run() override {
    for (;;) {
      if (slot_ >= 0 && MappingTruncated(slot_)) return -ESTALE;
      if (TryTake(base_)) return 0;
      int r = WaitCounted(base_, -1, [this] { return slot_ >= 0 && MappingTruncated(slot_); });
      if (r != -ETIMEDOUT) return r;
    }
  }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  std::shared_ptr<v8::BackingStore> memory_;
  uint8_t* base_;
  int slot_;
};

// semWaitAsync(view, truncatedSlot, callback(result)) -> job id
Napi::Value SemWaitAsync(const Napi::CallbackInfo& info) {
  uint8_t* base = SemArg(info, 0);
  if (base == nullptr) return Errno(info.Env(), ERANGE);
  auto job = std::make_unique<SemWaitJob>(info[0], base, ArgInt(info, 1));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[2].As<Napi::Function>()));
}

// ---------------------------------------------------------------------------
// System V semaphore sets

// The operations arrive as a Uint16Array of [index, delta, flags] triples
// (delta as the 16-bit pattern of a short); `flags` are or-ed into each.
void OpsArg(const Napi::CallbackInfo& info, size_t i, std::vector<sembuf>& ops, short flags = 0) {
  auto raw = info[i].As<Napi::Uint16Array>();
  ops.resize(raw.ElementLength() / 3);
  for (size_t k = 0; k < ops.size(); k++) {
    ops[k].sem_num = raw[3 * k];
    ops[k].sem_op = static_cast<short>(raw[3 * k + 1]);
    ops[k].sem_flg = static_cast<short>(raw[3 * k + 2] | flags);
  }
}

bool AnyNoWait(const std::vector<sembuf>& ops) {
  for (const sembuf& op : ops) {
    if (op.sem_flg & IPC_NOWAIT) return true;
  }
  return false;
}

int Semop(int id, std::vector<sembuf>& ops, const timespec* timeout) {
  int r = timeout != nullptr ? semtimedop(id, ops.data(), ops.size(), timeout) : semop(id, ops.data(), ops.size());
  return r < 0 ? -errno : 0;
}

// semGet(key, count, flags, mode) -> id
Napi::Value SemGet(const Napi::CallbackInfo& info) {
  key_t key = static_cast<key_t>(info[0].As<Napi::Number>().Uint32Value());
  int flags = ArgInt(info, 2) | (ArgInt(info, 3) & 0777);
  return SysResult(info.Env(), semget(key, ArgInt(info, 1), flags));
}

// semOp(id, ops, timeoutMs, spinUs) -> 0 when done; -EAGAIN if the set did
// not allow it within timeoutMs; -EBUSY if an operation flagged IPC_NOWAIT
// could not proceed while the others could wait (semtimedop says EAGAIN for
// both: a blocking attempt's EAGAIN before its deadline is the flag's).
Napi::Value SemOp(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  // One pair of buffers per thread: an operation allocates nothing once they have grown.
  thread_local std::vector<sembuf> ops, trial;
  OpsArg(info, 1, trial, IPC_NOWAIT);
  double timeout_ms = ArgDouble(info, 2);
  int r = Spin(SpinBudget(timeout_ms, ArgDouble(info, 3)), EAGAIN, [&] { return Semop(id, trial, nullptr); });
  if (r != -EAGAIN || timeout_ms == 0) return Napi::Number::New(info.Env(), r);
  OpsArg(info, 1, ops);
  int64_t deadline = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  for (;;) {
    timespec left{};
    if (deadline >= 0) {
      int64_t ns = deadline - NowNs();
      if (ns <= 0) return Napi::Number::New(info.Env(), -EAGAIN);
      left.tv_sec = ns / 1000000000LL;
      left.tv_nsec = ns % 1000000000LL;
    }
    r = Semop(id, ops, deadline >= 0 ? &left : nullptr);
    if (r == -EINTR) continue;
    if (r == -EAGAIN && AnyNoWait(ops) && (deadline < 0 || NowNs() < deadline)) r = -EBUSY;
    return Napi::Number::New(info.Env(), r);
  }
}

// A blocking semop on a waiter thread. EAGAIN can only come from an
// operation flagged IPC_NOWAIT, and a job never ends with -EAGAIN (that
// means "no thread"): it is -EBUSY.
class SemopJob : public BlockingJob {
 public:
  SemopJob(int id, std::vector<sembuf> ops) : id_(id), ops_(std::move(ops)) {}
  int Run() override {
    int r = Semop(id_, ops_, nullptr);
    return r == -EAGAIN ? -EBUSY : r;
  }
  std::vector<napi_value> Results(Napi::Env, int) override { return {}; }

 private:
  int id_;
  std::vector<sembuf> ops_;
};

// semOpAsync(id, ops, callback(result)) -> job id
Napi::Value SemOpAsync(const Napi::CallbackInfo& info) {
  std::vector<sembuf> ops;
  OpsArg(info, 1, ops);
  auto job = std::make_unique<SemopJob>(ArgInt(info, 0), std::move(ops));
  return Napi::Number::New(info.Env(), SubmitJob(info.Env(), std::move(job), info[2].As<Napi::Function>()));
}

// semStat(id) -> object, or -errno
Napi::Value SemStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  semid_ds ds{};
  if (semctl(ArgInt(info, 0), 0, IPC_STAT, &ds) < 0) return Errno(env, errno);
  Napi::Object o = Napi::Object::New(env);
  SetIpcPerm(o, ds.sem_perm);
  o.Set("count", static_cast<double>(ds.sem_nsems));
  o.Set("opTime", static_cast<double>(ds.sem_otime));
  o.Set("changeTime", static_cast<double>(ds.sem_ctime));
  return o;
}

// semInfo(id, out: Float64Array(4 * count)) -> 0: for each index, its
// value, the processes waiting for it to grow, those waiting for zero, and
// the last process that operated on it.
Napi::Value SemInfo(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  auto out = info[1].As<Napi::Float64Array>();
  size_t count = out.ElementLength() / 4;
  for (size_t i = 0; i < count; i++) {
    const int commands[] = {GETVAL, GETNCNT, GETZCNT, GETPID};
    for (int c = 0; c < 4; c++) {
      int r = semctl(id, static_cast<int>(i), commands[c]);
      if (r < 0) return Errno(info.Env(), errno);
      out[4 * i + c] = r;
    }
  }
  return Napi::Number::New(info.Env(), 0);
}

// semGetValue(id, index) -> value
Napi::Value SemGetValue(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), semctl(ArgInt(info, 0), ArgInt(info, 1), GETVAL));
}

// semSetValue(id, index, value) -> 0
Napi::Value SemSetValue(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), semctl(ArgInt(info, 0), ArgInt(info, 1), SETVAL, ArgInt(info, 2)));
}

// GETALL and SETALL (cmd) of the n values at `values`. The kernel moves as
// many values as the set now at `id` has, and a removed set's id is handed
// out again (after some millions of sets, or at once through
// kernel.sem_next_id): a set of another size there is -EIDRM. The values
// pass through a buffer that ends at an inaccessible page, so that a set
// swapped in between the check and the call makes the kernel fail with
// EFAULT (also -EIDRM) instead of writing or reading past the array.
int AllValues(int id, uint16_t* values, size_t n, int cmd) {
  semid_ds ds{};
  if (semctl(id, 0, IPC_STAT, &ds) < 0) return -errno;
  if (ds.sem_nsems != n) return -EIDRM;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t bytes = n * sizeof(uint16_t);
  size_t room = (bytes + page - 1) / page * page;
  auto* region = static_cast<uint8_t*>(mmap(nullptr, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED) return -errno;
  int r = mprotect(region + room, page, PROT_NONE) < 0 ? -errno : 0;
  auto* at = reinterpret_cast<uint16_t*>(region + room - bytes);
  if (r == 0) {
    if (cmd == SETALL) std::memcpy(at, values, bytes);
    r = semctl(id, 0, cmd, at) < 0 ? -errno : 0;
    if (r == 0 && cmd == GETALL) std::memcpy(values, at, bytes);
  }
  munmap(region, room + page);
  return r == -EFAULT ? -EIDRM : r;
}

// semSetAll(id, values: Uint16Array) -> 0; the array has one value per semaphore.
Napi::Value SemSetAll(const Napi::CallbackInfo& info) {
  auto values = info[1].As<Napi::Uint16Array>();
  return Napi::Number::New(info.Env(), AllValues(ArgInt(info, 0), values.Data(), values.ElementLength(), SETALL));
}

// semGetAll(id, values: Uint16Array) -> 0
Napi::Value SemGetAll(const Napi::CallbackInfo& info) {
  auto values = info[1].As<Napi::Uint16Array>();
  return Napi::Number::New(info.Env(), AllValues(ArgInt(info, 0), values.Data(), values.ElementLength(), GETALL));
}

Napi::Value SemRemove(const Napi::CallbackInfo& info) {
  return SysResult(info.Env(), semctl(ArgInt(info, 0), 0, IPC_RMID));
}

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {
      {"semInit", SemInit},
      {"semWaitAsync", SemWaitAsync}, {"semGet", SemGet}, {"semOp", SemOp}, {"semOpAsync", SemOpAsync},
      {"semStat", SemStat}, {"semInfo", SemInfo}, {"semGetValue", SemGetValue}, {"semSetValue", SemSetValue},
      {"semSetAll", SemSetAll}, {"semGetAll", SemGetAll}, {"semRemove", SemRemove}
  });
  ExportDirect(exports, {{"semWait", SemWait}, {"semWake", SemWake}});
}

}  // namespace ipckit
