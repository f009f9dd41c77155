/* An inotify instance with several watches and a gap in their wds.
 *
 * It creates DIR/a, DIR/b, DIR/gone and the directory DIR/d, and one inotify
 * instance (blocking; reads are paced by poll) watching, in this order:
 * a (IN_MODIFY), gone (IN_MODIFY), b (IN_MODIFY|IN_CLOSE_WRITE) and
 * d (IN_CREATE|IN_ONLYDIR). Then it removes the
 * watch of gone, reads its IN_IGNORED (with its wd), and writes DIR/wds:
 * "FD WD_A WD_B WD_D" (fd and wds as the kernel gave them: 1 3 4 on a fresh
 * instance, the gap at 2).
 *
 * Each iteration: append a byte to a: exactly one IN_MODIFY event with wd_a
 * must come; write a byte to b through a new description and close it:
 * IN_MODIFY then IN_CLOSE_WRITE, both with wd_b; create d/nN: IN_CREATE with
 * wd_d and the name nN (then it is unlinked, which d's mask does not watch).
 * Any other event, wd, mask or name fails. Each iteration also checks its own
 * fdinfo lists exactly the wds wd_a, wd_b and wd_d.
 *
 * Events queued when the task is dumped are not saved (as with CRIU): a dump
 * between a write and the read of its event loses that event. So when no
 * event comes within WAIT_MS, the step is done once more, and the second
 * event must come; DIR/lost counts the steps that needed it (a restored
 * instance that watches nothing fails at the second attempt).
 *
 * With argv[2] = "deleted": it opens DIR/victim, watches it, unlinks it
 * (the open fd keeps the inode, so the watch stays), writes DIR/wds as
 * "FD WD" and then just counts, like sleeper: cr must refuse to dump it. */
#include "common.h"
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define WAIT_MS 2000

static int ifd;
static int wd_a, wd_b, wd_d;
static long lost;
static char path_a[4096], path_b[4096], path_d[4096];

static void write_byte(const char *path, int flags) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | flags);
  WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  WL_CHECK(write(fd, "x", 1) == 1, "write %s: %s", path, strerror(errno));
  WL_CHECK(close(fd) == 0, "close %s: %s", path, strerror(errno));
}

/* Read the events that come within WAIT_MS into buf; returns the byte count (0: none came). */
static ssize_t read_events(char *buf, size_t cap) {
  struct pollfd p = {.fd = ifd, .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, WAIT_MS)) < 0 && errno == EINTR) {
  }
  WL_CHECK(n >= 0, "poll: %s", strerror(errno));
  if (n == 0) return 0;
  ssize_t got;
  while ((got = read(ifd, buf, cap)) < 0 && errno == EINTR) {
  }
  WL_CHECK(got > 0, "read inotify: %s", got < 0 ? strerror(errno) : "EOF");
  return got;
}

struct want {
  int wd;
  uint32_t mask;
  const char *name; /* NULL: no name */
};

/* The events `w[0..n)`, in order, and nothing else: checked as they come. */
static int expect_events(const struct want *w, int n, const char *step) {
  char buf[4096] __attribute__((aligned(8)));
  int seen = 0;
  while (seen < n) {
    ssize_t got = read_events(buf, sizeof buf);
    if (got == 0) {
      WL_CHECK(seen == 0, "%s: %d of %d events came, then none for %d ms", step, seen, n, WAIT_MS);
      return 0;
    }
    for (ssize_t off = 0; off < got;) {
      struct inotify_event *e = (struct inotify_event *)(buf + off);
      WL_CHECK(seen < n, "%s: an extra event wd %d mask %#x", step, e->wd, e->mask);
      const struct want *x = &w[seen];
      WL_CHECK(e->wd == x->wd && e->mask == x->mask, "%s: event %d is wd %d mask %#x, expected wd %d mask %#x", step, seen,
               e->wd, e->mask, x->wd, x->mask);
      if (x->name)
        WL_CHECK(e->len > 0 && strcmp(e->name, x->name) == 0, "%s: event %d names \"%s\", expected \"%s\"", step, seen,
                 e->len ? e->name : "", x->name);
      else
        WL_CHECK(e->len == 0, "%s: event %d has a name", step, seen);
      seen++;
      off += sizeof *e + e->len;
    }
  }
  return 1;
}

/* Do `act` and expect its events; once more if none came (see the top). */
static void step(void (*act)(long), long arg, const struct want *w, int n, const char *name) {
  act(arg);
  if (expect_events(w, n, name)) return;
  lost++;
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", lost);
  wl_write("lost", buf);
  act(arg);
  WL_CHECK(expect_events(w, n, name), "%s: no event for %d ms, twice", name, WAIT_MS);
}

