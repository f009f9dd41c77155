/* Listening TCP sockets, IPv4 and IPv6, each connected to by the workload
 * itself every iteration.
 *
 * Listeners: 127.0.0.1 (port 0: the kernel picks one) with SO_REUSEADDR,
 * SO_REUSEPORT, TCP_NODELAY and SO_KEEPALIVE, backlog 9, blocking; [::1]
 * (port 0) with IPV6_V6ONLY only, backlog 11, O_NONBLOCK. DIR/port holds
 * "PORT4 PORT6" (written before ready).
 *
 * Every iteration, through each listener in turn: connect a new client,
 * accept it, the client sends "ping <kind> N", the server answers
 * "pong <kind> N", the client closes first (its TIME_WAIT stays on its own
 * port) and the server closes after reading EOF. Between iterations (20 ms)
 * no connection exists: a dump then sees the two listeners only. Every
 * iteration also checks each listener: still listening (SO_ACCEPTCONN), on
 * the same address and port, with its options and its fd flags, and that an
 * accepted connection inherited TCP_NODELAY and SO_KEEPALIVE from the IPv4
 * listener (and not from the IPv6 one, which has neither). */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

struct listener {
  const char *kind;
  int family;
  int fd;
  int port;
  int nonblock;
  int backlog;
  /* expected option values */
  int reuseaddr, reuseport, v6only, nodelay, keepalive;
};

static int getopt_int(int fd, int level, int name, const char *what) {
  int v = -1;
  socklen_t len = sizeof v;
  WL_CHECK(getsockopt(fd, level, name, &v, &len) == 0, "getsockopt(%s): %s", what, strerror(errno));
  return v != 0;
}

static void setopt_on(int fd, int level, int name, const char *what) {
  int one = 1;
  WL_CHECK(setsockopt(fd, level, name, &one, sizeof one) == 0, "setsockopt(%s): %s", what, strerror(errno));
}

