// Loading libcr without writing it anywhere. Bun copies a library embedded
// in a compiled binary to $TMPDIR before dlopen, which fails where /tmp is
// mounted noexec, is missing or read-only, or TMPDIR names a missing
// directory: exactly the hardened and rescue systems cr is for. Instead the
// library's bytes go into an executable memfd (memfd_create, reached through
// the libc Bun itself runs on) and dlopen takes it from /proc/self/fd/N.
import { dlopen, FFIType, read } from "bun:ffi";
import { closeSync, readFileSync, writeSync } from "node:fs";
import { CrError } from "../errors.ts";

const MFD_CLOEXEC = 1, MFD_EXEC = 0x10;
const EINVAL = 22;

const LIBC_SYMBOLS = {
  memfd_create: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;
type Libc = ReturnType<typeof dlopen<typeof LIBC_SYMBOLS>>["symbols"];

/** The libc Bun runs on, if it has memfd_create (glibc 2.27+). */
function libcWithMemfd(): Libc | null {
  try {
    return dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  } catch {
    return null;
  }
}

/** An executable memfd holding `bytes`; a CrError saying what to do when the kernel refuses one. */
function executableMemfd(c: Libc, name: string, bytes: Uint8Array): number {
  const errno = () => {
    const p = c.__errno_location();
    return p === null ? 0 : read.i32(p, 0);
  };
  const cname = Buffer.from(`${name}\0`);
  // MFD_EXEC (Linux 6.3+) asks for an executable memfd where vm.memfd_noexec
  // would make them noexec by default; older kernels do not know the flag.
  let fd = c.memfd_create(cname, MFD_CLOEXEC | MFD_EXEC);
  if (fd < 0 && errno() === EINVAL) fd = c.memfd_create(cname, MFD_CLOEXEC);
  if (fd < 0) {
    const e = errno();
    throw new CrError("load libcr", `memfd_create failed (errno ${e})${e === 13 ? ": executable memfds are forbidden here (sysctl vm.memfd_noexec = 2); set it to 0 or 1 to run cr" : ""}`, { errno: e });
  }
  try {
    let off = 0;
    // Bounded: every round writes at least a byte or throws.
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } catch (e) {
    closeSync(fd);
    throw new CrError("load libcr", `cannot fill the library's memfd: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return fd;
}

/**
 * dlopen the library at `path` (embedded or on disk) from a memfd. A libc
 * without memfd_create (glibc before 2.27) gets Bun's own way, through $TMPDIR.
 */
export function dlopenFromMemory<S extends Parameters<typeof dlopen>[1]>(path: string, symbols: S): ReturnType<typeof dlopen<S>> {
  const c = libcWithMemfd();
  if (c === null) return dlopen(path, symbols);
  const fd = executableMemfd(c, "libcr", new Uint8Array(readFileSync(path)));
  try {
    return dlopen(`/proc/self/fd/${fd}`, symbols);
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new CrError("load libcr", `cannot load libcr from memory (${why}): is /proc mounted?`, { cause: e });
  } finally {
    closeSync(fd);
  }
}
