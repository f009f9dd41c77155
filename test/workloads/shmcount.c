/* Shared and copy-on-write anonymous memory across fork (N children, argv[2],
 * default 3). Before forking, the root maps
 *   - SHM_PAGES of MAP_SHARED|MAP_ANONYMOUS: a header (stop flag, one counter
 *     per child) and pattern pages filled by the root, never written again;
 *   - PRIV_PAGES of MAP_PRIVATE|MAP_ANONYMOUS filled with the root's pattern.
 * Child i rewrites page 0 of its private copy with its own pattern (breaking
 * the COW of that page only; the other private pages stay shared with the
 * root until someone writes them, and nobody does). Then it loops: check its
 * private pages, the shared pattern and that counter[i] still holds what it
 * last stored, store counter[i]+1, report {i, value} on a pipe to the root,
 * sleep 2 ms, and leave (final check, exit 0) once the shared stop flag is set.
 * The root reads the reports: each value must be the child's previous one + 1
 * and already visible in the shared counter (the child stored it before
 * writing the pipe), and no counter ever goes backwards. After a report from
 * every child it checks its own private copy (still its pattern everywhere)
 * and the shared pattern, then ticks. On stop: set the flag, drain the pipe
 * to EOF, reap the children (status 0), check every counter equals the last
 * value reported, pass. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#define MAXN 32
#define PAGE 4096
#define SHM_PAGES 4
#define PRIV_PAGES 3

struct shm {
  uint64_t stop;
  uint64_t counter[MAXN];
};

struct report {
  uint32_t idx;
  uint32_t magic;
  uint64_t value;
};
#define MAGIC 0x5348u

static struct shm *shm;
static unsigned char *shared_pat; /* pages 1.. of the shared mapping */
static unsigned char *priv;
static int me = -1; /* child index, -1 in the root */

static unsigned char pat(unsigned seed, size_t off) {
  uint32_t x = (uint32_t)off * 2654435761u + seed * 40503u + (uint32_t)(off >> 12) * 97u;
  return (unsigned char)(x >> 13);
}

static void check_range(const unsigned char *p, size_t len, unsigned seed, size_t base, const char *what) {
  for (size_t off = 0; off < len; off++)
    if (p[off] != pat(seed, base + off))
      wl_fail("%s %d: %s: byte %zu is %#x, expected %#x", me < 0 ? "root" : "child", me < 0 ? (int)getpid() : me,
              what, off, p[off], pat(seed, base + off));
}

#define SHARED_SEED 7u
#define ROOT_SEED 1u
#define CHILD_SEED(i) (100u + (unsigned)(i))

static void check_memory(void) {
  check_range(shared_pat, (SHM_PAGES - 1) * PAGE, SHARED_SEED, 0, "shared pattern");
  /* page 0: the root's pattern in the root, the child's own in child i */
  check_range(priv, PAGE, me < 0 ? ROOT_SEED : CHILD_SEED(me), 0, "private page 0");
  /* pages 1..: untouched by everyone, so the root's pattern everywhere */
  check_range(priv + PAGE, (PRIV_PAGES - 1) * PAGE, ROOT_SEED, PAGE, "private pages 1..");
}

static void child(int idx, int wfd) {
  me = idx;
  for (size_t off = 0; off < PAGE; off++) priv[off] = pat(CHILD_SEED(idx), off);
  uint64_t mine = 0;
  for (;;) {
    check_memory();
    uint64_t c = __atomic_load_n(&shm->counter[idx], __ATOMIC_ACQUIRE);
    WL_CHECK(c == mine, "child %d: shared counter is %llu, I last stored %llu", idx, (unsigned long long)c,
             (unsigned long long)mine);
    if (__atomic_load_n(&shm->stop, __ATOMIC_ACQUIRE)) {
      check_memory();
      close(wfd);
      _exit(0);
    }
    mine++;
    __atomic_store_n(&shm->counter[idx], mine, __ATOMIC_RELEASE);
    struct report r = {(uint32_t)idx, MAGIC, mine};
    ssize_t n;
    while ((n = write(wfd, &r, sizeof r)) < 0 && errno == EINTR) {
    }
    WL_CHECK(n == (ssize_t)sizeof r, "child %d: report %llu: %s", idx, (unsigned long long)mine,
             n < 0 ? strerror(errno) : "short write");
    wl_sleep_ms(2);
  }
}

