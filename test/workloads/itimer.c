/* ITIMER_REAL with a 20 ms interval and a counting SIGALRM handler. SIGALRM
 * is blocked except while waiting; each iteration waits for at least one tick
 * with ppoll(no fds, timeout, mask without SIGALRM), i.e. sigsuspend with a
 * timeout, and fails if no tick arrives within 2 s of waiting. The wait is
 * summed over 100 ms slices and a slice that took over 1 s (a dump happened in
 * it: the process was frozen) starts the 2 s over, so time jumps never fail
 * it. Also checks: getitimer still reports a 20 ms interval and a remaining
 * value in (0, 20 ms]; SIGALRM is blocked outside the wait; the handler. */
#include "common.h"
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks;

static void on_alarm(int sig) {
  (void)sig;
  ticks++;
}

static void check_state(void) {
  struct itimerval cur;
  WL_CHECK(getitimer(ITIMER_REAL, &cur) == 0, "getitimer: %s", strerror(errno));
  WL_CHECK(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_usec == 20000, "interval is now %ld.%06ld s",
           (long)cur.it_interval.tv_sec, (long)cur.it_interval.tv_usec);
  WL_CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_usec > 0 && cur.it_value.tv_usec <= 20000,
           "timer value is now %ld.%06ld s", (long)cur.it_value.tv_sec, (long)cur.it_value.tv_usec);
  sigset_t mask;
  WL_CHECK(sigprocmask(SIG_BLOCK, NULL, &mask) == 0, "sigprocmask: %s", strerror(errno));
  WL_CHECK(sigismember(&mask, SIGALRM), "SIGALRM is no longer blocked outside the wait");
  struct sigaction sa;
  WL_CHECK(sigaction(SIGALRM, NULL, &sa) == 0, "sigaction: %s", strerror(errno));
  WL_CHECK(sa.sa_handler == on_alarm, "SIGALRM handler is %p, expected %p", (void *)sa.sa_handler, (void *)on_alarm);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  sigset_t alrm, waitmask;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  WL_CHECK(sigprocmask(SIG_BLOCK, &alrm, &waitmask) == 0, "sigprocmask: %s", strerror(errno));
  sigdelset(&waitmask, SIGALRM);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  WL_CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  struct itimerval it = {{0, 20000}, {0, 20000}};
  WL_CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer: %s", strerror(errno));

  sig_atomic_t last = 0;
  for (;;) {
    long waited = 0;  /* ms spent waiting for a tick, dump gaps excluded */
    while (ticks == last) {
      struct timespec slice = {0, 100 * 1000000};
      long t0 = wl_now_ms();
      int r = ppoll(NULL, 0, &slice, &waitmask);
      WL_CHECK(r == 0 || (r < 0 && errno == EINTR), "ppoll returned %d: %s", r, strerror(errno));
      long d = wl_now_ms() - t0;
      if (d >= 0 && d < 1000) waited += d;
      WL_CHECK(waited < 2000, "no SIGALRM for %ld ms of waiting (%ld ticks so far)", waited, (long)ticks);
    }
    sig_atomic_t now = ticks;
    WL_CHECK(now > last, "tick count went from %ld to %ld", (long)last, (long)now);
    last = now;
    check_state();
    if (wl_tick()) {
      check_state();
      wl_pass();
    }
  }
}
