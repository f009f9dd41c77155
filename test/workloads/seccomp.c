/* Seccomp filters: the main thread installs filter A (getppid() fails with
 * EPERM), starts NWORK threads (which inherit A), then installs filter B
 * (uname() fails with ENOSYS; SECCOMP_FILTER_FLAG_LOG) with
 * SECCOMP_FILTER_FLAG_TSYNC, so all threads share the chain A <- B. Every
 * thread then checks, each iteration: both filtered calls fail with their
 * errno, unfiltered calls (getpid, gettid, getuid) work, and its own
 * /proc/thread-self/status says "Seccomp: 2", "Seccomp_filters: 2" and the
 * expected NoNewPrivs and CAP_SYS_ADMIN. At the end (DIR/stop), with the
 * workers parked, the main thread installs an allow-all filter with TSYNC:
 * the kernel syncs it only if every thread's chain is the main thread's
 * (the very same filter objects, not copies), and every thread then has 3.
 *
 * argv[2] (mode): "nnp" (default) sets no_new_privs first; "root" installs
 * as root without it (CAP_SYS_ADMIN), NoNewPrivs stays 0; "dropadmin" is
 * "root" and then drops CAP_SYS_ADMIN from every thread's capability sets
 * (so the filters can no longer be installed by the task's own credentials). */
#include "common.h"
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#define NWORK 2

static volatile long counters[NWORK];
static volatile int started, armed, parking, parked;
static pid_t tids[NWORK];
static int want_nnp = 1, drop_admin;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static int install(struct sock_filter *insns, unsigned short n, unsigned flags) {
  struct sock_fprog prog = {.len = n, .filter = insns};
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* "NAME:\tVALUE" of the status file `path`, as a (hex) number (-1: not found). */
static long status_field_of(const char *path, const char *name) {
  char buf[8192];
  wl_read_small(path, buf, sizeof buf);
  size_t len = strlen(name);
  for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, name, len) == 0 && line[len] == ':') return strtol(line + len + 1, NULL, 16);
  }
  return -1;
}

static long status_field(const char *name) { return status_field_of("/proc/thread-self/status", name); }

static void check(const char *who) {
  errno = 0;
  long r = syscall(SYS_getppid);
  WL_CHECK(r == -1 && errno == EPERM, "%s: getppid returned %ld errno %d, expected EPERM", who, r, errno);
  struct utsname u;
  errno = 0;
  r = syscall(SYS_uname, &u);
  WL_CHECK(r == -1 && errno == ENOSYS, "%s: uname returned %ld errno %d, expected ENOSYS", who, r, errno);
  WL_CHECK(syscall(SYS_getpid) == getpid(), "%s: getpid", who);
  WL_CHECK(my_tid() > 0, "%s: gettid", who);
  WL_CHECK(syscall(SYS_getuid) == 0, "%s: getuid", who);
  /* Fields read in hex: 2 and 1/0 read the same. */
  WL_CHECK(status_field("Seccomp") == 2, "%s: Seccomp %ld, expected 2", who, status_field("Seccomp"));
  WL_CHECK(status_field("Seccomp_filters") == 2, "%s: Seccomp_filters %ld, expected 2", who, status_field("Seccomp_filters"));
  WL_CHECK(status_field("NoNewPrivs") == want_nnp, "%s: NoNewPrivs %ld, expected %d", who, status_field("NoNewPrivs"), want_nnp);
  long eff = status_field("CapEff");
  WL_CHECK(((eff >> CAP_SYS_ADMIN) & 1) == !drop_admin, "%s: CapEff %lx: CAP_SYS_ADMIN %s", who, eff, drop_admin ? "back" : "lost");
}

static void drop_sys_admin(void) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  WL_CHECK(syscall(SYS_capget, &h, d) == 0, "capget: %s", strerror(errno));
  d[0].effective &= ~(1u << CAP_SYS_ADMIN);
  d[0].permitted &= ~(1u << CAP_SYS_ADMIN);
  WL_CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerror(errno));
}

static void *worker(void *arg) {
  int i = (int)(long)arg;
  __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
  while (!__atomic_load_n(&armed, __ATOMIC_SEQ_CST)) wl_sleep_ms(1);
  if (drop_admin) drop_sys_admin(); /* capabilities are per thread */
  char who[32];
  snprintf(who, sizeof who, "worker %d", i);
  tids[i] = my_tid();
  for (;;) {
    if (__atomic_load_n(&parking, __ATOMIC_SEQ_CST)) {
      __atomic_add_fetch(&parked, 1, __ATOMIC_SEQ_CST);
      for (;;) wl_sleep_ms(1000);
    }
    check(who);
    counters[i]++;
    wl_sleep_ms(5);
  }
  return NULL;
}

/* The final check that all threads share one chain (see the top). */
static void check_shared(void) {
  __atomic_store_n(&parking, 1, __ATOMIC_SEQ_CST);
  for (long waited = 0; __atomic_load_n(&parked, __ATOMIC_SEQ_CST) < NWORK; waited++) {
    WL_CHECK(waited < 5000, "workers did not park");
    wl_sleep_ms(1);
  }
  /* Without CAP_SYS_ADMIN (dropadmin) only no_new_privs allows a filter; TSYNC passes it on. */
  if (drop_admin) WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
  struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  int rc = install(allow, 1, SECCOMP_FILTER_FLAG_TSYNC);
  WL_CHECK(rc == 0, "TSYNC at the end: returned %d (%s): the threads no longer share their filters", rc, rc < 0 ? strerror(errno) : "thread");
  WL_CHECK(status_field("Seccomp_filters") == 3, "main: Seccomp_filters %ld after TSYNC", status_field("Seccomp_filters"));
  for (int i = 0; i < NWORK; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tids[i]);
    WL_CHECK(status_field_of(path, "Seccomp_filters") == 3, "worker %d: Seccomp_filters %ld after TSYNC", i, status_field_of(path, "Seccomp_filters"));
  }
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  const char *mode = argc > 2 ? argv[2] : "nnp";
  want_nnp = strcmp(mode, "nnp") == 0;
  drop_admin = strcmp(mode, "dropadmin") == 0;
  if (want_nnp) WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

  struct sock_filter a[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_filter b[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  WL_CHECK(install(a, sizeof a / sizeof a[0], 0) == 0, "seccomp filter A: %s", strerror(errno));
  pthread_t th[NWORK];
  for (long i = 0; i < NWORK; i++) WL_CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "pthread_create %ld", i);
  while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NWORK) wl_sleep_ms(1);
  int rc = install(b, sizeof b / sizeof b[0], SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG);
  WL_CHECK(rc == 0, "seccomp filter B (TSYNC): returned %d: %s", rc, strerror(errno));
  if (drop_admin) drop_sys_admin();
  __atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);

  for (;;) {
    long before[NWORK];
    for (int i = 0; i < NWORK; i++) before[i] = counters[i];
    check("main");
    /* A dump can stop everything for seconds: allow that much. */
    for (long waited = 0;; waited += 10) {
      int all = 1;
      for (int i = 0; i < NWORK; i++) {
        if (counters[i] == before[i]) all = 0;
        WL_CHECK(counters[i] != before[i] || waited < 20000, "worker %d stopped counting at %ld", i, before[i]);
      }
      if (all) break;
      wl_sleep_ms(10);
    }
    if (wl_tick()) {
      check_shared();
      wl_pass();
    }
  }
}
