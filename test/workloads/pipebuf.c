/* Unread data in a pipe buffer. The root makes three pipes and forks a child:
 *   data  child -> root: the child raises its size to 1 MiB (F_SETPIPE_SZ)
 *         and writes exactly 64 KiB of a position-dependent pattern into it;
 *         the root does not read it before stop;
 *   ctl   child -> root: one byte 'w' once those 64 KiB are written;
 *   quit  root -> child: one byte 'q' on stop (O_NONBLOCK on the child's end).
 * The child then loops every 10 ms: getppid() is the root, the data pipe still
 * holds 64 KiB (FIONREAD) in a >= 1 MiB buffer, and 'q' has not come (EOF on
 * quit = the root is gone: exit 1). The root ticks after the same checks. On
 * stop: the root sends 'q', the child closes its end and exits 0, the root
 * reaps it, reads the data pipe to EOF (exactly 64 KiB of the pattern), checks
 * the buffer is still >= 1 MiB and passes. */
#include "common.h"
#include <sys/ioctl.h>

#define DATA_LEN (64 * 1024)
#define PIPE_SZ (1024 * 1024)

static unsigned char pat(size_t pos) { return (unsigned char)(pos * 31 + (pos >> 8) * 7 + (pos >> 16) * 3 + 0x5a); }

static void check_pipe(int fd, const char *who) {
  int sz = fcntl(fd, F_GETPIPE_SZ);
  WL_CHECK(sz >= PIPE_SZ, "%s: data pipe size is %d, expected >= %d (%s)", who, sz, PIPE_SZ,
           sz < 0 ? strerror(errno) : "shrunk");
  int avail = -1;
  WL_CHECK(ioctl(fd, FIONREAD, &avail) == 0, "%s: FIONREAD: %s", who, strerror(errno));
  WL_CHECK(avail == DATA_LEN, "%s: data pipe holds %d bytes, expected %d", who, avail, DATA_LEN);
}

static void child(pid_t root, int data_w, int ctl_w, int quit_r) {
  WL_CHECK(fcntl(data_w, F_SETPIPE_SZ, PIPE_SZ) >= PIPE_SZ, "child: F_SETPIPE_SZ %d: %s", PIPE_SZ, strerror(errno));
  static unsigned char buf[DATA_LEN];
  for (size_t i = 0; i < DATA_LEN; i++) buf[i] = pat(i);
  ssize_t n = write(data_w, buf, DATA_LEN);
  WL_CHECK(n == DATA_LEN, "child: wrote %zd of %d bytes: %s", n, DATA_LEN, n < 0 ? strerror(errno) : "short");
  WL_CHECK(write(ctl_w, "w", 1) == 1, "child: writing the ctl byte: %s", strerror(errno));
  close(ctl_w);
  for (;;) {
    WL_CHECK(getppid() == root, "child: parent is %d, expected %d", (int)getppid(), (int)root);
    check_pipe(data_w, "child");
    char c;
    ssize_t r = read(quit_r, &c, 1);
    if (r == 1) {
      WL_CHECK(c == 'q', "child: got %#x on the quit pipe", c);
      check_pipe(data_w, "child");
      close(data_w);
      _exit(0);
    }
    WL_CHECK(r < 0 && (errno == EAGAIN || errno == EINTR), "child: quit pipe: %s",
             r == 0 ? "EOF (the root is gone)" : strerror(errno));
    wl_sleep_ms(10);
  }
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  int data[2], ctl[2], quit[2];
  WL_CHECK(pipe(data) == 0 && pipe(ctl) == 0 && pipe(quit) == 0, "pipe: %s", strerror(errno));
  WL_CHECK(fcntl(quit[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK: %s", strerror(errno));
  pid_t root = getpid();
  pid_t c = fork();
  WL_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    wl_child_init(root);
    close(data[0]);
    close(ctl[0]);
    close(quit[1]);
    child(root, data[1], ctl[1], quit[0]);
  }
  close(data[1]);
  close(ctl[1]);
  close(quit[0]);
  pid_t pids[2] = {root, c};
  wl_write_pids(pids, 2);

  char w;
  ssize_t r;
  while ((r = read(ctl[0], &w, 1)) < 0 && errno == EINTR) {
  }
  if (r != 1) wl_blame_child();
  WL_CHECK(r == 1 && w == 'w', "ctl pipe: %s", r < 0 ? strerror(errno) : r == 0 ? "EOF" : "bad byte");
  close(ctl[0]);

  for (;;) {
    check_pipe(data[0], "root");
    wl_children_alive();
    if (wl_tick()) break;
    wl_sleep_ms(10);
  }
  check_pipe(data[0], "root");
  WL_CHECK(write(quit[1], "q", 1) == 1, "writing the quit byte: %s", strerror(errno));
  wl_reap(c, 0, "child");
  static unsigned char buf[DATA_LEN + 4096];
  size_t got = 0;
  for (;;) {
    ssize_t k = read(data[0], buf + got, sizeof buf - got);
    if (k < 0 && errno == EINTR) continue;
    WL_CHECK(k >= 0, "reading the data pipe: %s", strerror(errno));
    if (k == 0) break;
    got += k;
    WL_CHECK(got <= DATA_LEN, "the data pipe holds more than %d bytes", DATA_LEN);
  }
  WL_CHECK(got == DATA_LEN, "read %zu bytes from the data pipe, expected %d", got, DATA_LEN);
  for (size_t i = 0; i < DATA_LEN; i++)
    WL_CHECK(buf[i] == pat(i), "data byte %zu is %#x, expected %#x", i, buf[i], pat(i));
  int sz = fcntl(data[0], F_GETPIPE_SZ);
  WL_CHECK(sz >= PIPE_SZ, "data pipe size is %d after the read, expected >= %d", sz, PIPE_SZ);
  wl_pass();
}
