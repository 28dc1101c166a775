// Waiter threads and interruptible blocking calls; see waiter.h.
#include "waiter.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace ipckit {

int WakeSignal() { return SIGRTMAX; }

// A request to change other threads' signal masks (see ChangeThreadMasks).
namespace {
std::atomic<int> g_mask_target{0};
sigset_t g_mask_add;
sigset_t g_mask_remove;
std::atomic<int> g_mask_done{0};
}  // namespace

// The wake signal's handler. Its only effect on an ordinary wake is the
// EINTR of the interrupted call. When a mask change is requested for this
// very thread, it edits the signal mask the kernel restores on return.
static void OnWake(int, siginfo_t*, void* context) {
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
  });
}

bool ChangeThreadMask(int tid, const sigset_t& add, const sigset_t& remove) {
  InstallWakeHandler();
  g_mask_add = add;
  g_mask_remove = remove;
  int done = g_mask_done.load();
  g_mask_target.store(tid);
  if (syscall(SYS_tgkill, getpid(), tid, WakeSignal()) < 0) {
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

int CallWithTimeout(const std::function<int()>& call, double timeout_ms) {
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

// ---------------------------------------------------------------------------
// Waiter threads.
//
// One process-wide set of threads serves every environment (main thread and
// workers). Threads are created on demand, so every queued job gets a thread
// at once, and an idle thread exits after kIdleSeconds. Each environment has
// a Hub that receives finished jobs on its own event loop.

namespace {

constexpr int kIdleSeconds = 30;
constexpr uint64_t kRekillMs = 2;

struct Hub;

struct Job {
  enum class State { kQueued, kRunning, kDone };
  uint32_t id = 0;
  Hub* hub = nullptr;
  std::unique_ptr<BlockingJob> work;
  Napi::FunctionReference callback;
  State state = State::kQueued;
  bool cancelled = false;
  pthread_t thread{};
  int result = 0;
};

// Everything below is guarded by one mutex: the pool queue, every hub's
// job tables and every job's state. Contention is negligible next to the
// blocking calls the jobs make. The pool is never destroyed: at exit, idle
// threads may still wait on the condition variable, and destroying it would
// block the exit until they time out.
struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> queue;
  int idle = 0;
};
Pool& g_pool = *new Pool;
std::mutex& g_mu = g_pool.mu;
std::condition_variable& g_cv = g_pool.cv;
std::deque<Job*>& g_queue = g_pool.queue;
int& g_idle = g_pool.idle;

struct Hub {
  napi_env env = nullptr;
  uv_async_t* async = nullptr;
  uv_timer_t* rekill = nullptr;
  std::unordered_map<uint32_t, Job*> live;
  std::deque<Job*> done;
  uint32_t next_id = 1;
  Napi::AsyncContext* context = nullptr;
};

thread_local Hub* tls_hub = nullptr;

// Takes a job that no thread has started off the pool queue (lock held).
void Dequeue(Job* job) {
  for (auto it = g_queue.begin(); it != g_queue.end(); ++it) {
    if (*it == job) {
      g_queue.erase(it);
      return;
    }
  }
}

void Finish(Job* job, int result) {
  job->state = Job::State::kDone;
  job->result = result;
  job->hub->done.push_back(job);
  uv_async_send(job->hub->async);
}

void WorkerMain() {
  // Waiter threads take no process signals except the wake signal.
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, WakeSignal());
  pthread_sigmask(SIG_SETMASK, &set, nullptr);

  std::unique_lock<std::mutex> lock(g_mu);
  for (;;) {
    while (g_queue.empty()) {
      g_idle++;
      bool woke = g_cv.wait_for(lock, std::chrono::seconds(kIdleSeconds),
                                [] { return !g_queue.empty(); });
      g_idle--;
      if (!woke) return;
    }
    Job* job = g_queue.front();
    g_queue.pop_front();
    job->state = Job::State::kRunning;
    job->thread = pthread_self();
    int r;
    for (;;) {
      if (job->cancelled) {
        r = -ECANCELED;
        break;
      }
      lock.unlock();
      r = job->work->Run();
      lock.lock();
      if (r != -EINTR) break;
    }
    Finish(job, r);
  }
}

// Interrupts every cancelled job still inside its system call. Runs on a
// timer while any exists: a signal that arrives between the cancellation
// check and the system call is lost, so it is repeated.
bool RekillLocked(Hub* hub) {
  bool any = false;
  for (auto& entry : hub->live) {
    Job* job = entry.second;
    if (job->cancelled && job->state == Job::State::kRunning) {
      pthread_kill(job->thread, WakeSignal());
      any = true;
    }
  }
  return any;
}

void OnRekill(uv_timer_t* timer) {
  Hub* hub = static_cast<Hub*>(timer->data);
  std::lock_guard<std::mutex> lock(g_mu);
  if (!RekillLocked(hub)) uv_timer_stop(timer);
}

void OnDone(uv_async_t* async) {
  Hub* hub = static_cast<Hub*>(async->data);
  std::deque<Job*> done;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    done.swap(hub->done);
    for (Job* job : done) hub->live.erase(job->id);
    if (hub->live.empty()) uv_unref(reinterpret_cast<uv_handle_t*>(async));
  }
  Napi::Env env(hub->env);
  for (Job* job : done) {
    {
      Napi::HandleScope scope(env);
      std::vector<napi_value> args;
      args.push_back(Napi::Number::New(env, job->result));
      for (napi_value v : job->work->Results(env, job->result)) args.push_back(v);
      job->callback.MakeCallback(env.Global(), args, *hub->context);
      ReportPendingException(env);
    }
    delete job;
  }
}

void CloseHandle(uv_handle_t* handle) {
  uv_close(handle, [](uv_handle_t* h) { free(h); });
}

// Environment teardown: stop every job of this hub, wait for its threads
// to leave their system calls, and release everything.
void DestroyHub(void* arg) {
  Hub* hub = static_cast<Hub*>(arg);
  std::unique_lock<std::mutex> lock(g_mu);
  for (auto& entry : hub->live) {
    Job* job = entry.second;
    job->cancelled = true;
    if (job->state == Job::State::kQueued) {
      Dequeue(job);
      job->state = Job::State::kDone;
    }
  }
  while (RekillLocked(hub)) {
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    lock.lock();
  }
  for (auto& entry : hub->live) delete entry.second;
  hub->live.clear();
  hub->done.clear();
  lock.unlock();
  CloseHandle(reinterpret_cast<uv_handle_t*>(hub->async));
  CloseHandle(reinterpret_cast<uv_handle_t*>(hub->rekill));
  delete hub->context;
  if (tls_hub == hub) tls_hub = nullptr;
  delete hub;
}

Hub* GetHub(Napi::Env env) {
  if (tls_hub != nullptr) return tls_hub;
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  Hub* hub = new Hub;
  hub->env = env;
  hub->async = static_cast<uv_async_t*>(malloc(sizeof(uv_async_t)));
  uv_async_init(loop, hub->async, OnDone);
  hub->async->data = hub;
  uv_unref(reinterpret_cast<uv_handle_t*>(hub->async));
  hub->rekill = static_cast<uv_timer_t*>(malloc(sizeof(uv_timer_t)));
  uv_timer_init(loop, hub->rekill);
  hub->rekill->data = hub;
  uv_unref(reinterpret_cast<uv_handle_t*>(hub->rekill));
  hub->context = new Napi::AsyncContext(env, "ipckit.waiter");
  napi_add_env_cleanup_hook(env, DestroyHub, hub);
  tls_hub = hub;
  return hub;
}

}  // namespace

