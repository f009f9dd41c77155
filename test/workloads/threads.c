/* Threads: the main thread and NWORK workers, each with state of its own that
 * must survive a dump/restore per thread, not per process:
 *   - its thread id (gettid) and name (pthread_setname_np), and a __thread
 *     variable (reached through fs_base);
 *   - its signal mask: SIGRTMIN+i blocked in worker i only (SIGUSR2 blocked
 *     in every thread);
 *   - a signal pending for it alone: pthread_kill(self, SIGRTMIN+i) while
 *     blocked, so worker i sees SIGRTMIN+i pending and no other worker's;
 *     and one process-wide: kill(getpid(), SIGUSR2), seen by all;
 *   - a sigaltstack of its own (even workers, each a different size);
 *   - an SSE value held in xmm0 across its sleeps (xstate per thread);
 *   - its own counter, which must keep going.
 * Worker NWORK-1 sleeps in pthread_cond_timedwait instead of nanosleep (a
 * futex wait across the dump). The main thread checks that every worker keeps
 * counting and writes DIR/tids ("MAIN W0 W1 ...") once all are running. */
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>

#define NWORK 8

static volatile long counters[NWORK];
static pid_t tids[NWORK];
static volatile int started;
static __thread long tls_tag;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void check_worker(int i, pid_t tid, const stack_t *want_alt) {
  WL_CHECK(my_tid() == tid, "worker %d: tid %d, was %d", i, (int)my_tid(), (int)tid);
  WL_CHECK(tls_tag == 1000 + i, "worker %d: __thread value %ld, expected %d", i, tls_tag, 1000 + i);
  char name[32], want[32];
  snprintf(want, sizeof want, "wl-worker-%d", i % 100);
  WL_CHECK(pthread_getname_np(pthread_self(), name, sizeof name) == 0, "worker %d: getname", i);
  WL_CHECK(strcmp(name, want) == 0, "worker %d: name '%s', expected '%s'", i, name, want);

  sigset_t mask, pend;
  WL_CHECK(pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0, "worker %d: pthread_sigmask", i);
  WL_CHECK(sigpending(&pend) == 0, "worker %d: sigpending", i);
  WL_CHECK(sigismember(&mask, SIGUSR2), "worker %d: SIGUSR2 no longer blocked", i);
  WL_CHECK(sigismember(&pend, SIGUSR2), "worker %d: the process-wide SIGUSR2 is no longer pending", i);
  for (int j = 0; j < NWORK; j++) {
    WL_CHECK(sigismember(&mask, SIGRTMIN + j) == (j == i), "worker %d: SIGRTMIN+%d %sblocked", i, j, j == i ? "not " : "");
    WL_CHECK(sigismember(&pend, SIGRTMIN + j) == (j == i), "worker %d: SIGRTMIN+%d %spending", i, j, j == i ? "not " : "");
  }

  stack_t alt;
  WL_CHECK(sigaltstack(NULL, &alt) == 0, "worker %d: sigaltstack", i);
  WL_CHECK(alt.ss_sp == want_alt->ss_sp && alt.ss_size == want_alt->ss_size &&
               (alt.ss_flags & SS_DISABLE) == (want_alt->ss_flags & SS_DISABLE),
           "worker %d: altstack %p/%zu/%d, expected %p/%zu/%d", i, alt.ss_sp, alt.ss_size, alt.ss_flags,
           want_alt->ss_sp, want_alt->ss_size, want_alt->ss_flags);
}

static void *worker(void *arg) {
  int i = (int)(long)arg;
  pid_t tid = my_tid();
  tls_tag = 1000 + i;
  char name[32];
  snprintf(name, sizeof name, "wl-worker-%d", i % 100);
  WL_CHECK(pthread_setname_np(pthread_self(), name) == 0, "worker %d: setname", i);

  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGRTMIN + i);
  WL_CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0, "worker %d: block", i);
  WL_CHECK(pthread_kill(pthread_self(), SIGRTMIN + i) == 0, "worker %d: pthread_kill", i);

  stack_t alt = {.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};
  if (i % 2 == 0) {
    alt.ss_size = 65536 + 4096 * (size_t)i;
    alt.ss_sp = malloc(alt.ss_size);
    alt.ss_flags = 0;
    WL_CHECK(alt.ss_sp && sigaltstack(&alt, NULL) == 0, "worker %d: sigaltstack", i);
  }
  double sse = 1.25 * (i + 1);

  tids[i] = tid;
  __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
  for (;;) {
    check_worker(i, tid, &alt);
    /* Block with this worker's own value in xmm0 (each worker has another):
     * only the per-thread xstate (and cr's copy of it) keeps it there across
     * a dump. */
    double got;
    if (i == NWORK - 1) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 5 * 1000000;
      if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
      }
      pthread_mutex_lock(&mu);
      int rc = pthread_cond_timedwait(&cv, &mu, &until);
      pthread_mutex_unlock(&mu);
      WL_CHECK(rc == 0 || rc == ETIMEDOUT, "worker %d: cond wait: %s", i, strerror(rc));
      got = sse;
    } else {
      struct timespec ts = {0, 5 * 1000000};
      long ret;
      __asm__ volatile(
          "movsd %[v], %%xmm0\n\t"
          "syscall\n\t"
          "movsd %%xmm0, %[out]\n\t"
          : [out] "=m"(got), "=a"(ret)
          : [v] "m"(sse), "a"((long)SYS_nanosleep), "D"(&ts), "S"(NULL)
          : "rcx", "r11", "xmm0", "memory");
      WL_CHECK(ret == 0 || ret == -EINTR, "worker %d: nanosleep returned %ld", i, ret);
    }
    WL_CHECK(got == sse, "worker %d: xmm0 held %f across the sleep, expected %f", i, got, sse);
    counters[i]++;
  }
  return NULL;
}

static void write_tids(void) {
  char buf[512];
  size_t len = (size_t)snprintf(buf, sizeof buf, "%d", (int)getpid());
  for (int i = 0; i < NWORK; i++) len += (size_t)snprintf(buf + len, sizeof buf - len, " %d", (int)tids[i]);
  wl_write("tids", buf);
}

/* Every worker must move on within `ms`. */
static void check_progress(long ms) {
  long before[NWORK];
  for (int i = 0; i < NWORK; i++) before[i] = counters[i];
  for (long waited = 0;; waited += 10) {
    int all = 1;
    for (int i = 0; i < NWORK; i++)
      if (counters[i] == before[i]) all = 0;
    if (all) return;
    for (int i = 0; i < NWORK; i++)
      WL_CHECK(counters[i] != before[i] || waited < ms, "worker %d stopped counting at %ld", i, before[i]);
    wl_sleep_ms(10);
  }
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  WL_CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0, "block SIGUSR2");
  WL_CHECK(kill(getpid(), SIGUSR2) == 0, "kill SIGUSR2");
  pthread_t th[NWORK];
  for (long i = 0; i < NWORK; i++)
    WL_CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "pthread_create %ld", i);
  while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NWORK) wl_sleep_ms(1);
  write_tids();

  for (;;) {
    /* A dump can stop everything for seconds: allow that much. */
    check_progress(20000);
    WL_CHECK(my_tid() == getpid(), "main thread tid %d, pid %d", (int)my_tid(), (int)getpid());
    if (wl_tick()) {
      check_progress(2000);
      wl_pass();
    }
    pthread_mutex_lock(&mu);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    wl_sleep_ms(20);
  }
}
