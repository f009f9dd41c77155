//! Terminals, for --shell-job: the modes (struct termios, as the kernel's
//! TCGETS/TCSETS have it) of a job's terminal, read at dump and put on cr
//! restore's terminal, and its foreground process group. cr calls these from
//! its own thread; SIGTTOU is blocked around each call, because a process
//! changing a terminal it is not the foreground of gets SIGTTOU (and would be
//! stopped by it): cr only does so when it decided it may (see
//! src/restore/shelljob.ts), and must never be stopped half-way.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");

const TERMIOS_SIZE = abi.TERMIOS_SIZE;

const TCGETS: usize = 0x5401;
const TCSETS: usize = 0x5402;
pub const TIOCSPGRP: usize = 0x5410;
const SIGTTOU: u6 = 22;
const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;

pub const TtyError = error{BadLength};

/// ioctl(fd, req, arg) with SIGTTOU blocked in this thread.
fn ioctlNoTtou(fd: i32, req: usize, arg: usize) usize {
    const block: u64 = @as(u64, 1) << (SIGTTOU - 1);
    var old: u64 = 0;
    _ = sys.syscall4(.rt_sigprocmask, SIG_BLOCK, @intFromPtr(&block), @intFromPtr(&old), 8);
    const rc = sys.syscall3(.ioctl, sys.fdArg(fd), req, arg);
    _ = sys.syscall4(.rt_sigprocmask, SIG_SETMASK, @intFromPtr(&old), 0, 8);
    return rc;
}

fn checkLen(len: usize) TtyError!void {
    if (len != TERMIOS_SIZE) return error.BadLength;
}

/// Read (`set` false) the modes of terminal `fd` into `t`, or set them from `t`.
pub fn termios(fd: i32, t: []u8, set: bool) i32 {
    checkLen(t.len) catch return err.fail(sys.EINVAL, "termios buffer of {d} bytes, expected {d}", .{ t.len, TERMIOS_SIZE });
    std.debug.assert(t.len == TERMIOS_SIZE);
    const rc = ioctlNoTtou(fd, if (set) TCSETS else TCGETS, @intFromPtr(t.ptr));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "{s} on fd {d} failed", .{ if (set) "TCSETS" else "TCGETS", fd });
    return 0;
}

/// tcsetpgrp(fd, pgid).
pub fn setForeground(fd: i32, pgid: i32) i32 {
    std.debug.assert(pgid > 0);
    const rc = ioctlNoTtou(fd, TIOCSPGRP, @intFromPtr(&pgid));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "TIOCSPGRP({d}) on fd {d} failed", .{ pgid, fd });
    return 0;
}

test "a termios buffer must be the kernel's size" {
    try std.testing.expectError(error.BadLength, checkLen(60));
    try checkLen(TERMIOS_SIZE);
}