static socklen_t addr_of(const struct listener *l, struct sockaddr_storage *ss, int port) {
  memset(ss, 0, sizeof *ss);
  if (l->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *a;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  a->sin6_addr = in6addr_loopback;
  return sizeof *a;
}

static void open_listener(struct listener *l) {
  l->fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC | (l->nonblock ? SOCK_NONBLOCK : 0), 0);
  WL_CHECK(l->fd >= 0, "%s: socket: %s", l->kind, strerror(errno));
  if (l->reuseaddr) setopt_on(l->fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
  if (l->reuseport) setopt_on(l->fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
  if (l->v6only) setopt_on(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY");
  if (l->nodelay) setopt_on(l->fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
  if (l->keepalive) setopt_on(l->fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
  struct sockaddr_storage ss;
  socklen_t len = addr_of(l, &ss, 0);
  WL_CHECK(bind(l->fd, (struct sockaddr *)&ss, len) == 0, "%s: bind: %s", l->kind, strerror(errno));
  WL_CHECK(listen(l->fd, l->backlog) == 0, "%s: listen: %s", l->kind, strerror(errno));
  len = sizeof ss;
  WL_CHECK(getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0, "%s: getsockname: %s", l->kind, strerror(errno));
  l->port = ntohs(l->family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* The listener is as it was made: listening, same address and port, same options and fd flags. */
static void check_listener(const struct listener *l) {
  WL_CHECK(getopt_int(l->fd, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"), "%s: not listening", l->kind);
  struct sockaddr_storage ss, want;
  socklen_t len = sizeof ss;
  WL_CHECK(getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0, "%s: getsockname: %s", l->kind, strerror(errno));
  socklen_t wlen = addr_of(l, &want, l->port);
  int same = len == wlen && (l->family == AF_INET
    ? memcmp(&((struct sockaddr_in *)&ss)->sin_addr, &((struct sockaddr_in *)&want)->sin_addr, 4) == 0 &&
        ((struct sockaddr_in *)&ss)->sin_port == ((struct sockaddr_in *)&want)->sin_port
    : memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &((struct sockaddr_in6 *)&want)->sin6_addr, 16) == 0 &&
        ((struct sockaddr_in6 *)&ss)->sin6_port == ((struct sockaddr_in6 *)&want)->sin6_port);
  WL_CHECK(same, "%s: no longer bound to its loopback address and port %d", l->kind, l->port);
  WL_CHECK(getopt_int(l->fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") == l->reuseaddr, "%s: SO_REUSEADDR changed", l->kind);
  WL_CHECK(getopt_int(l->fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT") == l->reuseport, "%s: SO_REUSEPORT changed", l->kind);
  WL_CHECK(getopt_int(l->fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY") == l->nodelay, "%s: TCP_NODELAY changed", l->kind);
  WL_CHECK(getopt_int(l->fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") == l->keepalive, "%s: SO_KEEPALIVE changed", l->kind);
  if (l->family == AF_INET6)
    WL_CHECK(getopt_int(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY") == l->v6only, "%s: IPV6_V6ONLY changed", l->kind);
  int fl = fcntl(l->fd, F_GETFL);
  WL_CHECK(fl >= 0 && ((fl & O_NONBLOCK) != 0) == l->nonblock, "%s: O_NONBLOCK is %s", l->kind, fl & O_NONBLOCK ? "set" : "clear");
  int fdfl = fcntl(l->fd, F_GETFD);
  WL_CHECK(fdfl >= 0 && (fdfl & FD_CLOEXEC), "%s: FD_CLOEXEC lost", l->kind);
}

static void io_all(int fd, char *buf, size_t n, int out, const char *what) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = out ? send(fd, buf + done, n - done, MSG_NOSIGNAL) : recv(fd, buf + done, n - done, 0);
    if (r < 0 && errno == EINTR) continue;
    WL_CHECK(r > 0, "%s: %s", what, r < 0 ? strerror(errno) : "EOF");
    done += r;
  }
}

/* One connection through listener `l`: connect, accept, ping, pong, close. */
static void exchange(const struct listener *l, long n) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(l, &ss, l->port);
  int c = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  WL_CHECK(c >= 0, "%s: client socket: %s", l->kind, strerror(errno));
  WL_CHECK(connect(c, (struct sockaddr *)&ss, len) == 0, "%s: connect to port %d: %s", l->kind, l->port, strerror(errno));
  int s;
  for (int tries = 0;; tries++) {
    s = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (s >= 0) break;
    WL_CHECK((errno == EAGAIN || errno == EINTR) && l->nonblock && tries < 1000, "%s: accept: %s", l->kind, strerror(errno));
    struct pollfd p = {l->fd, POLLIN, 0};
    poll(&p, 1, 10);
  }
  WL_CHECK(getopt_int(s, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY") == l->nodelay, "%s: accepted socket's TCP_NODELAY differs", l->kind);
  WL_CHECK(getopt_int(s, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") == l->keepalive, "%s: accepted socket's SO_KEEPALIVE differs", l->kind);
  char msg[32], got[32];
  snprintf(msg, sizeof msg, "ping %s %012ld", l->kind, n);
  size_t mlen = strlen(msg);
  io_all(c, msg, mlen, 1, "client send");
  memset(got, 0, sizeof got);
  io_all(s, got, mlen, 0, "server recv");
  WL_CHECK(memcmp(got, msg, mlen) == 0, "%s: server got %.*s", l->kind, (int)mlen, got);
  got[1] = 'o';
  io_all(s, got, mlen, 1, "server send");
  memset(msg, 0, sizeof msg);
  io_all(c, msg, mlen, 0, "client recv");
  WL_CHECK(msg[1] == 'o' && memcmp(msg + 2, got + 2, mlen - 2) == 0, "%s: client got %.*s", l->kind, (int)mlen, msg);
  /* The client closes first: its TIME_WAIT is on its own port, not on the
   * listener's (which, without SO_REUSEADDR, could not be bound again while
   * it lasted). */
  close(c);
  char eof;
  ssize_t r;
  while ((r = recv(s, &eof, 1, 0)) < 0 && errno == EINTR) {
  }
  WL_CHECK(r == 0, "%s: no EOF after the client closed", l->kind);
  close(s);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct listener ls[2] = {
    {.kind = "v4", .family = AF_INET, .backlog = 9, .reuseaddr = 1, .reuseport = 1, .nodelay = 1, .keepalive = 1},
    {.kind = "v6", .family = AF_INET6, .backlog = 11, .nonblock = 1, .v6only = 1},
  };
  for (int i = 0; i < 2; i++) open_listener(&ls[i]);
  char buf[64];
  snprintf(buf, sizeof buf, "%d %d", ls[0].port, ls[1].port);
  wl_write("port", buf);
  for (long n = 0;; n++) {
    for (int i = 0; i < 2; i++) {
      check_listener(&ls[i]);
      exchange(&ls[i], n);
    }
    if (wl_tick()) {
      for (int i = 0; i < 2; i++) check_listener(&ls[i]);
      wl_pass();
    }
    wl_sleep_ms(20);
  }
}
