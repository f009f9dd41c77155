/* Appends 0, 1, 2, ... (one "N\n" per write()) to DIR/counter.log through an
 * O_APPEND fd every ~10 ms, and at the start of each iteration reads what is
 * new through a second, O_RDONLY fd: the numbers must be exactly consecutive
 * from 0, and both fds' positions and flags must be what they were. On stop
 * the whole file is re-read from offset 0. */
#include "common.h"

static int rfd;
static long next_to_read;  /* next number expected from rfd */
static off_t read_bytes;   /* bytes consumed from rfd so far */
static char partial[32];   /* a line read without its '\n' yet */
static size_t partial_len;

static void read_new(void) {
  char buf[4096];
  ssize_t n;
  while ((n = read(rfd, buf, sizeof buf)) > 0) {
    read_bytes += n;
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (c != '\n') {
        WL_CHECK(c >= '0' && c <= '9', "byte %d at offset %lld is not a digit", c,
                 (long long)(read_bytes - n + i));
        WL_CHECK(partial_len < sizeof partial - 1, "line at number %ld too long", next_to_read);
        partial[partial_len++] = c;
        continue;
      }
      WL_CHECK(partial_len > 0, "empty line where %ld was expected", next_to_read);
      partial[partial_len] = 0;
      long v = strtol(partial, NULL, 10);
      WL_CHECK(v == next_to_read, "read %ld, expected %ld", v, next_to_read);
      next_to_read++;
      partial_len = 0;
    }
  }
  WL_CHECK(n == 0, "read failed: %s", strerror(errno));
}

int main(int argc, char **argv) {
  wl_init(argc, argv);
  char path[4096];
  snprintf(path, sizeof path, "%s/counter.log", wl_dir);
  int wfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
  WL_CHECK(wfd >= 0, "open %s for append: %s", path, strerror(errno));
  rfd = open(path, O_RDONLY);
  WL_CHECK(rfd >= 0, "open %s for reading: %s", path, strerror(errno));
  long written = 0;         /* numbers appended */
  off_t written_bytes = 0;  /* bytes appended */
  for (;;) {
    /* Everything appended so far, and nothing else, must be readable. */
    read_new();
    WL_CHECK(next_to_read == written && partial_len == 0, "read up to %ld (+%zu bytes), wrote %ld",
             next_to_read, partial_len, written);
    WL_CHECK(read_bytes == written_bytes, "read %lld bytes, wrote %lld", (long long)read_bytes,
             (long long)written_bytes);
    off_t rpos = lseek(rfd, 0, SEEK_CUR), wpos = lseek(wfd, 0, SEEK_CUR);
    WL_CHECK(rpos == read_bytes, "reading fd at offset %lld, expected %lld", (long long)rpos, (long long)read_bytes);
    WL_CHECK(wpos == written_bytes, "append fd at offset %lld, expected %lld", (long long)wpos,
             (long long)written_bytes);
    int wfl = fcntl(wfd, F_GETFL), rfl = fcntl(rfd, F_GETFL);
    WL_CHECK(wfl >= 0 && (wfl & O_ACCMODE) == O_WRONLY && (wfl & O_APPEND), "append fd flags now %#x", wfl);
    WL_CHECK(rfl >= 0 && (rfl & O_ACCMODE) == O_RDONLY && !(rfl & O_APPEND), "reading fd flags now %#x", rfl);

    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", written);
    WL_CHECK(write(wfd, line, len) == len, "append of %ld failed: %s", written, strerror(errno));
    written++;
    written_bytes += len;

    if (wl_tick()) {
      /* Final check: the whole file from the start, through the same fd. */
      read_new();
      WL_CHECK(next_to_read == written, "read up to %ld, wrote %ld", next_to_read, written);
      WL_CHECK(lseek(rfd, 0, SEEK_SET) == 0, "rewind: %s", strerror(errno));
      next_to_read = 0;
      read_bytes = 0;
      partial_len = 0;
      read_new();
      WL_CHECK(next_to_read == written && partial_len == 0, "file holds %ld numbers, wrote %ld", next_to_read,
               written);
      WL_CHECK(read_bytes == written_bytes, "file has %lld bytes, wrote %lld", (long long)read_bytes,
               (long long)written_bytes);
      wl_pass();
    }
    wl_sleep_ms(10);
  }
}
