/* Sessions and process groups. The root makes itself a session leader
 * (setsid(), unless it already is one), then forks
 *   A: setpgid(0, 0), its own group in the root's session; A forks
 *   B: stays in A's group;
 *   C: stays in the root's group.
 * Every process stores getsid(0), getpgid(0) and (children) getppid() after
 * setup and checks them every 10 ms; the root also checks the others' groups
 * and sessions with getpgid(pid)/getsid(pid). Each child reports "set up and
 * checked once" (with its pid: that is how the root learns B's) on a ready
 * pipe and closes it; A also checks that B is alive. Stop: the root writes
 * "SS" on a stop pipe read by A and C (read end O_NONBLOCK, one byte each);
 * A passes an 'S' on to B through a pipe of its own; a process that gets its
 * 'S' does a final check and exits 0 (A after reaping B, status 0); the root
 * reaps A and C (status 0). EOF on a stop pipe means the parent is gone: the
 * child fails. The root does not check its own parent: a restore may give it
 * another one. */
#include "common.h"

struct hello {
  char who;
  int pid;
};

static struct {
  const char *name;
  pid_t sid, pgid, ppid;
} self;

static void check_self(void) {
  pid_t sid = getsid(0), pgid = getpgid(0);
  WL_CHECK(sid == self.sid, "%s %d: session is %d, expected %d", self.name, (int)getpid(), (int)sid, (int)self.sid);
  WL_CHECK(pgid == self.pgid, "%s %d: process group is %d, expected %d", self.name, (int)getpid(), (int)pgid,
           (int)self.pgid);
  if (self.ppid) {
    pid_t pp = getppid();
    WL_CHECK(pp == self.ppid, "%s %d: parent is %d, expected %d", self.name, (int)getpid(), (int)pp, (int)self.ppid);
  }
}

static void setup_self(const char *name, pid_t want_sid, pid_t want_pgid, pid_t want_ppid) {
  self.name = name;
  self.sid = want_sid;
  self.pgid = want_pgid;
  self.ppid = want_ppid;
  check_self();
}

static void say_hello(int ready_w, char who) {
  struct hello h = {who, (int)getpid()};
  WL_CHECK(write(ready_w, &h, sizeof h) == (ssize_t)sizeof h, "%s: writing the ready pipe: %s", self.name,
           strerror(errno));
  close(ready_w);
}

/* Loop until this child's 'S' comes; then return (after a final check).
 * `kid`: a child of this process that must stay alive meanwhile (or 0). */
