/* Memory protection keys (x86 PKU) across the dump. Two keys are allocated:
 * key A guards page A and is set access-disabled, key B guards page B and is
 * set write-disabled; both pages hold a pattern. Each iteration checks:
 *   - the thread's PKRU register (part of the XSAVE state) is exactly what was
 *     set, and pkey_get() reports the two keys' rights;
 *   - reading page A faults with SIGSEGV, si_code SEGV_PKUERR and si_pkey A
 *     (so the page still carries key A: its VMA's protection key survived);
 *   - page B reads back its pattern, but writing it faults (SEGV_PKUERR, B);
 *   - enabling key A for a moment, page A reads back its pattern.
 * The final check also requires the keys to be still allocated in the mm:
 * pkey_mprotect() with them succeeds and a new pkey_alloc() returns neither.
 * The kernel runs a signal handler with its default PKRU, and siglongjmp()
 * does not restore PKRU, so after each fault this program writes it back.
 * Without protection keys (CPU or kernel), the result is
 * "FAIL no protection keys: ...". */
#include "common.h"
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>

#define PAGE 4096

static int key_a, key_b;
static unsigned char *page_a, *page_b;
static uint32_t pkru_want;

static uint32_t rdpkru(void) {
  uint32_t eax, edx;
  __asm__ volatile("rdpkru" : "=a"(eax), "=d"(edx) : "c"(0) : "memory");
  return eax;
}

static void wrpkru(uint32_t v) { __asm__ volatile("wrpkru" : : "a"(v), "c"(0), "d"(0) : "memory"); }

static unsigned char pattern(int page, size_t off) { return (unsigned char)(page * 101 + off * 7 + off / 251); }

static void fill(unsigned char *p, int page) {
  for (size_t i = 0; i < PAGE; i++) p[i] = pattern(page, i);
}

static void verify(const unsigned char *p, int page, const char *what) {
  for (size_t i = 0; i < PAGE; i++)
    WL_CHECK(p[i] == pattern(page, i), "%s: byte %zu is %u, expected %u", what, i, p[i], pattern(page, i));
}

/* Access probes: a SIGSEGV handler records the fault and jumps back. */
static sigjmp_buf probe_jmp;
static volatile sig_atomic_t probing;
static volatile int fault_code, fault_pkey;
static void *volatile fault_addr;

static void on_segv(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  if (!probing) wl_fail("unexpected SIGSEGV at %p (si_code %d)", si->si_addr, si->si_code);
  fault_code = si->si_code;
  fault_pkey = (int)si->si_pkey;
  fault_addr = si->si_addr;
  siglongjmp(probe_jmp, 1);
}

/* 1 if the access went through, 0 if it faulted (fault_* say how). */
static int try_access(volatile unsigned char *addr, int write) {
  fault_code = fault_pkey = -1;
  fault_addr = NULL;
  probing = 1;
  if (sigsetjmp(probe_jmp, 1)) {
    probing = 0;
    wrpkru(pkru_want); /* the handler's default PKRU is still in force */
    return 0;
  }
  unsigned char v = *addr;
  if (write) *addr = v;
  probing = 0;
  return 1;
}

static void expect_pkey_fault(unsigned char *addr, int write, int key, const char *what) {
  WL_CHECK(!try_access(addr, write), "%s succeeded", what);
  WL_CHECK(fault_code == SEGV_PKUERR, "%s: si_code is %d, expected SEGV_PKUERR (%d)", what, fault_code, SEGV_PKUERR);
  WL_CHECK(fault_pkey == key, "%s: si_pkey is %d, expected %d", what, fault_pkey, key);
  WL_CHECK(fault_addr == addr, "%s: si_addr is %p, expected %p", what, fault_addr, (void *)addr);
}

static void check_rights(void) {
  int ra = pkey_get(key_a), rb = pkey_get(key_b);
  WL_CHECK(ra == PKEY_DISABLE_ACCESS, "key A (%d) rights are %d, expected PKEY_DISABLE_ACCESS", key_a, ra);
  WL_CHECK(rb == PKEY_DISABLE_WRITE, "key B (%d) rights are %d, expected PKEY_DISABLE_WRITE", key_b, rb);
  uint32_t pkru = rdpkru();
  WL_CHECK(pkru == pkru_want, "PKRU is %#x, expected %#x", pkru, pkru_want);
}

static void check_all(void) {
  check_rights();
  expect_pkey_fault(page_a + 123, 0, key_a, "reading the access-disabled page A");
  check_rights();
  verify(page_b, 1, "page B");
  expect_pkey_fault(page_b + 321, 1, key_b, "writing the write-disabled page B");
  check_rights();
  WL_CHECK(pkey_set(key_a, 0) == 0, "pkey_set(A, 0): %s", strerror(errno));
  verify(page_a, 0, "page A (key A enabled)");
  WL_CHECK(pkey_set(key_a, PKEY_DISABLE_ACCESS) == 0, "pkey_set(A): %s", strerror(errno));
  check_rights();
}

static int alloc_key(void) {
  int k = pkey_alloc(0, 0);
  if (k < 0 && (errno == ENOSPC || errno == EINVAL || errno == ENOSYS))
    wl_fail("no protection keys: pkey_alloc: %s", strerror(errno));
  WL_CHECK(k > 0, "pkey_alloc: %s", strerror(errno));
  return k;
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  key_a = alloc_key();
  key_b = alloc_key();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  WL_CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  page_a = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  page_b = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  WL_CHECK(page_a != MAP_FAILED && page_b != MAP_FAILED, "mmap: %s", strerror(errno));
  WL_CHECK(pkey_mprotect(page_a, PAGE, PROT_READ | PROT_WRITE, key_a) == 0, "pkey_mprotect(A): %s", strerror(errno));
  WL_CHECK(pkey_mprotect(page_b, PAGE, PROT_READ | PROT_WRITE, key_b) == 0, "pkey_mprotect(B): %s", strerror(errno));
  fill(page_a, 0);
  fill(page_b, 1);
  WL_CHECK(pkey_set(key_a, PKEY_DISABLE_ACCESS) == 0, "pkey_set(A): %s", strerror(errno));
  WL_CHECK(pkey_set(key_b, PKEY_DISABLE_WRITE) == 0, "pkey_set(B): %s", strerror(errno));
  pkru_want = rdpkru();

  for (;;) {
    check_all();
    if (wl_tick()) {
      check_all();
      WL_CHECK(pkey_mprotect(page_a, PAGE, PROT_READ | PROT_WRITE, key_a) == 0,
               "pkey_mprotect with key A again: %s (key no longer allocated?)", strerror(errno));
      WL_CHECK(pkey_mprotect(page_b, PAGE, PROT_READ | PROT_WRITE, key_b) == 0,
               "pkey_mprotect with key B again: %s (key no longer allocated?)", strerror(errno));
      int k = alloc_key();
      WL_CHECK(k != key_a && k != key_b, "pkey_alloc returned %d, already allocated before the dump", k);
      pkru_want = rdpkru(); /* pkey_alloc() set the new key's rights in PKRU */
      check_all();
      wl_pass();
    }
    wl_sleep_ms(10);
  }
}
