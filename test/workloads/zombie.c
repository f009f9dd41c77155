/* An unreaped zombie child. The root forks a child that _exit(42)s at once and
 * waits for it with waitid(WEXITED|WNOWAIT), which leaves it a zombie. Each
 * iteration (10 ms) the root checks /proc/CHILD/stat (state 'Z', ppid = root)
 * and that waitid(P_PID, child, WEXITED|WNOHANG|WNOWAIT) still reports it
 * exited with status 42, without reaping it. On stop: waitpid(child) must
 * return it, exited with status 42; then the root has no child left; pass.
 * Nothing else in the tree runs: the zombie is the only other process. */
#include "common.h"

static pid_t child;

static void check_zombie(void) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  WL_CHECK(n > 0, "read %s: %s", path, n < 0 ? strerror(errno) : "empty");
  buf[n] = 0;
  char *rp = strrchr(buf, ')');
  WL_CHECK(rp != NULL, "%s has no ')': %s", path, buf);
  char state;
  int ppid;
  WL_CHECK(sscanf(rp + 1, " %c %d", &state, &ppid) == 2, "can't parse %s: %s", path, buf);
  WL_CHECK(state == 'Z', "child %d is in state %c, expected Z", (int)child, state);
  WL_CHECK(ppid == (int)getpid(), "zombie %d has ppid %d, expected %d", (int)child, ppid, (int)getpid());

  siginfo_t si;
  memset(&si, 0, sizeof si);
  WL_CHECK(waitid(P_PID, child, &si, WEXITED | WNOHANG | WNOWAIT) == 0, "waitid: %s", strerror(errno));
  WL_CHECK(si.si_pid == child, "waitid reports pid %d, expected the zombie %d", (int)si.si_pid, (int)child);
  WL_CHECK(si.si_code == CLD_EXITED && si.si_status == 42, "waitid: zombie %d has code %d status %d, expected %d/42",
           (int)child, si.si_code, si.si_status, CLD_EXITED);
}

int main(int argc, char **argv) {
  wl_tree_init(argc, argv);
  pid_t root = getpid();
  child = fork();
  WL_CHECK(child >= 0, "fork: %s", strerror(errno));
  if (child == 0) {
    wl_child_init(root);
    _exit(42);
  }
  pid_t pids[2] = {root, child};
  wl_write_pids(pids, 2);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  while ((r = waitid(P_PID, child, &si, WEXITED | WNOWAIT)) != 0 && errno == EINTR) {
  }
  WL_CHECK(r == 0, "waitid: %s", strerror(errno));
  for (;;) {
    check_zombie();
    if (wl_tick()) break;
    wl_sleep_ms(10);
  }
  check_zombie();
  wl_reap(child, 42, "zombie");
  WL_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "the root has another child");
  wl_pass();
}
