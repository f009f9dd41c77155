/* A job of an interactive shell: stdin, stdout and stderr are the terminal of
 * a session led outside the job (by the shell). It also opens /dev/tty itself
 * (fd 3, O_NONBLOCK: a description of its own). Every iteration (~50 ms) it
 * prints "tick N" on stdout, and a line typed on the terminal comes back on
 * stdout as "got: LINE" (and in DIR/input); a SIGWINCH prints "winch N".
 * Checks every iteration: fds 0..3 are terminals, fd 0 and fd 3 are the
 * controlling terminal of its session (tcgetsid), it does not lead that
 * session, fd 3 is still O_NONBLOCK and fd 0 is not. With argv[2] "noecho"
 * it turns the terminal's ECHO off at the start (as a password prompt does)
 * and checks that it stays off. A read of the terminal from a background
 * group would stop it (SIGTTIN): the test sees that as a line that never
 * comes back. */
#include "common.h"
#include <poll.h>
#include <termios.h>

static int noecho;
static volatile sig_atomic_t winches;

static void on_winch(int sig) {
  (void)sig;
  winches++;
}

static void check(void) {
  pid_t sid = getsid(0);
  WL_CHECK(sid != getpid(), "leads its own session %d", (int)sid);
  for (int fd = 0; fd <= 3; fd++) WL_CHECK(isatty(fd), "fd %d is not a terminal: %s", fd, strerror(errno));
  pid_t s0 = tcgetsid(0), s3 = tcgetsid(3);
  WL_CHECK(s0 == sid, "fd 0 is the terminal of session %d, not of its session %d (%s)", (int)s0, (int)sid,
           s0 < 0 ? strerror(errno) : "another one");
  WL_CHECK(s3 == sid, "fd 3 is the terminal of session %d, not of its session %d (%s)", (int)s3, (int)sid,
           s3 < 0 ? strerror(errno) : "another one");
  int fl0 = fcntl(0, F_GETFL), fl3 = fcntl(3, F_GETFL);
  WL_CHECK(fl0 >= 0 && !(fl0 & O_NONBLOCK), "fd 0 flags now %#x", fl0);
  WL_CHECK(fl3 >= 0 && (fl3 & O_NONBLOCK) && (fl3 & O_ACCMODE) == O_RDWR, "fd 3 flags now %#x", fl3);
  if (noecho) {
    struct termios t;
    WL_CHECK(tcgetattr(0, &t) == 0, "tcgetattr: %s", strerror(errno));
    WL_CHECK(!(t.c_lflag & ECHO) && (t.c_lflag & ICANON), "terminal modes now lflag %#x (ECHO should be off, ICANON on)",
             (unsigned)t.c_lflag);
  }
}

static void say(const char *text) {
  size_t len = strlen(text);
  ssize_t n = write(1, text, len);
  WL_CHECK(n == (ssize_t)len, "write to the terminal: %s", n < 0 ? strerror(errno) : "short");
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  noecho = argc > 2 && strcmp(argv[2], "noecho") == 0;
  if (noecho) {
    struct termios t;
    WL_CHECK(tcgetattr(0, &t) == 0, "tcgetattr: %s", strerror(errno));
    t.c_lflag &= ~ECHO;
    WL_CHECK(tcsetattr(0, TCSANOW, &t) == 0, "tcsetattr: %s", strerror(errno));
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_winch;
  sa.sa_flags = SA_RESTART;
  WL_CHECK(sigaction(SIGWINCH, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  int seen_winches = 0;
  int fd = open("/dev/tty", O_RDWR | O_NONBLOCK);
  WL_CHECK(fd == 3, "open /dev/tty gave fd %d: %s", fd, fd < 0 ? strerror(errno) : "not 3");
  char input[4096] = "";
  size_t input_len = 0;
  for (long n = 0;; n++) {
    check();
    char line[64];
    if (winches != seen_winches) {
      seen_winches = winches;
      snprintf(line, sizeof line, "winch %d\n", seen_winches);
      say(line);
    }
    snprintf(line, sizeof line, "tick %ld\n", n);
    say(line);
    struct pollfd p = {0, POLLIN, 0};
    int r = poll(&p, 1, 50);
    WL_CHECK(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
    if (r > 0 && (p.revents & POLLIN)) {
      char buf[512];
      ssize_t got = read(0, buf, sizeof buf - 1);
      WL_CHECK(got > 0, "read from the terminal: %s", got < 0 ? strerror(errno) : "end of file");
      buf[got] = 0;
      char echo[600];
      snprintf(echo, sizeof echo, "got: %s", buf);
      say(echo);
      WL_CHECK(input_len + got < sizeof input, "too much input");
      memcpy(input + input_len, buf, got + 1);
      input_len += got;
      wl_write("input", input);
    } else {
      WL_CHECK(r == 0 || !(p.revents & (POLLHUP | POLLERR)), "terminal hung up (revents %#x)", p.revents);
    }
    if (wl_tick()) {
      check();
      wl_pass();
    }
  }
}
