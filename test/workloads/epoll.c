/* An epoll loop over files with no path, and a named FIFO with bytes left in it.
 *
 * The root blocks SIGUSR1, makes DIR/fifo and opens it twice (a read end,
 * O_NONBLOCK, and a write end), writes FIFO_A bytes of a position-dependent
 * pattern into it, and creates:
 *   tick  a periodic timerfd (CLOCK_MONOTONIC, every TICK_MS);
 *   tlong a one-shot timerfd (CLOCK_BOOTTIME) due in LONG_S seconds;
 *   efd   an eventfd the child adds 1 to, every few ms;
 *   sem   an EFD_SEMAPHORE eventfd holding SEM_COUNT, never touched before stop;
 *   sfd   a signalfd for SIGUSR1;
 *   ep    an epoll watching tick (EPOLLIN), efd (EPOLLIN|EPOLLET), sfd
 *         (EPOLLIN) and the FIFO's read end (EPOLLIN|EPOLLONESHOT), each with
 *         its own 64-bit tag as data.
 * It then forks a child, which inherits all of it (so every description and
 * the epoll are shared by two tasks), opens the FIFO by path for writing (a
 * description of its own on the same FIFO) and appends FIFO_B more bytes of
 * the pattern. Then the child loops: count sent+1 in shared memory, add 1 to
 * efd, sleep 3 ms, until the root sends 'q' on the quit pipe; then it appends
 * the last FIFO_C bytes through its own description and exits 0.
 *
 * The root waits for the FIFO to hold FIFO_A + FIFO_B bytes and loops on
 * epoll_wait. Every event must carry a known tag; a tick read gives >= 1
 * expiration; the efd read (ET) gives >= 1 and the total received never
 * exceeds what the child counted as sent; every SIGUSR1 read from sfd is
 * counted in DIR/usr1; the FIFO's one-shot event comes exactly once (at the
 * first wait) and never again. Each iteration also checks: the ticks seen are
 * not more than the time since the timer was armed allows (a restored timer
 * never catches up with the time spent frozen: it may only be late); tlong's
 * time left is > 0 and never grows; the FIFO still holds exactly
 * FIFO_A + FIFO_B bytes; the child is alive. It ticks (counts an iteration)
 * each time both timer expirations and eventfd counts have come since the
 * last tick, so progress means both still flow through the epoll.
 *
 * On stop: sem gives exactly SEM_COUNT reads of 1, then EAGAIN; tlong is on
 * clock 7 (BOOTTIME); the child is told to quit and reaped (status 0); efd is
 * drained and the total received equals the total sent exactly; the FIFO is
 * read to EOF: exactly the FIFO_A + FIFO_B + FIFO_C bytes of the pattern.
 *
 * With argv[2] = "stale" it does something else: an epoll registration whose
 * fd is closed (the file lives on through a dup), which cr must refuse to
 * dump; then it just counts like sleeper. */
#include "common.h"
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#define FIFO_A 3000
#define FIFO_B 1000
#define FIFO_C 500
#define TICK_MS 10
#define LONG_S 1000
#define SEM_COUNT 5

#define TAG_TICK 0x7469636b00000001ull
#define TAG_EFD 0x6566640000000002ull
#define TAG_SIG 0x7369670000000003ull
#define TAG_FIFO 0x6669666f00000004ull

static unsigned char pat(size_t pos) { return (unsigned char)(pos * 13 + (pos >> 7) * 5 + 0x33); }

static void write_pat(int fd, size_t from, size_t len, const char *who) {
  unsigned char buf[FIFO_A];
  for (size_t i = 0; i < len; i++) buf[i] = pat(from + i);
  ssize_t n = write(fd, buf, len);
  WL_CHECK(n == (ssize_t)len, "%s: wrote %zd of %zu bytes into the FIFO: %s", who, n, len, n < 0 ? strerror(errno) : "short");
}

static int fifo_avail(int fd) {
  int avail = -1;
  WL_CHECK(ioctl(fd, FIONREAD, &avail) == 0, "FIONREAD on the FIFO: %s", strerror(errno));
  return avail;
}

static uint64_t read_u64(int fd, const char *what) {
  uint64_t v = 0;
  ssize_t n = read(fd, &v, sizeof v);
  WL_CHECK(n == (ssize_t)sizeof v, "reading %s: %s", what, n < 0 ? strerror(errno) : "short read");
  return v;
}

static void add(int ep, int fd, uint32_t events, uint64_t tag) {
  struct epoll_event ev = {.events = events, .data.u64 = tag};
  WL_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD %d: %s", fd, strerror(errno));
}

static long long long_left_ns(int tlong) {
  struct itimerspec cur;
  WL_CHECK(timerfd_gettime(tlong, &cur) == 0, "timerfd_gettime: %s", strerror(errno));
  WL_CHECK(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 0, "tlong has an interval (%ld s)",
           (long)cur.it_interval.tv_sec);
  return (long long)cur.it_value.tv_sec * 1000000000ll + cur.it_value.tv_nsec;
}

