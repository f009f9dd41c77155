/* A deleted ("ghost") file held four ways. DIR/g/ghost.bin (mode 0640,
 * SIZE bytes: 16 pages of a word pattern, page 5 all zeros, a 100-byte tail)
 * is opened read-write (fd at FD_POS) and again read-only through
 * /proc/self/fd (a second description, at RO_POS), mapped MAP_PRIVATE (pages
 * 0-7, page 2 then rewritten: a private copy) and MAP_SHARED (pages 8-15),
 * and unlinked. Every iteration checks: both fds are the same deleted file
 * (nlink 0, size, mode, inode) at their positions, /proc/self/fd and
 * map_files say "DIR/g/ghost.bin (deleted)", the file's content through pread
 * and through a read at the fd's position, the private mapping (its own page
 * 2, the file's other pages) and the shared one; then it bumps a counter
 * through the shared mapping, which the file must show the next time. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096
#define PAGES 16
#define TAIL 100
#define SIZE (PAGES * PG + TAIL)
#define ZERO_PAGE 5
#define PRIV_PAGE 2     /* page of the private mapping rewritten in memory */
#define SHARED_PAGE 10  /* file page whose first word is the counter */
#define FD_POS 12345
#define RO_POS 777

static char path[4096];
static unsigned char file[SIZE];    /* what the file must hold (counter word aside) */
static uint64_t counter;

static uint64_t word(size_t i) { return (i * 0x9e3779b97f4a7c15ull) ^ 0x67686f7374ull; }
static uint64_t priv_word(size_t i) { return ~word(i); }

static void check_link(const char *link, const char *what) {
  char got[4096 + 32], want[4096 + 32];
  ssize_t n = readlink(link, got, sizeof got - 1);
  WL_CHECK(n >= 0, "readlink %s: %s", link, strerror(errno));
  got[n] = 0;
  snprintf(want, sizeof want, "%s (deleted)", path);
  WL_CHECK(strcmp(got, want) == 0, "%s reads '%s', expected '%s'", what, got, want);
}

static void check_fd(int fd, off_t pos, ino_t ino, const char *what) {
  struct stat st;
  WL_CHECK(fstat(fd, &st) == 0, "fstat %s: %s", what, strerror(errno));
  WL_CHECK(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640, "%s: mode %o", what, (unsigned)st.st_mode);
  WL_CHECK(st.st_nlink == 0, "%s: nlink %lu, expected 0 (deleted)", what, (unsigned long)st.st_nlink);
  WL_CHECK(st.st_size == SIZE, "%s: size %lld, expected %d", what, (long long)st.st_size, SIZE);
  WL_CHECK(ino == 0 || st.st_ino == ino, "%s: inode %lu, the other fd's is %lu", what, (unsigned long)st.st_ino,
           (unsigned long)ino);
  off_t at = lseek(fd, 0, SEEK_CUR);
  WL_CHECK(at == pos, "%s: offset %lld, expected %lld", what, (long long)at, (long long)pos);
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  check_link(link, what);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  char dir[2048];
  snprintf(dir, sizeof dir, "%s/g", wl_dir);
  WL_CHECK(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
  snprintf(path, sizeof path, "%s/ghost.bin", dir);

  for (size_t i = 0; i < PAGES * PG / 8; i++) memcpy(file + 8 * i, &(uint64_t){word(i)}, 8);
  memset(file + ZERO_PAGE * PG, 0, PG);
  for (size_t i = 0; i < TAIL; i++) file[PAGES * PG + i] = (unsigned char)(i * 7 + 3);
  memcpy(file + SHARED_PAGE * PG, &counter, 8);

  int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  WL_CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
  WL_CHECK(fchmod(fd, 0640) == 0, "fchmod: %s", strerror(errno));
  WL_CHECK(pwrite(fd, file, SIZE, 0) == SIZE, "write: %s", strerror(errno));
  WL_CHECK(lseek(fd, FD_POS, SEEK_SET) == FD_POS, "lseek: %s", strerror(errno));
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  int ro = open(self, O_RDONLY);
  WL_CHECK(ro >= 0, "reopen: %s", strerror(errno));
  WL_CHECK(lseek(ro, RO_POS, SEEK_SET) == RO_POS, "lseek: %s", strerror(errno));

  uint64_t *priv = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  WL_CHECK(priv != MAP_FAILED, "mmap private: %s", strerror(errno));
  uint64_t *shared = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 8 * PG);
  WL_CHECK(shared != MAP_FAILED, "mmap shared: %s", strerror(errno));
  for (size_t i = 0; i < PG / 8; i++) priv[PRIV_PAGE * PG / 8 + i] = priv_word(PRIV_PAGE * PG / 8 + i);
  WL_CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));

  static unsigned char buf[SIZE];
  for (;;) {
    struct stat st;
    WL_CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
    check_fd(fd, FD_POS, 0, "fd");
    check_fd(ro, RO_POS, st.st_ino, "second fd");
    char link[128];
    snprintf(link, sizeof link, "/proc/self/map_files/%lx-%lx", (unsigned long)priv, (unsigned long)priv + 8 * PG);
    check_link(link, "private mapping");
    snprintf(link, sizeof link, "/proc/self/map_files/%lx-%lx", (unsigned long)shared, (unsigned long)shared + 8 * PG);
    check_link(link, "shared mapping");

    memcpy(file + SHARED_PAGE * PG, &counter, 8);
    WL_CHECK(pread(fd, buf, SIZE, 0) == SIZE, "pread: %s", strerror(errno));
    for (size_t i = 0; i < SIZE; i++)
      WL_CHECK(buf[i] == file[i], "file byte %zu (page %zu) is %#x, expected %#x", i, i / PG, buf[i], file[i]);
    WL_CHECK(read(ro, buf, 64) == 64 && memcmp(buf, file + RO_POS, 64) == 0, "read at the second fd's offset");
    WL_CHECK(lseek(ro, RO_POS, SEEK_SET) == RO_POS, "lseek back: %s", strerror(errno));
    for (size_t i = 0; i < 8 * PG / 8; i++) {
      uint64_t want = i / (PG / 8) == PRIV_PAGE ? priv_word(i) : ((const uint64_t *)file)[i];
      WL_CHECK(priv[i] == want, "private mapping word %zu (page %zu) is %#llx, expected %#llx", i, i / (PG / 8),
               (unsigned long long)priv[i], (unsigned long long)want);
    }
    WL_CHECK(memcmp(shared, file + 8 * PG, 8 * PG) == 0, "the shared mapping differs from the file");

    counter++;
    shared[(SHARED_PAGE - 8) * PG / 8] = counter;
    if (wl_tick()) wl_pass();
    wl_sleep_ms(10);
  }
}
