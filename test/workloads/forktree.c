/* Benchmark tree: `forktree DIR N MIB`: the root forks N-1 children; every
 * process fills MIB MiB of private memory with its own pattern and sleeps.
 * DIR/pids lists the tree (root first), DIR/ready is written once every
 * process has filled its memory. Killing the root takes the children along
 * (PR_SET_PDEATHSIG). No self-check: it only gives dump/restore a tree of a
 * known size to move. */
#include "common.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>

static void fill(size_t bytes) {
  unsigned char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(2);
  for (size_t i = 0; i < bytes; i += 4096) memset(m + i, (int)((i / 4096 + (size_t)getpid()) & 0xff), 4096);
}

static __attribute__((noreturn)) void sleep_forever(void) {
  for (;;) wl_sleep_ms(1000);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  int n = argc > 2 ? atoi(argv[2]) : 64;
  size_t bytes = (size_t)(argc > 3 ? atoi(argv[3]) : 16) << 20;
  int p[2];
  if (n < 1 || pipe(p) != 0) return 2;
  char pids[65536];
  int len = snprintf(pids, sizeof pids, "%d", (int)getpid());
  pid_t root = getpid();
  for (int i = 1; i < n; i++) {
    pid_t c = fork();
    if (c < 0) return 2;
    if (c == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != root) _exit(0);
      close(p[0]);
      fill(bytes);
      char c = 1;
      if (write(p[1], &c, 1) != 1) _exit(2);
      close(p[1]);
      sleep_forever();
    }
    if ((size_t)len < sizeof pids - 16) len += snprintf(pids + len, sizeof pids - len, " %d", (int)c);
  }
  close(p[1]);
  for (int i = 1; i < n; i++) {
    char c;
    if (read(p[0], &c, 1) != 1) return 2;
  }
  close(p[0]);
  fill(bytes);
  wl_write("pids", pids);
  char buf[32];
  snprintf(buf, sizeof buf, "%d", (int)getpid());
  wl_write("ready", buf);
  sleep_forever();
}
