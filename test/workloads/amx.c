/* AMX tile state and permission across the dump. Linux hands out AMX only on
 * request (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA); without that
 * permission any tile instruction raises SIGILL, so a restore must both grant
 * it again and bring back the XTILECFG and XTILEDATA parts of the XSAVE
 * state (8 KiB of tile data, the largest XSAVE component).
 *
 * argv[2] (mode):
 *   "amx" (default): the tiles are configured once (ldtilecfg, palette 1, a
 *   different shape per tile: tile t is 16-t rows of 64-4t bytes). Each
 *   iteration one inline-asm block loads all 8 tiles with patterns new to that
 *   iteration (tileloadd), sleeps 10 ms with a raw nanosleep `syscall` (the
 *   kernel keeps the tiles; no libc code runs in between), then stores the
 *   tiles (tilestored) and the configuration (sttilecfg) back; C compares.
 *   The freeze nearly always lands inside that syscall, with the tiles in use.
 *   The tiles stay configured and loaded between iterations too.
 *   "perm-only": the permission is requested but no tile is touched before
 *   the final check: the loop only sleeps 10 ms, so the dump sees a task
 *   allowed AMX with no AMX state in use. Only once DIR/stop exists does it
 *   configure, load, store and compare the tiles, proving that the
 *   permission survived the restore.
 * In both modes every iteration checks that ARCH_GET_XCOMP_PERM still
 * includes XTILEDATA; a SIGILL (an AMX instruction refused) is reported as a
 * failure rather than killing the task silently. */
#include "common.h"
#include <stdint.h>
#include <sys/syscall.h>

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

#define NTILE 8
#define ROWS(t) (16 - (t))
#define COLSB(t) (64 - 4 * (t))
#define STRIDE 64 /* bytes per row in the buffers below */

struct tilecfg {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((packed));

static struct tilecfg cfg __attribute__((aligned(64))), cfg_got __attribute__((aligned(64)));
static uint32_t pat[NTILE][16][STRIDE / 4], got[NTILE][16][STRIDE / 4];
#define UNTOUCHED 0xeeeeeeeeu /* in got where tilestored must not write */

static void on_sigill(int sig) {
  (void)sig;
  /* A synchronous fault in this program's own asm: no libc state is torn. */
  wl_fail("SIGILL: an AMX instruction was refused (tile permission or configuration lost)");
}

static void check_perm(void) {
  uint64_t mask = 0;
  long r = syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &mask);
  WL_CHECK(r == 0, "ARCH_GET_XCOMP_PERM: %s", strerror(errno));
  WL_CHECK(mask & (1ull << XFEATURE_XTILEDATA), "ARCH_GET_XCOMP_PERM is %#llx: XTILEDATA (bit 18) is no longer permitted",
           (unsigned long long)mask);
}

static void load_cfg(void) {
  memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < NTILE; t++) {
    cfg.rows[t] = ROWS(t);
    cfg.colsb[t] = COLSB(t);
  }
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

/* One round: load the 8 tiles with patterns for iteration n, sleep in a raw
 * syscall, store them and the configuration back, compare. */
static void tile_round(uint64_t base, uint64_t n) {
  for (int t = 0; t < NTILE; t++)
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < STRIDE / 4; c++)
        pat[t][r][c] = (uint32_t)((0x9e3779b97f4a7c15ull * (uint64_t)(t * 256 + r * 16 + c + 1)) >> 16) ^
                       (uint32_t)base ^ (uint32_t)(n << 20);
  memset(got, 0xee, sizeof got);
  memset(&cfg_got, 0xee, sizeof cfg_got);
  struct timespec sl = {0, 10 * 1000000};
  long ret;
  /* The tile number \r goes through the assembler's .irp, not C; tile t's
   * buffer starts at t * 16 * STRIDE = t * 1024. */
  __asm__ volatile(
      ".irp r,0,1,2,3,4,5,6,7\n\t tileloadd \\r*1024(%[p],%[s],1), %%tmm\\r\n\t.endr\n\t"
      "syscall\n\t"
      ".irp r,0,1,2,3,4,5,6,7\n\t tilestored %%tmm\\r, \\r*1024(%[g],%[s],1)\n\t.endr\n\t"
      "sttilecfg (%[cg])\n\t"
      : "=a"(ret)
      : "a"((long)SYS_nanosleep), "D"(&sl), "S"(0L), [p] "r"(pat), [g] "r"(got), [s] "r"((long)STRIDE),
        [cg] "r"(&cfg_got)
      /* The syscall itself clobbers rax (the result), rcx, r11; the compiler
       * knows nothing of the tile registers. */
      : "rcx", "r11", "memory");
  /* 0, or -EINTR if a restore chose not to restart the sleep; never a
   * leaked -ERESTART* (512..516) or anything else. */
  WL_CHECK(ret == 0 || ret == -EINTR, "raw nanosleep returned %ld", ret);
  const uint8_t *a = (const uint8_t *)&cfg_got, *b = (const uint8_t *)&cfg;
  for (size_t i = 0; i < sizeof cfg; i++)
    WL_CHECK(a[i] == b[i], "tile configuration byte %zu is %#x, expected %#x (iteration %llu)", i, a[i], b[i],
             (unsigned long long)n);
  for (int t = 0; t < NTILE; t++)
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < STRIDE / 4; c++) {
        uint32_t want = r < ROWS(t) && c < COLSB(t) / 4 ? pat[t][r][c] : UNTOUCHED;
        WL_CHECK(got[t][r][c] == want, "tmm%d row %d dword %d is %#x, expected %#x (iteration %llu)", t, r, c,
                 got[t][r][c], want, (unsigned long long)n);
      }
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  const char *mode = argc > 2 ? argv[2] : "amx";
  int perm_only = strcmp(mode, "perm-only") == 0;
  WL_CHECK(perm_only || strcmp(mode, "amx") == 0, "unknown mode %s", mode);
  __builtin_cpu_init();
  WL_CHECK(__builtin_cpu_supports("amx-tile"), "this CPU has no AMX-TILE");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigill;
  WL_CHECK(sigaction(SIGILL, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  WL_CHECK(syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0,
           "ARCH_REQ_XCOMP_PERM(XTILEDATA): %s", strerror(errno));
  check_perm();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t base = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x3c3c3c3c0badf00dull;

  if (!perm_only) load_cfg();
  for (uint64_t n = 0;; n++) {
    if (perm_only)
      wl_sleep_ms(10);
    else
      tile_round(base, n);
    check_perm();
    if (wl_tick()) {
      if (perm_only) load_cfg();
      tile_round(base, n + 1);
      check_perm();
      wl_pass();
    }
  }
}
