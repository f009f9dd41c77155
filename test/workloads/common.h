/* Shared protocol of the round-trip workloads (header-only, static functions).
 *
 *   argv[1] = DIR (exists, writable). Every file below is written atomically
 *   (DIR/.tmp, then rename).
 *   DIR/ready     its pid, written after the state is set up and one full
 *                 verification iteration has passed (by the first wl_tick()).
 *   DIR/progress  the iteration count, rewritten at most every 100 ms.
 *   DIR/result    "FAIL <reason>" on any failed check (then exit 1), or, once
 *                 DIR/stop exists, a final full check and "PASS <iterations>"
 *                 (then exit 0). Nothing else writes PASS.
 *
 * The programs never look at their parent, print nothing, use CLOCK_MONOTONIC
 * only for pacing and tolerate any jump of it (a dump can take seconds). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WL_UNUSED __attribute__((unused))

static const char *wl_dir;
static long wl_iter;          /* completed verification iterations */
static long wl_last_progress_ms = -1000000;

/* Set by wl_tree_init() and wl_child_init() (process-tree workloads only);
 * see the end of this file. */
static int wl_tree;
static pid_t wl_tree_parent; /* in a child: the parent it was forked by */

static WL_UNUSED long wl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write DIR/NAME = text atomically. Failing to report is fatal (exit 3). */
static WL_UNUSED void wl_write(const char *name, const char *text) {
  char tmp[4096], path[4096];
  if (wl_tree) /* several processes write: one temporary file each */
    snprintf(tmp, sizeof tmp, "%s/.tmp.%d", wl_dir, (int)getpid());
  else
    snprintf(tmp, sizeof tmp, "%s/.tmp", wl_dir);
  snprintf(path, sizeof path, "%s/%s", wl_dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(3);
  size_t len = strlen(text);
  if (write(fd, text, len) != (ssize_t)len) _exit(3);
  if (close(fd) != 0) _exit(3);
  if (rename(tmp, path) != 0) _exit(3);
}

/* In a tree child about to fail: if its parent is dying (so that the failure
 * is only a consequence of the tree being killed: EOF, EPIPE, reparenting),
 * leave without reporting. Waits up to ~1 s for PDEATHSIG or reparenting. */
static void wl_exit_quietly_if_orphaned(void) {
  for (int i = 0; i < 100; i++) {
    if (getppid() != wl_tree_parent) {
      char path[64], buf[512];
      snprintf(path, sizeof path, "/proc/%d/stat", (int)wl_tree_parent);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) _exit(1);
      ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n <= 0) _exit(1);
      buf[n] = 0;
      char *rp = strrchr(buf, ')');
      if (!rp || rp[1] == 0 || rp[2] == 'Z' || rp[2] == 'X') _exit(1);
      return; /* the parent lives, but is no longer ours: a real failure */
    }
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
}

static WL_UNUSED __attribute__((noreturn, format(printf, 1, 2))) void wl_fail(const char *fmt, ...) {
  char msg[1024] = "FAIL ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + 5, sizeof msg - 5, fmt, ap);
  va_end(ap);
  if (wl_tree) {
    if (wl_tree_parent) wl_exit_quietly_if_orphaned();
    /* First failure wins: a child's own reason is not overwritten by the
     * root's later "child exited with status 1" (nor by a cascade of others). */
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/.tmp.%d", wl_dir, (int)getpid());
    snprintf(path, sizeof path, "%s/result", wl_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) _exit(3);
    size_t len = strlen(msg);
    if (write(fd, msg, len) != (ssize_t)len || close(fd) != 0) _exit(3);
    if (link(tmp, path) != 0 && errno != EEXIST) _exit(3);
    unlink(tmp);
    _exit(1);
  }
  wl_write("result", msg);
  _exit(1);
}

#define WL_CHECK(cond, ...) \
  do {                      \
    if (!(cond)) wl_fail(__VA_ARGS__); \
  } while (0)

static WL_UNUSED void wl_init(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [args]\n", argv[0]);
    exit(2);
  }
  wl_dir = argv[1];
}

/* Call once per iteration, after that iteration's checks passed. Counts it,
 * writes ready (first call) and progress (at most every 100 ms). Returns 1
 * when DIR/stop exists: the caller then does its final full check and wl_pass(). */
