/* The smallest workload: sleep 10 ms with nanosleep, count, repeat. The count
 * is kept both in a global and in a local that must agree. Also built static
 * (bin/sleeper-static). */
#include "common.h"

static volatile long counter;

int main(int argc, char **argv) {
  wl_init(argc, argv);
  volatile long local = 0;
  for (;;) {
    wl_sleep_ms(10);
    counter++;
    local++;
    WL_CHECK(local == counter, "counter in .bss %ld != counter on the stack %ld", counter, local);
    WL_CHECK(local == wl_iter + 1, "counter %ld after %ld iterations", local, wl_iter);
    if (wl_tick()) wl_pass();
  }
}