/* The value of "key: value" in /proc/self/fdinfo/FD, or -1. */
static long fdinfo_long(int fd, const char *key) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *at = strstr(buf, key);
  return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

static void child(pid_t root, const char *fifo, int efd, int quit_r, volatile uint64_t *sent) {
  int cfd = open(fifo, O_WRONLY | O_CLOEXEC);
  WL_CHECK(cfd >= 0, "child: opening the FIFO to write: %s", strerror(errno));
  write_pat(cfd, FIFO_A, FIFO_B, "child");
  for (;;) {
    WL_CHECK(getppid() == root, "child: parent is %d, expected %d", (int)getppid(), (int)root);
    /* Counted before it is added: the root never receives more than was sent. */
    __atomic_add_fetch(sent, 1, __ATOMIC_SEQ_CST);
    uint64_t one = 1;
    WL_CHECK(write(efd, &one, sizeof one) == sizeof one, "child: adding to the eventfd: %s", strerror(errno));
    char c;
    ssize_t r = read(quit_r, &c, 1);
    if (r == 1) {
      WL_CHECK(c == 'q', "child: got %#x on the quit pipe", c);
      write_pat(cfd, FIFO_A + FIFO_B, FIFO_C, "child");
      close(cfd);
      _exit(0);
    }
    WL_CHECK(r < 0 && (errno == EAGAIN || errno == EINTR), "child: quit pipe: %s",
             r == 0 ? "EOF (the root is gone)" : strerror(errno));
    wl_sleep_ms(3);
  }
}