static void child_loop(int stop_r, pid_t kid) {
  for (;;) {
    check_self();
    if (kid) {
      int st;
      pid_t r = waitpid(kid, &st, WNOHANG);
      WL_CHECK(r == 0, "%s: child %d %s before stop", self.name, (int)kid, r > 0 ? wl_status_str(st) : strerror(errno));
    }
    char c;
    ssize_t r = read(stop_r, &c, 1);
    if (r == 1) {
      WL_CHECK(c == 'S', "%s: got %#x on the stop pipe", self.name, c);
      check_self();
      return;
    }
    WL_CHECK(r < 0 && (errno == EAGAIN || errno == EINTR), "%s: stop pipe: %s", self.name,
             r == 0 ? "EOF (the root is gone)" : strerror(errno));
    wl_sleep_ms(10);
  }
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  pid_t root = getpid();
  if (getsid(0) != root) WL_CHECK(setsid() == root, "setsid: %s", strerror(errno));
  setup_self("root", root, root, 0);

  int ready[2], stop[2];
  WL_CHECK(pipe(ready) == 0 && pipe(stop) == 0, "pipe: %s", strerror(errno));
  WL_CHECK(fcntl(stop[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK: %s", strerror(errno));

  pid_t a = fork();
  WL_CHECK(a >= 0, "fork: %s", strerror(errno));
  if (a == 0) {
    wl_child_init(root);
    close(ready[0]);
    close(stop[1]);
    WL_CHECK(setpgid(0, 0) == 0, "A: setpgid: %s", strerror(errno));
    pid_t me = getpid();
    int stop_b[2]; /* A -> B */
    WL_CHECK(pipe(stop_b) == 0, "A: pipe: %s", strerror(errno));
    WL_CHECK(fcntl(stop_b[0], F_SETFL, O_NONBLOCK) == 0, "A: O_NONBLOCK: %s", strerror(errno));
    pid_t b = fork();
    WL_CHECK(b >= 0, "A: fork: %s", strerror(errno));
    if (b == 0) {
      wl_child_init(me);
      close(stop[0]);
      close(stop_b[1]);
      setup_self("B", root, me, me);
      say_hello(ready[1], 'B');
      child_loop(stop_b[0], 0);
      _exit(0);
    }
    close(stop_b[0]);
    setup_self("A", root, me, root);
    say_hello(ready[1], 'A');
    child_loop(stop[0], b);
    WL_CHECK(write(stop_b[1], "S", 1) == 1, "A: writing B's stop pipe: %s", strerror(errno));
    wl_reap(b, 0, "A: grandchild B");
    _exit(0);
  }
  /* Also from this side, so that the root never sees A in its old group. */
  WL_CHECK(setpgid(a, a) == 0 || errno == EACCES, "setpgid(A): %s", strerror(errno));

  pid_t c = fork();
  WL_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    wl_child_init(root);
    close(ready[0]);
    close(stop[1]);
    setup_self("C", root, root, root);
    say_hello(ready[1], 'C');
    child_loop(stop[0], 0);
    _exit(0);
  }
  close(ready[1]);
  close(stop[0]);

  pid_t b = 0;
  int heard = 0;
  while (heard != 7) {
    struct hello h;
    ssize_t r = read(ready[0], &h, sizeof h);
    if (r < 0 && errno == EINTR) continue;
    if (r != (ssize_t)sizeof h) wl_blame_child();
    WL_CHECK(r == (ssize_t)sizeof h, "ready pipe: %s (heard %#x of 7)",
             r < 0 ? strerror(errno) : r == 0 ? "EOF, a child died" : "short read", heard);
    int bit = h.who == 'A' ? 1 : h.who == 'B' ? 2 : h.who == 'C' ? 4 : 8;
    WL_CHECK(bit != 8 && !(heard & bit), "ready pipe: unexpected hello %#x", h.who);
    heard |= bit;
    if (h.who == 'A') WL_CHECK(h.pid == a, "A says its pid is %d, expected %d", h.pid, (int)a);
    if (h.who == 'C') WL_CHECK(h.pid == c, "C says its pid is %d, expected %d", h.pid, (int)c);
    if (h.who == 'B') b = h.pid;
  }
  close(ready[0]);
  pid_t pids[4] = {root, a, b, c};
  wl_write_pids(pids, 4);

  struct {
    const char *name;
    pid_t pid, pgid;
  } others[3] = {{"A", a, a}, {"B", b, a}, {"C", c, root}};
  for (;;) {
    check_self();
    for (int i = 0; i < 3; i++) {
      pid_t pg = getpgid(others[i].pid), sid = getsid(others[i].pid);
      WL_CHECK(pg == others[i].pgid, "root: %s %d is in group %d, expected %d (%s)", others[i].name,
               (int)others[i].pid, (int)pg, (int)others[i].pgid, pg < 0 ? strerror(errno) : "moved");
      WL_CHECK(sid == root, "root: %s %d is in session %d, expected %d (%s)", others[i].name, (int)others[i].pid,
               (int)sid, (int)root, sid < 0 ? strerror(errno) : "moved");
    }
    wl_children_alive();
    if (wl_tick()) break;
    wl_sleep_ms(10);
  }
  WL_CHECK(write(stop[1], "SS", 2) == 2, "writing the stop pipe: %s", strerror(errno));
  wl_reap(a, 0, "child A");
  wl_reap(c, 0, "child C");
  WL_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "the root has an unexpected child");
  check_self();
  wl_pass();
}
