/* Unix sockets with unread data in their queues, and a listening socket.
 * The root makes three socket pairs (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET)
 * and a SOCK_STREAM socket listening at DIR/ctl.sock (absolute path), then
 * forks a child; each keeps one end of each pair (the child also keeps the
 * listener it inherited: a socket shared by two tasks).
 *
 * Channels: on each pair, both sides first send 3 numbered 16-byte records
 * ("<kind><14 digits>\n"), then every iteration send the next and receive
 * one, which must be the next number the peer sent: no loss, no
 * duplication, in order. Each side sends before it receives, so every pair
 * always holds 6 to 8 unread records across its two queues (the test checks
 * the images for that). The root's stream end is used through two fds (a dup:
 * one description), its dgram end is O_NONBLOCK (checked every iteration,
 * waited on with poll).
 *
 * Control socket: every iteration the child connects to DIR/ctl.sock, sends
 * "hello N", reads "ok N" and closes; the root accepts, reads, replies and
 * closes. The child paces the loop before it connects, so that the root is
 * already waiting in accept. On stop: the root checks the listener (SO_ACCEPTCONN, still a
 * socket at its path), SIGUSR1s the child (which exits 0 from the handler),
 * reaps it and passes. */
#include "common.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define REC 16
#define INFLIGHT 3

struct chan {
  const char *name;
  int type;
  int rfd, wfd; /* the same socket; for the root's stream end, a dup */
  long sent, got;
};

static void send_rec(struct chan *c) {
  char buf[REC + 1];
  snprintf(buf, sizeof buf, "%c%014ld\n", c->name[0], c->sent);
  ssize_t n;
  while ((n = send(c->wfd, buf, REC, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  WL_CHECK(n == REC, "%s: send #%ld: %s", c->name, c->sent, n < 0 ? strerror(errno) : "short");
  c->sent++;
}

static void recv_rec(struct chan *c) {
  char buf[REC + 1];
  size_t have = 0;
  while (have < REC) {
    ssize_t n = recv(c->rfd, buf + have, REC - have, 0);
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {c->rfd, POLLIN, 0};
      poll(&p, 1, 1000);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) wl_blame_child();
    WL_CHECK(n > 0, "%s: recv #%ld: %s", c->name, c->got, n < 0 ? strerror(errno) : "EOF");
    /* A message socket gives whole records. */
    WL_CHECK(c->type == SOCK_STREAM || n == REC, "%s: message of %zd bytes", c->name, n);
    have += (size_t)n;
  }
  buf[REC] = 0;
  char want[REC + 1];
  snprintf(want, sizeof want, "%c%014ld\n", c->name[0], c->got);
  WL_CHECK(memcmp(buf, want, REC) == 0, "%s: expected record %ld, got \"%.15s\"", c->name, c->got, buf);
  c->got++;
}

static void check_type(struct chan *c) {
  int t = -1;
  socklen_t l = sizeof t;
  WL_CHECK(getsockopt(c->rfd, SOL_SOCKET, SO_TYPE, &t, &l) == 0 && t == c->type, "%s: SO_TYPE %d, expected %d", c->name, t,
           c->type);
}

static void exchange(struct chan *ch, int n) {
  for (int i = 0; i < n; i++) {
    check_type(&ch[i]);
    send_rec(&ch[i]);
  }
  for (int i = 0; i < n; i++) recv_rec(&ch[i]);
}

static struct sockaddr_un ctl_addr;

static void on_usr1(int sig) {
  (void)sig;
  _exit(0);
}

static void child(struct chan *ch, int n) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "child: sigaction: %s", strerror(errno));
  for (int i = 0; i < n; i++)
    for (int k = 0; k < INFLIGHT; k++) send_rec(&ch[i]);
  for (long it = 0;; it++) {
    exchange(ch, n);
    /* Pacing, here: the root waits in accept meanwhile, so that a connection
     * is never left waiting to be accepted for long (a dump refuses one). */
    wl_sleep_ms(5);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    WL_CHECK(s >= 0, "child: socket: %s", strerror(errno));
    int rc;
    while ((rc = connect(s, (struct sockaddr *)&ctl_addr, sizeof ctl_addr)) < 0 && errno == EINTR) {
    }
    WL_CHECK(rc == 0, "child: connect to %s: %s", ctl_addr.sun_path, strerror(errno));
    char msg[64], want[64];
    int len = snprintf(msg, sizeof msg, "hello %ld", it);
    WL_CHECK(send(s, msg, (size_t)len, MSG_NOSIGNAL) == len, "child: send hello: %s", strerror(errno));
    snprintf(want, sizeof want, "ok %ld", it);
    ssize_t r;
    while ((r = recv(s, msg, sizeof msg - 1, 0)) < 0 && errno == EINTR) {
    }
    WL_CHECK(r == (ssize_t)strlen(want) && memcmp(msg, want, (size_t)r) == 0, "child: expected \"%s\", got %zd bytes", want, r);
    close(s);
  }
}