uint32_t SubmitJob(Napi::Env env, std::unique_ptr<BlockingJob> work,
                   Napi::Function callback) {
  InstallWakeHandler();
  Hub* hub = GetHub(env);
  Job* job = new Job;
  job->hub = hub;
  job->work = std::move(work);
  job->callback = Napi::Persistent(callback);
  bool spawn;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    job->id = hub->next_id++;
    if (hub->next_id == 0) hub->next_id = 1;
    if (hub->live.empty()) uv_ref(reinterpret_cast<uv_handle_t*>(hub->async));
    hub->live[job->id] = job;
    g_queue.push_back(job);
    spawn = static_cast<int>(g_queue.size()) > g_idle;
  }
  if (spawn) {
    std::thread(WorkerMain).detach();
  } else {
    g_cv.notify_one();
  }
  return job->id;
}

// cancelJob(id) -> true if the job was still pending. Its callback runs
// later with -ECANCELED, or with its result if the call completed first.
static Napi::Value CancelJob(const Napi::CallbackInfo& info) {
  Hub* hub = tls_hub;
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  bool pending = false;
  if (hub != nullptr) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = hub->live.find(id);
    if (it != hub->live.end() && it->second->state != Job::State::kDone) {
      Job* job = it->second;
      pending = true;
      job->cancelled = true;
      if (job->state == Job::State::kQueued) {
        Dequeue(job);
        Finish(job, -ECANCELED);
      } else {
        pthread_kill(job->thread, WakeSignal());
        uv_timer_start(hub->rekill, OnRekill, kRekillMs, kRekillMs);
      }
    }
  }
  return Napi::Boolean::New(info.Env(), pending);
}

void InitWaiter(Napi::Env env, Napi::Object exports) {
  exports.Set("cancelJob", Napi::Function::New(env, CancelJob, "cancelJob"));
  exports.Set("wakeSignal", Napi::Number::New(env, WakeSignal()));
}

}  // namespace ipckit
