/* Vector register state across the dump. Each iteration, one inline-asm block
 * loads all 16 ymm registers with distinct 256-bit patterns (ymm8..ymm11 are
 * the brief's; the rest come along for free), sleeps 10 ms with a raw
 * nanosleep `syscall` (clobbers only rax, rcx, r11 and memory: the kernel
 * keeps vector registers, and no libc code runs in between, whose AVX string
 * functions end with vzeroupper), then stores them all back; C compares. The
 * freeze nearly always lands inside that syscall, so the restore must bring
 * back the full XSAVE (AVX) state. The patterns change every iteration.
 * MXCSR is also set to a non-default value (FTZ|DAZ, round toward zero) and
 * checked every iteration. The C code does no floating point at all. */
#include "common.h"
#include <stdint.h>
#include <sys/syscall.h>

#define NREG 16
static uint64_t pat[NREG][4] __attribute__((aligned(32)));
static uint64_t got[NREG][4] __attribute__((aligned(32)));

#define MXCSR_WANT (0x1f80u | 0x8000u /* FTZ */ | 0x0040u /* DAZ */ | 0x6000u /* RZ */)

static void check_mxcsr(void) {
  uint32_t m;
  __asm__ volatile("stmxcsr %0" : "=m"(m));
  WL_CHECK((m & ~0x3fu) == MXCSR_WANT, "MXCSR is %#x, expected %#x (ignoring the exception flags)", m, MXCSR_WANT);
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  __builtin_cpu_init();
  WL_CHECK(__builtin_cpu_supports("avx"), "this CPU has no AVX");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t base = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0xa5a5a5a5deadbeefull;
  uint32_t mx = MXCSR_WANT;
  __asm__ volatile("ldmxcsr %0" : : "m"(mx));

  for (uint64_t n = 0;; n++) {
    for (int r = 0; r < NREG; r++)
      for (int i = 0; i < 4; i++) pat[r][i] = (0x0123456789abcdefull * (uint64_t)(r * 4 + i + 1)) ^ base ^ (n << 48);
    memset(got, 0, sizeof got);
    struct timespec sl = {0, 10 * 1000000};
    long ret;
    __asm__ volatile(
        "vmovdqa 0*32(%[p]), %%ymm0\n\t vmovdqa 1*32(%[p]), %%ymm1\n\t"
        "vmovdqa 2*32(%[p]), %%ymm2\n\t vmovdqa 3*32(%[p]), %%ymm3\n\t"
        "vmovdqa 4*32(%[p]), %%ymm4\n\t vmovdqa 5*32(%[p]), %%ymm5\n\t"
        "vmovdqa 6*32(%[p]), %%ymm6\n\t vmovdqa 7*32(%[p]), %%ymm7\n\t"
        "vmovdqa 8*32(%[p]), %%ymm8\n\t vmovdqa 9*32(%[p]), %%ymm9\n\t"
        "vmovdqa 10*32(%[p]), %%ymm10\n\t vmovdqa 11*32(%[p]), %%ymm11\n\t"
        "vmovdqa 12*32(%[p]), %%ymm12\n\t vmovdqa 13*32(%[p]), %%ymm13\n\t"
        "vmovdqa 14*32(%[p]), %%ymm14\n\t vmovdqa 15*32(%[p]), %%ymm15\n\t"
        "syscall\n\t"
        "vmovdqa %%ymm0, 0*32(%[g])\n\t vmovdqa %%ymm1, 1*32(%[g])\n\t"
        "vmovdqa %%ymm2, 2*32(%[g])\n\t vmovdqa %%ymm3, 3*32(%[g])\n\t"
        "vmovdqa %%ymm4, 4*32(%[g])\n\t vmovdqa %%ymm5, 5*32(%[g])\n\t"
        "vmovdqa %%ymm6, 6*32(%[g])\n\t vmovdqa %%ymm7, 7*32(%[g])\n\t"
        "vmovdqa %%ymm8, 8*32(%[g])\n\t vmovdqa %%ymm9, 9*32(%[g])\n\t"
        "vmovdqa %%ymm10, 10*32(%[g])\n\t vmovdqa %%ymm11, 11*32(%[g])\n\t"
        "vmovdqa %%ymm12, 12*32(%[g])\n\t vmovdqa %%ymm13, 13*32(%[g])\n\t"
        "vmovdqa %%ymm14, 14*32(%[g])\n\t vmovdqa %%ymm15, 15*32(%[g])\n\t"
        "vzeroupper\n\t"
        : "=a"(ret)
        : "a"((long)SYS_nanosleep), "D"(&sl), "S"(0L), [p] "r"(pat), [g] "r"(got)
        /* The syscall itself clobbers rax (the result), rcx, r11; the vector
         * registers are listed only because this block writes them. */
        : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    /* 0, or -EINTR if a restore chose not to restart the sleep; never a
     * leaked -ERESTART* (512..516) or anything else. */
    WL_CHECK(ret == 0 || ret == -EINTR, "raw nanosleep returned %ld", ret);
    for (int r = 0; r < NREG; r++)
      for (int i = 0; i < 4; i++)
        WL_CHECK(got[r][i] == pat[r][i], "ymm%d lane %d is %#llx, expected %#llx (iteration %llu)", r, i,
                 (unsigned long long)got[r][i], (unsigned long long)pat[r][i], (unsigned long long)n);
    check_mxcsr();
    if (wl_tick()) {
      check_mxcsr();
      wl_pass();
    }
  }
}
