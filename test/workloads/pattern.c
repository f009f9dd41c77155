/* argv[2] MiB (default 256) of private anonymous memory, every 8-byte word =
 * f(its index) ^ seed, with the seed picked at start and kept both in a local
 * on the stack and in a global. Each iteration verifies the next 1/128 of the
 * area (the whole of it every ~1.5 s), a small malloc'd (brk heap) buffer and
 * a global array; on stop, all of it. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#define HEAP_WORDS 2048    /* 16 KiB: below the mmap threshold, so on the brk heap */
#define GLOBAL_WORDS 4096  /* 32 KiB in .bss */
#define SLICES 128

static uint64_t global_pattern[GLOBAL_WORDS];
static uint64_t seed_global;

static inline uint64_t word(uint64_t i, uint64_t seed) { return (i * 0x9e3779b97f4a7c15ull) ^ seed; }

static void verify(const uint64_t *p, size_t from, size_t to, uint64_t seed, const char *what) {
  for (size_t i = from; i < to; i++)
    if (__builtin_expect(p[i] != word(i, seed), 0))
      wl_fail("%s: word %zu (at %p) is %#llx, expected %#llx", what, i, (void *)&p[i], (unsigned long long)p[i],
              (unsigned long long)word(i, seed));
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  char *end;
  unsigned long mib = argc > 2 ? strtoul(argv[2], &end, 10) : 256;
  WL_CHECK(argc <= 2 || (*end == 0 && mib > 0), "bad size '%s' (MiB)", argv[2]);
  size_t words = (size_t)mib * (1u << 20) / 8;

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  volatile uint64_t seed_stack = ((uint64_t)ts.tv_nsec * 0x2545f4914f6cdd1dull) ^ ((uint64_t)getpid() << 32) ^ 0x5a5a;
  seed_global = seed_stack;
  const uint64_t seed = seed_stack;

  uint64_t *area = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(area != MAP_FAILED, "mmap of %lu MiB failed: %s", mib, strerror(errno));
  for (size_t i = 0; i < words; i++) area[i] = word(i, seed);
  uint64_t *heap = malloc(HEAP_WORDS * sizeof *heap);
  WL_CHECK(heap != NULL, "malloc");
  for (size_t i = 0; i < HEAP_WORDS; i++) heap[i] = word(i, seed ^ 1);
  for (size_t i = 0; i < GLOBAL_WORDS; i++) global_pattern[i] = word(i, seed ^ 2);
  verify(area, 0, words, seed, "area");

  size_t slice = words / SLICES + 1, at = 0;
  for (;;) {
    uint64_t s = seed_stack;
    WL_CHECK(s == seed_global, "seed on the stack %#llx != seed in .bss %#llx", (unsigned long long)s,
             (unsigned long long)seed_global);
    size_t to = at + slice < words ? at + slice : words;
    verify(area, at, to, s, "area");
    at = to == words ? 0 : to;
    verify(heap, 0, HEAP_WORDS, s ^ 1, "heap");
    verify(global_pattern, 0, GLOBAL_WORDS, s ^ 2, "global");
    if (wl_tick()) {
      verify(area, 0, words, s, "area");
      verify(heap, 0, HEAP_WORDS, s ^ 1, "heap");
      verify(global_pattern, 0, GLOBAL_WORDS, s ^ 2, "global");
      wl_pass();
    }
    wl_sleep_ms(10);
  }
}
