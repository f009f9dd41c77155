/* AVX-512 register state across the dump. Each iteration, one inline-asm
 * block loads all 32 zmm registers with distinct 512-bit patterns and all 8
 * opmask registers k0..k7 with distinct 64-bit patterns, sleeps 10 ms with a
 * raw nanosleep `syscall` (clobbers only rax, rcx, r11 and memory: the kernel
 * keeps vector and opmask registers, and no libc code runs in between), then
 * stores them all back; C compares every lane. The freeze nearly always lands
 * inside that syscall, so the restore must bring back the whole AVX-512 part
 * of the XSAVE state: the opmask, ZMM_Hi256 (upper halves of zmm0..15) and
 * Hi16_ZMM (zmm16..31) components, not just what avx.c covers. The patterns
 * change every iteration. The C code is kept scalar (-fno-tree-vectorize). */
#include "common.h"
#include <stdint.h>
#include <sys/syscall.h>

#define NZMM 32
#define NK 8
static uint64_t pat[NZMM][8] __attribute__((aligned(64)));
static uint64_t got[NZMM][8] __attribute__((aligned(64)));
static uint64_t kpat[NK], kgot[NK];

/* The register number \r goes through the assembler's .irp, not C. */
#define ALL_ZMM ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n\t"
#define ALL_K ".irp r,0,1,2,3,4,5,6,7\n\t"

int main(int argc, char **argv) {
  wl_init(argc, argv);
  __builtin_cpu_init();
  WL_CHECK(__builtin_cpu_supports("avx512f"), "this CPU has no AVX-512F");
  WL_CHECK(__builtin_cpu_supports("avx512bw"), "this CPU has no AVX-512BW (needed for 64-bit kmovq)");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t base = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x5a5a5a5abeefcafeull;

  for (uint64_t n = 0;; n++) {
    for (int r = 0; r < NZMM; r++)
      for (int i = 0; i < 8; i++) pat[r][i] = (0x0123456789abcdefull * (uint64_t)(r * 8 + i + 1)) ^ base ^ (n << 48);
    for (int k = 0; k < NK; k++) kpat[k] = (0xfedcba9876543211ull * (uint64_t)(k + 1)) ^ base ^ (n << 40);
    memset(got, 0, sizeof got);
    memset(kgot, 0, sizeof kgot);
    struct timespec sl = {0, 10 * 1000000};
    long ret;
    __asm__ volatile(
        ALL_ZMM "vmovdqa64 \\r*64(%[p]), %%zmm\\r\n\t.endr\n\t"
        ALL_K "kmovq \\r*8(%[kp]), %%k\\r\n\t.endr\n\t"
        "syscall\n\t"
        ALL_ZMM "vmovdqa64 %%zmm\\r, \\r*64(%[g])\n\t.endr\n\t"
        ALL_K "kmovq %%k\\r, \\r*8(%[kg])\n\t.endr\n\t"
        "vzeroupper\n\t"
        : "=a"(ret)
        : "a"((long)SYS_nanosleep), "D"(&sl), "S"(0L), [p] "r"(pat), [g] "r"(got), [kp] "r"(kpat), [kg] "r"(kgot)
        /* The syscall itself clobbers rax (the result), rcx, r11; the vector
         * and opmask registers are listed only because this block writes them. */
        : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
          "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2",
          "k3", "k4", "k5", "k6", "k7");
    /* 0, or -EINTR if a restore chose not to restart the sleep; never a
     * leaked -ERESTART* (512..516) or anything else. */
    WL_CHECK(ret == 0 || ret == -EINTR, "raw nanosleep returned %ld", ret);
    for (int r = 0; r < NZMM; r++)
      for (int i = 0; i < 8; i++)
        WL_CHECK(got[r][i] == pat[r][i], "zmm%d lane %d is %#llx, expected %#llx (iteration %llu)", r, i,
                 (unsigned long long)got[r][i], (unsigned long long)pat[r][i], (unsigned long long)n);
    for (int k = 0; k < NK; k++)
      WL_CHECK(kgot[k] == kpat[k], "k%d is %#llx, expected %#llx (iteration %llu)", k, (unsigned long long)kgot[k],
               (unsigned long long)kpat[k], (unsigned long long)n);
    if (wl_tick()) wl_pass();
  }
}