static __attribute__((noreturn)) void stale(void) {
  int p[2];
  WL_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
  int ep = epoll_create1(0);
  WL_CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
  add(ep, p[0], EPOLLIN, 1);
  /* The registration stays keyed by (file, p[0]) though p[0] is closed. */
  WL_CHECK(dup2(p[0], 20) == 20, "dup2: %s", strerror(errno));
  close(p[0]);
  for (;;) {
    wl_sleep_ms(10);
    if (wl_tick()) wl_pass();
  }
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  if (argc > 2 && strcmp(argv[2], "stale") == 0) stale();

  sigset_t usr1_set;
  sigemptyset(&usr1_set);
  sigaddset(&usr1_set, SIGUSR1);
  WL_CHECK(sigprocmask(SIG_BLOCK, &usr1_set, NULL) == 0, "sigprocmask: %s", strerror(errno));

  char fifo[4096];
  snprintf(fifo, sizeof fifo, "%s/fifo", wl_dir);
  WL_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo, strerror(errno));
  int rfd = open(fifo, O_RDONLY | O_NONBLOCK);
  WL_CHECK(rfd >= 0, "opening the FIFO to read: %s", strerror(errno));
  int wfd = open(fifo, O_WRONLY);
  WL_CHECK(wfd >= 0, "opening the FIFO to write: %s", strerror(errno));
  write_pat(wfd, 0, FIFO_A, "root");

  int sem = eventfd(SEM_COUNT, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
  int efd = eventfd(0, EFD_NONBLOCK);
  int tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  int tlong = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC);
  int sfd = signalfd(-1, &usr1_set, SFD_NONBLOCK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  WL_CHECK(sem >= 0 && efd >= 0 && tick >= 0 && tlong >= 0 && sfd >= 0 && ep >= 0, "creating the fds: %s", strerror(errno));
  struct itimerspec its = {{0, TICK_MS * 1000000}, {0, TICK_MS * 1000000}};
  WL_CHECK(timerfd_settime(tick, 0, &its, NULL) == 0, "arming tick: %s", strerror(errno));
  long tick_armed_ms = wl_now_ms();
  struct itimerspec once = {{0, 0}, {LONG_S, 0}};
  WL_CHECK(timerfd_settime(tlong, 0, &once, NULL) == 0, "arming tlong: %s", strerror(errno));
  add(ep, tick, EPOLLIN, TAG_TICK);
  add(ep, efd, EPOLLIN | EPOLLET, TAG_EFD);
  add(ep, sfd, EPOLLIN, TAG_SIG);
  add(ep, rfd, EPOLLIN | EPOLLONESHOT, TAG_FIFO);

  volatile uint64_t *sent = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(sent != MAP_FAILED, "mmap: %s", strerror(errno));
  int quit[2]; /* non-blocking: the child polls it; one byte never fills it */
  WL_CHECK(pipe2(quit, O_NONBLOCK) == 0, "pipe2: %s", strerror(errno));

  pid_t root = getpid();
  pid_t c = fork();
  WL_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    wl_child_init(root);
    close(quit[1]);
    child(root, fifo, efd, quit[0], sent);
  }
  close(quit[0]);
  pid_t pids[2] = {root, c};
  wl_write_pids(pids, 2);

  for (int i = 0; fifo_avail(rfd) != FIFO_A + FIFO_B; i++) {
    if (i == 500) wl_blame_child();
    WL_CHECK(i < 500, "the FIFO holds %d bytes after 5 s, expected %d", fifo_avail(rfd), FIFO_A + FIFO_B);
    wl_sleep_ms(10);
  }

  uint64_t ticks = 0, recv = 0, ticks_seen = 0, recv_seen = 0;
  long usr1 = 0, fifo_events = 0, waits = 0;
  long long long_prev = long_left_ns(tlong);
  for (;;) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, 1000);
    WL_CHECK(n >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
    waits++;
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[i].data.u64;
      WL_CHECK(evs[i].events & EPOLLIN, "event %#x for tag %#llx without EPOLLIN", evs[i].events, (unsigned long long)tag);
      if (tag == TAG_TICK) {
        uint64_t t = read_u64(tick, "the tick timerfd");
        WL_CHECK(t >= 1, "the tick timerfd read %llu expirations", (unsigned long long)t);
        ticks += t;
      } else if (tag == TAG_EFD) {
        uint64_t v = read_u64(efd, "the eventfd");
        WL_CHECK(v >= 1, "the eventfd read %llu", (unsigned long long)v);
        recv += v;
        uint64_t s = __atomic_load_n(sent, __ATOMIC_SEQ_CST);
        WL_CHECK(recv <= s, "received %llu from the eventfd, the child sent only %llu", (unsigned long long)recv,
                 (unsigned long long)s);
      } else if (tag == TAG_SIG) {
        struct signalfd_siginfo si;
        ssize_t r = read(sfd, &si, sizeof si);
        WL_CHECK(r == (ssize_t)sizeof si, "reading the signalfd: %s", r < 0 ? strerror(errno) : "short read");
        WL_CHECK(si.ssi_signo == SIGUSR1, "the signalfd gave signal %u", si.ssi_signo);
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", ++usr1);
        wl_write("usr1", buf);
      } else if (tag == TAG_FIFO) {
        WL_CHECK(++fifo_events == 1, "the FIFO's EPOLLONESHOT event came %ld times", fifo_events);
      } else {
        wl_fail("epoll event %#x with unknown data %#llx", evs[i].events, (unsigned long long)tag);
      }
    }
    WL_CHECK(fifo_events == 1, "no EPOLLONESHOT event for the FIFO, which holds data, after %ld waits", waits);
    long elapsed = wl_now_ms() - tick_armed_ms;
    WL_CHECK(ticks <= (uint64_t)(elapsed / TICK_MS + 2), "%llu ticks in %ld ms of a %d ms timer", (unsigned long long)ticks,
             elapsed, TICK_MS);
    long long left = long_left_ns(tlong);
    WL_CHECK(left > 0 && left <= long_prev, "tlong has %lld ns left, %lld before", left, long_prev);
    long_prev = left;
    int avail = fifo_avail(rfd);
    WL_CHECK(avail == FIFO_A + FIFO_B, "the FIFO holds %d bytes, expected %d", avail, FIFO_A + FIFO_B);
    wl_children_alive();
    /* An iteration counts once both the timer and the child's eventfd came
     * through the epoll since the last one: progress means both flow. */
    if (ticks > ticks_seen && recv > recv_seen) {
      ticks_seen = ticks;
      recv_seen = recv;
      if (wl_tick()) break;
    }
  }

  for (int i = 0; i < SEM_COUNT; i++) WL_CHECK(read_u64(sem, "the semaphore eventfd") == 1, "semaphore read %d is not 1", i);
  uint64_t extra;
  WL_CHECK(read(sem, &extra, sizeof extra) < 0 && errno == EAGAIN, "the semaphore eventfd gives more than %d", SEM_COUNT);
  WL_CHECK(fdinfo_long(tlong, "clockid:") == CLOCK_BOOTTIME, "tlong is on clock %ld", fdinfo_long(tlong, "clockid:"));
  WL_CHECK(ticks > 0, "the tick timer never fired");

  WL_CHECK(write(quit[1], "q", 1) == 1, "writing the quit byte: %s", strerror(errno));
  wl_reap(c, 0, "child");
  uint64_t v;
  if (read(efd, &v, sizeof v) == (ssize_t)sizeof v) recv += v;
  uint64_t s = __atomic_load_n(sent, __ATOMIC_SEQ_CST);
  WL_CHECK(recv == s, "received %llu from the eventfd in all, the child sent %llu", (unsigned long long)recv,
           (unsigned long long)s);

  close(wfd);
  static unsigned char buf[FIFO_A + FIFO_B + FIFO_C + 4096];
  size_t got = 0;
  for (;;) {
    ssize_t k = read(rfd, buf + got, sizeof buf - got);
    if (k < 0 && errno == EINTR) continue;
    WL_CHECK(k >= 0, "reading the FIFO: %s", strerror(errno));
    if (k == 0) break;
    got += k;
  }
  WL_CHECK(got == FIFO_A + FIFO_B + FIFO_C, "read %zu bytes from the FIFO, expected %d", got, FIFO_A + FIFO_B + FIFO_C);
  for (size_t i = 0; i < got; i++) WL_CHECK(buf[i] == pat(i), "FIFO byte %zu is %#x, expected %#x", i, buf[i], pat(i));
  wl_pass();
}