static void append_a(long i) {
  (void)i;
  write_byte(path_a, O_APPEND);
}
static void write_b(long i) {
  (void)i;
  write_byte(path_b, O_APPEND);
}
static char created[64];
static void create_in_d(long i) {
  snprintf(created, sizeof created, "n%ld", i);
  char p[4200];
  snprintf(p, sizeof p, "%s/%s", path_d, created);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  WL_CHECK(fd >= 0, "create %s: %s", p, strerror(errno));
  close(fd);
  WL_CHECK(unlink(p) == 0, "unlink %s: %s", p, strerror(errno));
}

/* The wds its own fdinfo lists must be exactly `want[0..n)` (any order). */
static void check_fdinfo(const int *want, int n) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ifd);
  wl_read_small(path, buf, sizeof buf);
  int found = 0;
  for (char *p = strstr(buf, "inotify wd:"); p; p = strstr(p + 1, "inotify wd:")) {
    int wd = (int)strtol(p + strlen("inotify wd:"), NULL, 16);
    int ok = 0;
    for (int i = 0; i < n; i++) ok |= want[i] == wd;
    WL_CHECK(ok, "fdinfo lists wd %d, not one of ours", wd);
    found++;
  }
  WL_CHECK(found == n, "fdinfo lists %d watches, expected %d", found, n);
}

static int add_watch(const char *path, uint32_t mask) {
  int wd = inotify_add_watch(ifd, path, mask);
  WL_CHECK(wd > 0, "inotify_add_watch %s: %s", path, strerror(errno));
  return wd;
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  WL_CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
  close(fd);
}

static __attribute__((noreturn)) void deleted_mode(void) {
  char victim[4096];
  snprintf(victim, sizeof victim, "%s/victim", wl_dir);
  int keep = open(victim, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  WL_CHECK(keep >= 0, "create %s: %s", victim, strerror(errno));
  int wd = add_watch(victim, IN_MODIFY);
  WL_CHECK(unlink(victim) == 0, "unlink %s: %s", victim, strerror(errno));
  char buf[64];
  snprintf(buf, sizeof buf, "%d %d", ifd, wd);
  wl_write("wds", buf);
  for (;;) {
    if (wl_tick()) wl_pass();
    wl_sleep_ms(5);
  }
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  ifd = inotify_init1(IN_CLOEXEC);
  WL_CHECK(ifd >= 0, "inotify_init1: %s", strerror(errno));
  if (argc > 2 && strcmp(argv[2], "deleted") == 0) deleted_mode();

  char gone[4096];
  snprintf(path_a, sizeof path_a, "%s/a", wl_dir);
  snprintf(path_b, sizeof path_b, "%s/b", wl_dir);
  snprintf(path_d, sizeof path_d, "%s/d", wl_dir);
  snprintf(gone, sizeof gone, "%s/gone", wl_dir);
  touch(path_a);
  touch(path_b);
  touch(gone);
  WL_CHECK(mkdir(path_d, 0755) == 0, "mkdir %s: %s", path_d, strerror(errno));

  wd_a = add_watch(path_a, IN_MODIFY);
  int wd_gone = add_watch(gone, IN_MODIFY);
  wd_b = add_watch(path_b, IN_MODIFY | IN_CLOSE_WRITE);
  wd_d = add_watch(path_d, IN_CREATE | IN_ONLYDIR);
  WL_CHECK(inotify_rm_watch(ifd, wd_gone) == 0, "inotify_rm_watch: %s", strerror(errno));
  const struct want ignored = {wd_gone, IN_IGNORED, NULL};
  WL_CHECK(expect_events(&ignored, 1, "remove"), "no IN_IGNORED after inotify_rm_watch");
  WL_CHECK(wd_a < wd_gone && wd_gone < wd_b && wd_b < wd_d, "wds %d %d %d %d not increasing", wd_a, wd_gone, wd_b, wd_d);
  char buf[128];
  snprintf(buf, sizeof buf, "%d %d %d %d", ifd, wd_a, wd_b, wd_d);
  wl_write("wds", buf);

  const int ours[3] = {wd_a, wd_b, wd_d};
  const struct want on_a = {wd_a, IN_MODIFY, NULL};
  const struct want on_b[2] = {{wd_b, IN_MODIFY, NULL}, {wd_b, IN_CLOSE_WRITE, NULL}};
  for (long i = 0;; i++) {
    step(append_a, i, &on_a, 1, "append to a");
    step(write_b, i, on_b, 2, "write to b");
    /* `created` is set by create_in_d before the events are read. */
    struct want on_d = {wd_d, IN_CREATE, created};
    step(create_in_d, i, &on_d, 1, "create in d");
    check_fdinfo(ours, 3);
    if (wl_tick()) break;
    wl_sleep_ms(5);
  }
  /* Final check: one more round of each, nothing left queued. */
  step(append_a, -1, &on_a, 1, "final append to a");
  check_fdinfo(ours, 3);
  struct pollfd p = {.fd = ifd, .events = POLLIN};
  WL_CHECK(poll(&p, 1, 0) == 0, "events left queued at the end");
  wl_pass();
}