static uint64_t last_report[MAXN], last_seen[MAXN];

/* Returns 0 at EOF. */
static int take_report(int rfd, int n, int *idx) {
  struct report r;
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t k = read(rfd, (char *)&r + got, sizeof r - got);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0 && got == 0) return 0;
    if (k <= 0) wl_blame_child();
    WL_CHECK(k > 0, "reading reports: %s", k == 0 ? "EOF inside a report" : strerror(errno));
    got += k;
  }
  WL_CHECK(r.magic == MAGIC && r.idx < (uint32_t)n, "bad report (idx %u, magic %#x)", r.idx, r.magic);
  WL_CHECK(r.value == last_report[r.idx] + 1, "child %u reported %llu after %llu", r.idx,
           (unsigned long long)r.value, (unsigned long long)last_report[r.idx]);
  last_report[r.idx] = r.value;
  for (int i = 0; i < n; i++) {
    uint64_t c = __atomic_load_n(&shm->counter[i], __ATOMIC_ACQUIRE);
    WL_CHECK(c >= last_seen[i], "shared counter of child %d went back from %llu to %llu", i,
             (unsigned long long)last_seen[i], (unsigned long long)c);
    WL_CHECK(c >= last_report[i], "shared counter of child %d is %llu, but it reported %llu", i,
             (unsigned long long)c, (unsigned long long)last_report[i]);
    last_seen[i] = c;
  }
  *idx = (int)r.idx;
  return 1;
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  int n = argc > 2 ? atoi(argv[2]) : 3;
  WL_CHECK(n >= 1 && n <= MAXN, "child count %d not in 1..%d", n, MAXN);
  void *s = mmap(NULL, SHM_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(s != MAP_FAILED, "mmap shared: %s", strerror(errno));
  shm = s;
  shared_pat = (unsigned char *)s + PAGE;
  for (size_t off = 0; off < (SHM_PAGES - 1) * PAGE; off++) shared_pat[off] = pat(SHARED_SEED, off);
  void *p = mmap(NULL, PRIV_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(p != MAP_FAILED, "mmap private: %s", strerror(errno));
  priv = p;
  for (size_t off = 0; off < PRIV_PAGES * PAGE; off++) priv[off] = pat(ROOT_SEED, off);
  check_memory();

  int fds[2];
  WL_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
  pid_t root = getpid();
  pid_t pids[MAXN + 1];
  pids[0] = root;
  for (int i = 0; i < n; i++) {
    pid_t c = fork();
    WL_CHECK(c >= 0, "fork: %s", strerror(errno));
    if (c == 0) {
      wl_child_init(root);
      close(fds[0]);
      child(i, fds[1]);
    }
    pids[i + 1] = c;
  }
  close(fds[1]);
  wl_write_pids(pids, n + 1);

  for (;;) {
    int heard[MAXN] = {0}, left = n, idx;
    while (left > 0) {
      WL_CHECK(take_report(fds[0], n, &idx), "the report pipe was closed before stop");
      if (!heard[idx]) heard[idx] = 1, left--;
      wl_children_alive();
    }
    check_memory();
    if (wl_tick()) break;
  }
  __atomic_store_n(&shm->stop, 1, __ATOMIC_RELEASE);
  int idx;
  while (take_report(fds[0], n, &idx)) {
  }
  for (int i = 0; i < n; i++) wl_reap(pids[i + 1], 0, "child");
  for (int i = 0; i < n; i++) {
    uint64_t c = __atomic_load_n(&shm->counter[i], __ATOMIC_ACQUIRE);
    WL_CHECK(c == last_report[i], "child %d's final counter is %llu, its last report %llu", i,
             (unsigned long long)c, (unsigned long long)last_report[i]);
  }
  check_memory();
  wl_pass();
}
