/* One open file description shared by two processes. The root opens
 * DIR/shared.dat O_RDWR (no O_APPEND) and forks a child that inherits the fd,
 * so both move the same file offset. They take turns through two pipes: the
 * process holding turn k (the root has the even ones, the child the odd ones)
 * checks that the shared offset (lseek SEEK_CUR) and the file size are k*16
 * and that record k-1, written by the other process, is right (pread: offset
 * unchanged), then write()s record k, "R" or "C" then k in 14 digits and '\n',
 * and passes k+1 on. The root ticks after each of its turns (so after every
 * two records), sleeping 5 ms. On stop the root sends k|STOP instead: the
 * child does a final check and exits 0 without writing; the root reaps it and
 * checks the whole file through the shared fd (pread), the offset and size. */
#include "common.h"
#include <stdint.h>
#include <sys/stat.h>

#define REC 16
#define STOP (1ull << 63)

static int fd;
static const char *me = "root";

static void fmt_rec(char *out, uint64_t k) {
  char tmp[REC + 1];
  snprintf(tmp, sizeof tmp, "%c%014llu\n", k % 2 ? 'C' : 'R', (unsigned long long)k);
  memcpy(out, tmp, REC);
}

static void check_rec(uint64_t k) {
  char want[REC], got[REC];
  fmt_rec(want, k);
  ssize_t n = pread(fd, got, REC, (off_t)(k * REC));
  WL_CHECK(n == REC, "%s: pread of record %llu: %s", me, (unsigned long long)k, n < 0 ? strerror(errno) : "short");
  WL_CHECK(memcmp(got, want, REC) == 0, "%s: record %llu is \"%.15s\", expected \"%.15s\"", me,
           (unsigned long long)k, got, want);
}

/* Checks before turn k: offset, size, flags and the other's last record. */
static void check_turn(uint64_t k) {
  off_t pos = lseek(fd, 0, SEEK_CUR);
  WL_CHECK(pos == (off_t)(k * REC), "%s: shared offset is %lld before record %llu, expected %llu", me,
           (long long)pos, (unsigned long long)k, (unsigned long long)(k * REC));
  struct stat st;
  WL_CHECK(fstat(fd, &st) == 0, "%s: fstat: %s", me, strerror(errno));
  WL_CHECK(st.st_size == (off_t)(k * REC), "%s: file size is %lld before record %llu, expected %llu", me,
           (long long)st.st_size, (unsigned long long)k, (unsigned long long)(k * REC));
  int fl = fcntl(fd, F_GETFL);
  WL_CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDWR && !(fl & O_APPEND), "%s: fd flags are %#x", me, fl);
  if (k > 0) check_rec(k - 1);
  WL_CHECK(lseek(fd, 0, SEEK_CUR) == pos, "%s: pread moved the offset", me);
}

static void put(int wfd, uint64_t msg) {
  ssize_t n;
  while ((n = write(wfd, &msg, sizeof msg)) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof msg && me[0] == 'r') wl_blame_child();
  WL_CHECK(n == (ssize_t)sizeof msg, "%s: writing the turn pipe: %s", me, n < 0 ? strerror(errno) : "short");
}

static uint64_t get(int rfd) {
  uint64_t msg;
  ssize_t n;
  while ((n = read(rfd, &msg, sizeof msg)) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof msg && me[0] == 'r') wl_blame_child();
  WL_CHECK(n == (ssize_t)sizeof msg, "%s: reading the turn pipe: %s", me,
           n < 0 ? strerror(errno) : n == 0 ? "EOF (the other process is gone)" : "short");
  return msg;
}

static void write_rec(uint64_t k) {
  char rec[REC];
  fmt_rec(rec, k);
  ssize_t n = write(fd, rec, REC);
  WL_CHECK(n == REC, "%s: writing record %llu: %s", me, (unsigned long long)k, n < 0 ? strerror(errno) : "short");
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  char path[4096];
  snprintf(path, sizeof path, "%s/shared.dat", wl_dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  int to_child[2], to_root[2];
  WL_CHECK(pipe(to_child) == 0 && pipe(to_root) == 0, "pipe: %s", strerror(errno));
  pid_t root = getpid();
  pid_t c = fork();
  WL_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    wl_child_init(root);
    me = "child";
    close(to_child[1]);
    close(to_root[0]);
    uint64_t want = 1;
    for (;;) {
      uint64_t msg = get(to_child[0]);
      uint64_t k = msg & ~STOP;
      /* A STOP comes at what would be the root's next turn. */
      uint64_t expect = (msg & STOP) ? want - 1 : want;
      WL_CHECK(k == expect, "child: got turn %llu%s, expected %llu", (unsigned long long)k,
               (msg & STOP) ? " (STOP)" : "", (unsigned long long)expect);
      WL_CHECK(getppid() == root, "child: parent is %d, expected %d", (int)getppid(), (int)root);
      check_turn(k);
      if (msg & STOP) _exit(0);
      write_rec(k);
      put(to_root[1], k + 1);
      want += 2;
    }
  }
  close(to_child[0]);
  close(to_root[1]);
  pid_t pids[2] = {root, c};
  wl_write_pids(pids, 2);

  uint64_t k = 0;
  for (;;) {
    check_turn(k);
    write_rec(k);
    put(to_child[1], k + 1);
    uint64_t got = get(to_root[0]);
    WL_CHECK(got == k + 2, "root: got turn %llu, expected %llu", (unsigned long long)got, (unsigned long long)(k + 2));
    k += 2;
    check_turn(k);
    if (wl_tick()) break;
    wl_sleep_ms(5);
  }
  /* k is the root's turn: hand the child a STOP instead of writing. */
  put(to_child[1], k | STOP);
  wl_reap(c, 0, "child");
  check_turn(k);
  for (uint64_t i = 0; i < k; i++) check_rec(i);
  char extra;
  WL_CHECK(pread(fd, &extra, 1, (off_t)(k * REC)) == 0, "the file has more than %llu records", (unsigned long long)k);
  wl_pass();
}
