/* A ring of N processes (the root and N-1 children, N from argv[2], default 4)
 * joined by N pipes: process k reads pipe k-1 and writes pipe k (the root is
 * process 0 and reads pipe N-1). A token {value, flags, sum} goes round; every
 * process checks its sum and that value is exactly the one it passed on last
 * time plus N (so the values it sees are k-1, k-1+N, ... and the root's are
 * N-1, 2N-1, ...), then passes value+1 on. The children also check getppid().
 * After each full round the root ticks; on stop it sends a STOP token round:
 * each child does its check, forwards it and exits 0; the root checks it on
 * return, reaps every child (status 0) and passes. Only the root ticks. */
#include "common.h"
#include <stdint.h>

#define MAXN 64
#define STOP 1u

struct token {
  uint64_t value;
  uint64_t flags;
  uint64_t sum;
};

static uint64_t token_sum(uint64_t value, uint64_t flags) {
  uint64_t x = (value ^ (flags << 56)) * 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29) ^ 0x5bd1e9955bd1e995ull;
}

static int me;  /* index in the ring, 0 = root */

static void get(int fd, struct token *t, uint64_t want) {
  size_t got = 0;
  while (got < sizeof *t) {
    ssize_t n = read(fd, (char *)t + got, sizeof *t - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 && me == 0) wl_blame_child();
    WL_CHECK(n > 0, "ring process %d: reading the token (expecting %llu): %s", me, (unsigned long long)want,
             n == 0 ? "EOF, the ring is broken" : strerror(errno));
    got += n;
  }
  WL_CHECK(t->sum == token_sum(t->value, t->flags), "ring process %d: bad token sum (value %llu, flags %llu)", me,
           (unsigned long long)t->value, (unsigned long long)t->flags);
  WL_CHECK(t->flags == 0 || t->flags == STOP, "ring process %d: bad token flags %llu", me,
           (unsigned long long)t->flags);
  WL_CHECK(t->value == want, "ring process %d: token value %llu, expected %llu", me, (unsigned long long)t->value,
           (unsigned long long)want);
}

static void put(int fd, uint64_t value, uint64_t flags) {
  struct token t = {value, flags, token_sum(value, flags)};
  ssize_t n;
  while ((n = write(fd, &t, sizeof t)) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof t && me == 0) wl_blame_child();
  WL_CHECK(n == (ssize_t)sizeof t, "ring process %d: writing token %llu: %s", me, (unsigned long long)value,
           n < 0 ? strerror(errno) : "short write");
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  int n = argc > 2 ? atoi(argv[2]) : 4;
  WL_CHECK(n >= 2 && n <= MAXN, "ring size %d not in 2..%d", n, MAXN);
  int fds[MAXN][2];
  for (int i = 0; i < n; i++) WL_CHECK(pipe(fds[i]) == 0, "pipe: %s", strerror(errno));
  pid_t root = getpid();
  pid_t pids[MAXN];
  pids[0] = root;
  for (int k = 1; k < n; k++) {
    pid_t p = fork();
    WL_CHECK(p >= 0, "fork: %s", strerror(errno));
    if (p == 0) {
      wl_child_init(root);
      me = k;
      break;
    }
    pids[k] = p;
  }
  /* Keep only the two ends this process uses. */
  int in = fds[(me + n - 1) % n][0], out = fds[me][1];
  for (int i = 0; i < n; i++)
    for (int e = 0; e < 2; e++)
      if (fds[i][e] != in && fds[i][e] != out) close(fds[i][e]);

  if (me != 0) {
    uint64_t want = me - 1;
    for (;;) {
      struct token t;
      get(in, &t, want);
      WL_CHECK(getppid() == root, "ring process %d: parent is %d, expected %d", me, (int)getppid(), (int)root);
      put(out, t.value + 1, t.flags);
      if (t.flags == STOP) _exit(0);
      want += n;
    }
  }

  wl_write_pids(pids, n);
  uint64_t value = 0; /* the root sends value, and gets value+n-1 back */
  for (;;) {
    struct token t;
    put(out, value, 0);
    get(in, &t, value + n - 1);
    value += n;
    if (wl_tick()) break;
    wl_sleep_ms(5);
  }
  struct token t;
  put(out, value, STOP);
  get(in, &t, value + n - 1);
  WL_CHECK(t.flags == STOP, "the STOP token came back without its flag");
  for (int k = 1; k < n; k++) wl_reap(pids[k], 0, "ring child");
  WL_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "the root has an unexpected child");
  wl_pass();
}
