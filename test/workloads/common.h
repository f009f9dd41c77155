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

static WL_UNUSED long wl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write DIR/NAME = text atomically. Failing to report is fatal (exit 3). */
static WL_UNUSED void wl_write(const char *name, const char *text) {
  char tmp[4096], path[4096];
  snprintf(tmp, sizeof tmp, "%s/.tmp", wl_dir);
  snprintf(path, sizeof path, "%s/%s", wl_dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(3);
  size_t len = strlen(text);
  if (write(fd, text, len) != (ssize_t)len) _exit(3);
  if (close(fd) != 0) _exit(3);
  if (rename(tmp, path) != 0) _exit(3);
}

static WL_UNUSED __attribute__((noreturn, format(printf, 1, 2))) void wl_fail(const char *fmt, ...) {
  char msg[1024] = "FAIL ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + 5, sizeof msg - 5, fmt, ap);
  va_end(ap);
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

/* Sleep ms milliseconds (resuming after EINTR). */
static WL_UNUSED void wl_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
