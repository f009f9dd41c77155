/* Signal state: a SIGUSR1 handler (SA_RESTART, SIGTERM in its sa_mask) that
 * must run exactly once per kill(getpid(), SIGUSR1); SIGUSR2 blocked with
 * sigprocmask and sent once at start, so it must stay pending (and be the only
 * pending signal); the mask must still block SIGUSR2 (and only it) and
 * sigaction(SIGUSR1) must return the handler, flags and mask it returned
 * right after being installed. */
#include "common.h"
#include <signal.h>

static volatile sig_atomic_t hits;

static void on_usr1(int sig) {
  (void)sig;
  hits++;
}

static int same_set(const sigset_t *a, const sigset_t *b) {
  for (int s = 1; s < 65; s++)
    if (sigismember(a, s) != sigismember(b, s)) return 0;
  return 1;
}

static void check_state(const struct sigaction *want, const sigset_t *want_mask, const sigset_t *want_pending) {
  sigset_t cur, pend;
  WL_CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0, "sigprocmask: %s", strerror(errno));
  WL_CHECK(sigismember(&cur, SIGUSR2), "SIGUSR2 is no longer blocked");
  WL_CHECK(!sigismember(&cur, SIGUSR1), "SIGUSR1 is blocked");
  WL_CHECK(same_set(&cur, want_mask), "the signal mask changed");
  WL_CHECK(sigpending(&pend) == 0, "sigpending: %s", strerror(errno));
  WL_CHECK(sigismember(&pend, SIGUSR2), "SIGUSR2 is no longer pending");
  WL_CHECK(same_set(&pend, want_pending), "the pending set changed (more than SIGUSR2)");
  struct sigaction now;
  WL_CHECK(sigaction(SIGUSR1, NULL, &now) == 0, "sigaction: %s", strerror(errno));
  WL_CHECK(now.sa_handler == on_usr1, "SIGUSR1 handler is %p, expected %p", (void *)now.sa_handler, (void *)on_usr1);
  WL_CHECK(now.sa_flags == want->sa_flags, "SIGUSR1 flags are %#x, expected %#x", now.sa_flags, want->sa_flags);
  WL_CHECK((now.sa_flags & SA_RESTART) && !(now.sa_flags & SA_RESETHAND), "SIGUSR1 flags are %#x", now.sa_flags);
  WL_CHECK(same_set(&now.sa_mask, &want->sa_mask), "SIGUSR1 sa_mask changed");
  WL_CHECK(sigismember(&now.sa_mask, SIGTERM), "SIGTERM left the SIGUSR1 sa_mask");
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  struct sigaction want;  /* as the kernel reports it (glibc adds SA_RESTORER) */
  WL_CHECK(sigaction(SIGUSR1, NULL, &want) == 0, "sigaction: %s", strerror(errno));

  sigset_t block, want_mask, want_pending;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  WL_CHECK(sigprocmask(SIG_UNBLOCK, &block, NULL) == 0, "sigprocmask: %s", strerror(errno));
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  WL_CHECK(sigprocmask(SIG_BLOCK, &block, &want_mask) == 0, "sigprocmask: %s", strerror(errno));
  sigaddset(&want_mask, SIGUSR2);
  WL_CHECK(kill(getpid(), SIGUSR2) == 0, "kill SIGUSR2: %s", strerror(errno));
  sigemptyset(&want_pending);
  sigaddset(&want_pending, SIGUSR2);

  long sent = 0;
  for (;;) {
    sig_atomic_t before = hits;
    WL_CHECK(kill(getpid(), SIGUSR1) == 0, "kill SIGUSR1: %s", strerror(errno));
    sent++;
    WL_CHECK(hits == before + 1, "handler ran %d times for one SIGUSR1", (int)(hits - before));
    WL_CHECK(hits == sent, "handler ran %ld times in all for %ld SIGUSR1", (long)hits, sent);
    check_state(&want, &want_mask, &want_pending);
    if (wl_tick()) {
      check_state(&want, &want_mask, &want_pending);
      wl_pass();
    }
    wl_sleep_ms(10);
  }
}