static void serve_one(int lfd, long it) {
  int c;
  while ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (c < 0) wl_blame_child();
  WL_CHECK(c >= 0, "accept: %s", strerror(errno));
  char msg[64], want[64];
  ssize_t r;
  while ((r = recv(c, msg, sizeof msg - 1, 0)) < 0 && errno == EINTR) {
  }
  snprintf(want, sizeof want, "hello %ld", it);
  if (r <= 0) wl_blame_child();
  WL_CHECK(r == (ssize_t)strlen(want) && memcmp(msg, want, (size_t)r) == 0, "expected \"%s\", got %zd bytes", want, r);
  int len = snprintf(msg, sizeof msg, "ok %ld", it);
  WL_CHECK(send(c, msg, (size_t)len, MSG_NOSIGNAL) == len, "send ok: %s", strerror(errno));
  close(c);
}

static void check_listener(int lfd) {
  int on = 0;
  socklen_t l = sizeof on;
  WL_CHECK(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) == 0 && on == 1, "the control socket is not listening");
  struct stat st;
  WL_CHECK(stat(ctl_addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode), "%s is not a socket any more", ctl_addr.sun_path);
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  WL_CHECK(wl_dir[0] == '/', "DIR must be absolute");
  ctl_addr.sun_family = AF_UNIX;
  WL_CHECK(snprintf(ctl_addr.sun_path, sizeof ctl_addr.sun_path, "%s/ctl.sock", wl_dir) < (int)sizeof ctl_addr.sun_path,
           "DIR too long for a socket path");
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  WL_CHECK(lfd >= 0, "socket: %s", strerror(errno));
  WL_CHECK(bind(lfd, (struct sockaddr *)&ctl_addr, sizeof ctl_addr) == 0, "bind %s: %s", ctl_addr.sun_path, strerror(errno));
  WL_CHECK(listen(lfd, 7) == 0, "listen: %s", strerror(errno));

  const char *names[3] = {"stream", "dgram", "seqpacket"};
  int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
  int sv[3][2];
  for (int i = 0; i < 3; i++) WL_CHECK(socketpair(AF_UNIX, types[i], 0, sv[i]) == 0, "socketpair %s: %s", names[i], strerror(errno));

  pid_t root = getpid();
  pid_t c = fork();
  WL_CHECK(c >= 0, "fork: %s", strerror(errno));
  struct chan ch[3];
  int side = c == 0 ? 1 : 0;
  for (int i = 0; i < 3; i++) {
    close(sv[i][1 - side]);
    ch[i] = (struct chan){names[i], types[i], sv[i][side], sv[i][side], 0, 0};
  }
  if (c == 0) {
    wl_child_init(root);
    child(ch, 3);
  }
  pid_t pids[2] = {root, c};
  wl_write_pids(pids, 2);
  ch[0].wfd = dup(ch[0].rfd);
  WL_CHECK(ch[0].wfd >= 0, "dup: %s", strerror(errno));
  WL_CHECK(fcntl(ch[1].rfd, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK: %s", strerror(errno));
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < INFLIGHT; k++) send_rec(&ch[i]);
  for (long it = 0;; it++) {
    WL_CHECK(fcntl(ch[1].rfd, F_GETFL) & O_NONBLOCK, "the dgram end lost O_NONBLOCK");
    WL_CHECK(!(fcntl(ch[0].rfd, F_GETFL) & O_NONBLOCK), "the stream end became O_NONBLOCK");
    exchange(ch, 3);
    serve_one(lfd, it);
    wl_children_alive();
    if (wl_tick()) {
      check_listener(lfd);
      WL_CHECK(kill(c, SIGUSR1) == 0, "kill child: %s", strerror(errno));
      wl_reap(c, 0, "child");
      wl_pass();
    }
  }
}
