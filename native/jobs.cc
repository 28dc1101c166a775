// The waiter-thread pool; see jobs.h.
//
// One process-wide set of threads serves every environment. A thread is
// started when a job finds no idle one (up to the cap) and exits after
// kIdleSeconds without work. Each environment has a Hub whose uv_async_t
// delivers finished jobs on its own loop; the async handle keeps the loop
// alive only while jobs are pending.
//
// Cancelling interrupts the job's thread with the wake signal. A signal that
// lands between the cancellation check and the system call would be lost,
// so a timer repeats it every kRekillMs until the thread confirms.
#include "jobs.h"

#include <pthread.h>
#include <signal.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "wake.h"

namespace ipckit {

namespace {

constexpr int kIdleSeconds = 30;
constexpr uint64_t kRekillMs = 2;
// Waiter threads make one system call at a time; they need little stack.
constexpr size_t kStackBytes = 256 * 1024;

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

// Everything below is guarded by one mutex: the pool queue, every hub's job
// tables and every job's state. Contention is negligible next to the
// blocking calls the jobs make. The pool is never destroyed: at exit, idle
// threads may still wait on the condition variable, and destroying it would
// block the exit until they time out.
struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> queue;
  int threads = 0;
  int idle = 0;
};
Pool& g_pool = *new Pool;

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
  for (auto it = g_pool.queue.begin(); it != g_pool.queue.end(); ++it) {
    if (*it == job) {
      g_pool.queue.erase(it);
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

void* WorkerMain(void*) {
  // Named, so that ps -L, top -H and /proc/<pid>/task/*/comm tell them apart.
  pthread_setname_np(pthread_self(), "ipckit-waiter");
  // Waiter threads take no process signals except the wake signal, and the
  // faults their own accesses raise: a blocked SIGBUS (a futex word's page
  // gone with a truncated segment) would kill the process instead of
  // reaching the handler that maps private memory there.
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, WakeSignal());
  sigdelset(&set, SIGBUS);
  sigdelset(&set, SIGSEGV);
  pthread_sigmask(SIG_SETMASK, &set, nullptr);

  std::unique_lock<std::mutex> lock(g_pool.mu);
  for (;;) {
    while (g_pool.queue.empty()) {
      g_pool.idle++;
      bool woke = g_pool.cv.wait_for(lock, std::chrono::seconds(kIdleSeconds),
                                     [] { return !g_pool.queue.empty(); });
      g_pool.idle--;
      if (!woke) {
        g_pool.threads--;
        return nullptr;
      }
    }
    Job* job = g_pool.queue.front();
    g_pool.queue.pop_front();
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

// Starts a waiter thread (lock held): 0, or the errno pthread_create gave.
int StartThreadLocked() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, WorkerMain, nullptr);
  pthread_attr_destroy(&attr);
  if (err == 0) g_pool.threads++;
  return err;
}

// Interrupts every cancelled job still inside its system call; true if any.
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
  std::lock_guard<std::mutex> lock(g_pool.mu);
  if (!RekillLocked(hub)) uv_timer_stop(timer);
}

void OnDone(uv_async_t* async) {
  Hub* hub = static_cast<Hub*>(async->data);
  std::deque<Job*> done;
  {
    std::lock_guard<std::mutex> lock(g_pool.mu);
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
      CallFromLoop(env, job->callback, *hub->context, args.size(), args.data());
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
  std::unique_lock<std::mutex> lock(g_pool.mu);
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

uint32_t SubmitJob(Napi::Env env, std::unique_ptr<BlockingJob> work, Napi::Function callback) {
  InstallWakeHandler();
  Hub* hub = GetHub(env);
  Job* job = new Job;
  job->hub = hub;
  job->work = std::move(work);
  job->callback = Napi::Persistent(callback);
  std::lock_guard<std::mutex> lock(g_pool.mu);
  job->id = hub->next_id++;
  if (hub->next_id == 0) hub->next_id = 1;
  if (hub->live.empty()) uv_ref(reinterpret_cast<uv_handle_t*>(hub->async));
  hub->live[job->id] = job;
  // Every job needs a thread of its own: it may block for as long as it
  // likes, so queueing it behind busy threads could wait forever.
  if (g_pool.idle > static_cast<int>(g_pool.queue.size())) {
    g_pool.queue.push_back(job);
    g_pool.cv.notify_one();
  } else if (g_pool.threads >= kMaxWaiterThreads) {
    Finish(job, -ENOSR);
  } else if (int err = StartThreadLocked(); err != 0) {
    Finish(job, -err);
  } else {
    g_pool.queue.push_back(job);
  }
  return job->id;
}

namespace {

// cancelJob(id) -> true if the job was still pending. Its callback runs
// later with -ECANCELED, or with its result if the call completed first.
Napi::Value CancelJob(const Napi::CallbackInfo& info) {
  Hub* hub = tls_hub;
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  bool pending = false;
  if (hub != nullptr) {
    std::lock_guard<std::mutex> lock(g_pool.mu);
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

// waiterThreads() -> [threads, idle]: the pool's size now (for tests and ls).
Napi::Value WaiterThreads(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_pool.mu);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, g_pool.threads);
  out.Set(1u, g_pool.idle);
  return out;
}

}  // namespace

void InitJobs(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports, {{"cancelJob", CancelJob}, {"waiterThreads", WaiterThreads}});
  exports.Set("wakeSignal", Napi::Number::New(env, WakeSignal()));
  exports.Set("maskSignal", Napi::Number::New(env, MaskSignal()));
  exports.Set("maxWaiterThreads", Napi::Number::New(env, kMaxWaiterThreads));
}

}  // namespace ipckit
