/* POSIX timers (timer_create), each of which must come back at its own id
 * with its clock, notification and setting:
 *   A  CLOCK_MONOTONIC, signal SIGRTMIN+2 to the process, sival 0xA11CE,
 *      every 10 ms: the handler checks si_code and si_value and counts;
 *   B  CLOCK_REALTIME, SIGEV_NONE, one shot in 1000 s: the time left must
 *      never grow and stay > 0;
 *   C  CLOCK_MONOTONIC, disarmed: must stay disarmed;
 *   D  CLOCK_MONOTONIC, SIGRTMIN+3 to one worker thread only (SIGEV_THREAD_ID),
 *      every 20 ms: the handler checks that it runs in that thread.
 * Some timers are created and deleted first, so the ids are not 0, 1, 2, 3.
 * A and D must keep firing; /proc/self/timers must list exactly these four. */
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>

static timer_t ta, tb, tc, td;
static volatile long hits_a, hits_d;
static volatile pid_t worker_tid;
static volatile int bad_a, bad_d;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void on_a(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  if (si->si_code != SI_TIMER || si->si_value.sival_int != 0xA11CE) bad_a = 1;
  hits_a++;
}

static void on_d(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  if (si->si_code != SI_TIMER || my_tid() != worker_tid) bad_d = 1;
  hits_d++;
}

static void *worker(void *arg) {
  (void)arg;
  worker_tid = my_tid();
  for (;;) pause();
  return NULL;
}

static void make_timer(clockid_t clock, int notify, int signo, int value, pid_t tid, timer_t *out) {
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = notify;
  ev.sigev_signo = signo;
  ev.sigev_value.sival_int = value;
  if (notify == SIGEV_THREAD_ID) ev._sigev_un._tid = tid;
  WL_CHECK(timer_create(clock, &ev, out) == 0, "timer_create: %s", strerror(errno));
}

static void arm(timer_t t, long value_ms, long interval_ms) {
  struct itimerspec its = {{interval_ms / 1000, (interval_ms % 1000) * 1000000}, {value_ms / 1000, (value_ms % 1000) * 1000000}};
  WL_CHECK(timer_settime(t, 0, &its, NULL) == 0, "timer_settime: %s", strerror(errno));
}

static long left_ms(timer_t t, const char *name) {
  struct itimerspec its;
  WL_CHECK(timer_gettime(t, &its) == 0, "timer_gettime(%s): %s (the timer id is gone)", name, strerror(errno));
  return its.it_value.tv_sec * 1000 + its.it_value.tv_nsec / 1000000;
}

static int count_proc_timers(void) {
  FILE *f = fopen("/proc/self/timers", "r");
  WL_CHECK(f != NULL, "open /proc/self/timers: %s", strerror(errno));
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "ID:", 3) == 0) n++;
  fclose(f);
  return n;
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sa.sa_sigaction = on_a;
  WL_CHECK(sigaction(SIGRTMIN + 2, &sa, NULL) == 0, "sigaction");
  sa.sa_sigaction = on_d;
  WL_CHECK(sigaction(SIGRTMIN + 3, &sa, NULL) == 0, "sigaction");
  /* Only the worker takes SIGRTMIN+3 (the main thread blocks it). */
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGRTMIN + 3);
  pthread_t th;
  WL_CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
  WL_CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0, "pthread_sigmask");
  while (worker_tid == 0) wl_sleep_ms(1);

  timer_t gap[5];
  for (int i = 0; i < 5; i++) make_timer(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0, &gap[i]);
  make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 2, 0xA11CE, 0, &ta);
  make_timer(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0, &tb);
  make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 2, 0, 0, &tc);
  make_timer(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 3, 0, worker_tid, &td);
  for (int i = 0; i < 5; i++) WL_CHECK(timer_delete(gap[i]) == 0, "timer_delete");
  arm(ta, 10, 10);
  arm(tb, 1000 * 1000, 0);
  arm(td, 20, 20);

  long last_b = left_ms(tb, "B"), seen_a = 0, seen_d = 0, idle = 0;
  for (;;) {
    wl_sleep_ms(30);
    WL_CHECK(!bad_a, "timer A: a signal with the wrong si_code or si_value");
    WL_CHECK(!bad_d, "timer D: a signal outside its thread or with the wrong si_code");
    long b = left_ms(tb, "B");
    WL_CHECK(b > 0 && b <= last_b, "timer B: %ld ms left, was %ld", b, last_b);
    last_b = b;
    WL_CHECK(left_ms(tc, "C") == 0, "timer C is armed");
    left_ms(ta, "A");
    left_ms(td, "D");
    WL_CHECK(count_proc_timers() == 4, "%d timers in /proc/self/timers, expected 4", count_proc_timers());
    /* A dump can stop everything for seconds: only a long silence fails. */
    if (hits_a == seen_a || hits_d == seen_d) {
      WL_CHECK(++idle < 300, "timers stopped firing (A %ld, D %ld hits)", hits_a, hits_d);
      continue;
    }
    idle = 0;
    seen_a = hits_a;
    seen_d = hits_d;
    if (wl_tick()) wl_pass();
  }
}
