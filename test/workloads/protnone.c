/* Memory the task itself cannot read: pages written, then mprotect'ed to
 * PROT_NONE (as guard or "parked" memory), inside a bigger readable mapping
 * and as a whole mapping of their own. Each iteration checks that those
 * ranges still fault when read (a SIGSEGV probe) and that the readable pages
 * hold their pattern; the final check opens the PROT_NONE pages for reading
 * and checks that they kept their content across the dump. */
#include "common.h"
#include <stdint.h>
#include <setjmp.h>
#include <sys/mman.h>

#define PAGE 4096
#define BIG_PAGES 64
#define LONE_PAGES 8

static unsigned char *big, *lone;

static unsigned char pattern(const unsigned char *base, size_t off) {
  return (unsigned char)(((uintptr_t)base >> 12) * 31 + off * 7 + off / PAGE);
}

static void fill(unsigned char *base, size_t len) {
  for (size_t i = 0; i < len; i++) base[i] = pattern(base, i);
}

static void verify(const unsigned char *base, size_t from, size_t to, const char *what) {
  for (size_t i = from; i < to; i++)
    WL_CHECK(base[i] == pattern(base, i), "%s: byte %zu is %u, expected %u", what, i, base[i], pattern(base, i));
}

/* Whether reading the byte at addr faults (PROT_NONE), probed with a SIGSEGV
 * handler: no file is opened (a /proc/self/maps fd would be held at dump time). */
static sigjmp_buf probe_jmp;
static volatile sig_atomic_t probing;

static void on_segv(int sig) {
  (void)sig;
  if (!probing) _exit(2);
  siglongjmp(probe_jmp, 1);
}

static int readable(const volatile unsigned char *addr) {
  probing = 1;
  if (sigsetjmp(probe_jmp, 1)) {
    probing = 0;
    return 0;
  }
  (void)*addr;
  probing = 0;
  return 1;
}

static void expect_unreadable(const unsigned char *addr, size_t pages, const char *what) {
  for (size_t i = 0; i < pages; i++)
    WL_CHECK(!readable(addr + i * PAGE), "%s: page %zu became readable", what, i);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_segv;
  WL_CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  big = mmap(NULL, BIG_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  lone = mmap(NULL, LONE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(big != MAP_FAILED && lone != MAP_FAILED, "mmap: %s", strerror(errno));
  fill(big, BIG_PAGES * PAGE);
  fill(lone, LONE_PAGES * PAGE);
  /* Pages 8..15 and 40 of big, and all of lone, become unreadable with their content. */
  WL_CHECK(mprotect(big + 8 * PAGE, 8 * PAGE, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
  WL_CHECK(mprotect(big + 40 * PAGE, PAGE, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
  WL_CHECK(mprotect(lone, LONE_PAGES * PAGE, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
  for (;;) {
    expect_unreadable(big + 8 * PAGE, 8, "big[8..16)");
    expect_unreadable(big + 40 * PAGE, 1, "big[40]");
    expect_unreadable(lone, LONE_PAGES, "lone");
    verify(big, 0, 8 * PAGE, "big[0..8)");
    verify(big, 16 * PAGE, 40 * PAGE, "big[16..40)");
    verify(big, 41 * PAGE, BIG_PAGES * PAGE, "big[41..64)");
    if (wl_tick()) {
      WL_CHECK(mprotect(big, BIG_PAGES * PAGE, PROT_READ) == 0, "mprotect: %s", strerror(errno));
      WL_CHECK(mprotect(lone, LONE_PAGES * PAGE, PROT_READ) == 0, "mprotect: %s", strerror(errno));
      verify(big, 0, BIG_PAGES * PAGE, "big");
      verify(lone, 0, LONE_PAGES * PAGE, "lone");
      wl_pass();
    }
    wl_sleep_ms(10);
  }
}