static WL_UNUSED int wl_tick(void) {
  wl_iter++;
  char buf[64];
  if (wl_iter == 1) {
    snprintf(buf, sizeof buf, "%d", (int)getpid());
    wl_write("ready", buf);
  }
  long now = wl_now_ms();
  if (now - wl_last_progress_ms >= 100 || now < wl_last_progress_ms) {
    snprintf(buf, sizeof buf, "%ld", wl_iter);
    wl_write("progress", buf);
    wl_last_progress_ms = now;
  }
  char stop[4096];
  snprintf(stop, sizeof stop, "%s/stop", wl_dir);
  return access(stop, F_OK) == 0;
}

static WL_UNUSED __attribute__((noreturn)) void wl_pass(void) {
  char buf[64];
  snprintf(buf, sizeof buf, "PASS %ld", wl_iter);
  wl_write("result", buf);
  exit(0);
}

/* Read the small file `path` (a /proc file) into buf (NUL-terminated, at
 * most cap - 1 bytes); any failure is a failed check. */
static WL_UNUSED void wl_read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  WL_CHECK(n > 0, "read %s", path);
  buf[n] = 0;
}

/* Sleep ms milliseconds (resuming after EINTR). */
static WL_UNUSED void wl_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- Process trees ----------------------------------------------------------
 * Only the root calls wl_tick()/wl_pass() (so only it writes ready, progress
 * and PASS). Any process may fail: after wl_tree_init() every process writes
 * through its own DIR/.tmp.PID and wl_fail() keeps the first FAIL written
 * (link(), not rename()); a child whose parent is dying fails silently (see
 * wl_exit_quietly_if_orphaned). DIR/pids lists the root, then every
 * descendant, written once before ready. */
#include <sys/prctl.h>
#include <sys/wait.h>

/* wl_init() plus tree mode; also ignores SIGPIPE (inherited by the children),
 * so that a dead peer shows up as EPIPE and a FAIL rather than a silent kill. */
static WL_UNUSED void wl_tree_init(int argc, char **argv) {
  wl_init(argc, argv);
  wl_tree = 1;
  signal(SIGPIPE, SIG_IGN);
}

/* First thing in a child after fork(): die with the parent (a safety net
 * against leaked processes in tests, not something the workload checks). */
static WL_UNUSED void wl_child_init(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(4);
  if (getppid() != parent) _exit(4); /* the parent died before prctl */
  wl_tree_parent = parent;
}

/* Write DIR/pids: "ROOT PID1 PID2 ...". */
static WL_UNUSED void wl_write_pids(const pid_t *pids, int n) {
  char buf[4096];
  size_t len = 0;
  for (int i = 0; i < n && len < sizeof buf - 16; i++)
    len += snprintf(buf + len, sizeof buf - len, "%s%d", i ? " " : "", (int)pids[i]);
  buf[len] = 0;
  wl_write("pids", buf);
}

static WL_UNUSED const char *wl_status_str(int st) {
  static char buf[64];
  if (WIFEXITED(st))
    snprintf(buf, sizeof buf, "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, sizeof buf, "was killed by signal %d", WTERMSIG(st));
  else
    snprintf(buf, sizeof buf, "changed state (%#x)", st);
  return buf;
}

/* Reap child `pid` (blocking); it must have exited with status `code`. */
static WL_UNUSED void wl_reap(pid_t pid, int code, const char *what) {
  int st;
  pid_t r;
  while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
  }
  WL_CHECK(r == pid, "waitpid(%s %d) returned %d: %s", what, (int)pid, (int)r, strerror(errno));
  WL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s %d %s (expected exit status %d)", what, (int)pid,
           wl_status_str(st), code);
}

/* No child may have ended yet (non-blocking check, reaps at most one). */
static WL_UNUSED void wl_children_alive(void) {
  int st;
  pid_t r = waitpid(-1, &st, WNOHANG);
  WL_CHECK(r == 0, r > 0 ? "child %d %s before stop" : "waitpid: child %d: %s", (int)r,
           r > 0 ? wl_status_str(st) : strerror(errno));
}

/* Diagnostics for the root after a broken pipe/EOF: if a child ended (within
 * ~1 s; pacing only, the failure itself is already certain), fail naming it. */
static WL_UNUSED void wl_blame_child(void) {
  for (int i = 0; i < 100; i++) {
    int st;
    pid_t r = waitpid(-1, &st, WNOHANG);
    if (r > 0) wl_fail("child %d %s", (int)r, wl_status_str(st));
    if (r < 0) return;
    wl_sleep_ms(10);
  }
}
