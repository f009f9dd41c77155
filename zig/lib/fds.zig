//! File descriptions for dump and restore, done from cr itself: identifying
//! shared open file descriptions (kcmp), reading a pipe's buffered bytes
//! without consuming them (tee), and, at restore, creating every open file
//! description of the tree before the first fork (files, pipes with their
//! data) so that the tasks only dup them into place.
const std = @import("std");
const sys = @import("sys.zig");
const err = @import("err.zig");

pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_NONBLOCK: u32 = 0o4000;
const F_DUPFD_CLOEXEC: usize = 1030;
const F_SETFL: usize = 4;
const F_GETPIPE_SZ: usize = 1032;
const F_SETPIPE_SZ: usize = 1031;
const SPLICE_F_NONBLOCK: usize = 2;
const KCMP_FILE: usize = 0;

/// Move `fd` to the lowest free number >= `min` (close-on-exec), closing it.
/// A copy in cr of fd `fd` of task `pid` (the same open file description):
/// pidfd_getfd needs no help from the task, whatever its credentials.
pub fn grabFd(pid: i32, fd: i32) i32 {
    const pidfd = sys.syscall2(.pidfd_open, sys.fdArg(pid), 0);
    if (sys.isErr(pidfd)) return err.fail(sys.errnoOf(pidfd), "pidfd_open({d}) failed", .{pid});
    defer _ = sys.syscall1(.close, pidfd);
    const got = sys.syscall3(.pidfd_getfd, pidfd, sys.fdArg(fd), 0);
    if (sys.isErr(got)) return err.fail(sys.errnoOf(got), "pidfd_getfd of fd {d} of {d} failed", .{ fd, pid });
    return @intCast(got);
}

pub fn moveAtLeast(fd: usize, min: i32) i32 {
    const rc = sys.syscall3(.fcntl, fd, F_DUPFD_CLOEXEC, @intCast(min));
    _ = sys.syscall1(.close, fd);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot move fd {d} above {d}", .{ fd, min });
    return @intCast(rc);
}

/// Open `path` with `flags`, seek to `pos`, and put it at a number >= `min`.
pub fn openFile(path: [*:0]const u8, flags: u32, mode: u32, pos: u64, min: i32) i32 {
    const fd = sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr(path), flags | O_CLOEXEC, mode);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "cannot open {s}", .{std.mem.span(path)});
    if (pos != 0) {
        const rc = sys.syscall3(.lseek, fd, pos, 0);
        if (sys.isErr(rc)) {
            _ = sys.syscall1(.close, fd);
            return err.fail(sys.errnoOf(rc), "cannot seek {s} to {d}", .{ std.mem.span(path), pos });
        }
    }
    return moveAtLeast(fd, min);
}

/// A new pipe of at least `size` bytes holding `data`, both ends at numbers
/// >= `min`: out[0] read end, out[1] write end.
pub fn makePipe(size: u32, data: []const u8, min: i32, out: *[2]i32) i32 {
    var p: [2]i32 = undefined;
    const rc = sys.syscall2(.pipe2, @intFromPtr(&p), O_CLOEXEC | O_NONBLOCK);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "pipe2 failed", .{});
    const r = fill(p[0], p[1], size, data);
    if (r != 0) {
        sys.close(p[0]);
        sys.close(p[1]);
        return r;
    }
    out[0] = moveAtLeast(sys.fdArg(p[0]), min);
    if (out[0] < 0) {
        sys.close(p[1]);
        return out[0];
    }
    out[1] = moveAtLeast(sys.fdArg(p[1]), min);
    if (out[1] < 0) {
        sys.close(out[0]);
        return out[1];
    }
    return 0;
}

/// Grow the pipe to `size` bytes and put `data` in it through `wfd` (both ends
/// non-blocking: data that does not fit is an error, not a hang); then both
/// descriptions go back to blocking.
fn fill(rfd: i32, wfd: i32, size: u32, data: []const u8) i32 {
    const cur = sys.syscall2(.fcntl, sys.fdArg(rfd), F_GETPIPE_SZ);
    if (!sys.isErr(cur) and cur < size) {
        const rc = sys.syscall3(.fcntl, sys.fdArg(rfd), F_SETPIPE_SZ, size);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot grow a pipe to {d} bytes", .{size});
    }
    var done: usize = 0;
    var rounds: u32 = 0;
    while (done < data.len and rounds < 1 << 20) : (rounds += 1) {
        const n = sys.syscall3(.write, sys.fdArg(wfd), @intFromPtr(data.ptr + done), data.len - done);
        if (sys.isErr(n)) return err.fail(sys.errnoOf(n), "cannot put {d} bytes back into a pipe of {d}", .{ data.len, size });
        done += n;
    }
    std.debug.assert(done == data.len);
    // The tasks' own flags (O_NONBLOCK or not) are set per description later.
    _ = sys.syscall3(.fcntl, sys.fdArg(rfd), F_SETFL, 0);
    _ = sys.syscall3(.fcntl, sys.fdArg(wfd), F_SETFL, 0);
    return 0;
}

/// Put the bytes a named FIFO held at dump time back into it, through `fd`:
/// cr's own O_RDWR description of the FIFO, which also keeps the FIFO open
/// (as reader and writer) while the tree's own descriptions are opened.
pub fn fillFifo(fd: i32, size: u32, data: []const u8) i32 {
    // Only a pipe has a pipe size: anything else at the FIFO's path (replaced
    // since the dump) must not be written to.
    const cap = sys.syscall2(.fcntl, sys.fdArg(fd), F_GETPIPE_SZ);
    if (sys.isErr(cap)) return err.fail(sys.errnoOf(cap), "fd {d} is not a FIFO", .{fd});
    const fl = sys.syscall3(.fcntl, sys.fdArg(fd), F_SETFL, O_NONBLOCK);
    if (sys.isErr(fl)) return err.fail(sys.errnoOf(fl), "fcntl(F_SETFL) of FIFO fd {d} failed", .{fd});
    return fill(fd, fd, size, data);
}

/// Set the status flags (O_NONBLOCK, O_APPEND ...) of an open file description.
pub fn setFlags(fd: i32, flags: u32) i32 {
    const rc = sys.syscall3(.fcntl, sys.fdArg(fd), F_SETFL, flags);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "fcntl(F_SETFL) of fd {d} failed", .{fd});
    return 0;
}

/// kcmp(KCMP_FILE): 0 when both fds are one open file description, else
/// 1 or 2 (an order), or -errno.
pub fn sameFile(pid1: i32, fd1: i32, pid2: i32, fd2: i32) i32 {
    const rc = sys.syscall5(.kcmp, sys.fdArg(pid1), sys.fdArg(pid2), KCMP_FILE, sys.fdArg(fd1), sys.fdArg(fd2));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "kcmp of fd {d} of {d} and fd {d} of {d} failed", .{ fd1, pid1, fd2, pid2 });
    return @intCast(rc);
}

/// Copy the bytes buffered in the pipe `fd` (any readable description of it)
/// into `out` without consuming them: tee into a private pipe, read that.
/// Returns the byte count; `size` gets the pipe's capacity (F_GETPIPE_SZ).
pub fn peekPipe(fd: i32, out: []u8, size: *u32) i32 {
    const cap = sys.syscall2(.fcntl, sys.fdArg(fd), F_GETPIPE_SZ);
    if (sys.isErr(cap)) return err.fail(sys.errnoOf(cap), "F_GETPIPE_SZ of fd {d} failed", .{fd});
    size.* = @intCast(cap);
    if (out.len < cap) return err.fail(sys.E2BIG, "pipe of {d} bytes exceeds the {d}-byte buffer", .{ cap, out.len });
    var p: [2]i32 = undefined;
    const rc = sys.syscall2(.pipe2, @intFromPtr(&p), O_CLOEXEC | O_NONBLOCK);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "pipe2 failed", .{});
    defer {
        sys.close(p[0]);
        sys.close(p[1]);
    }
    const grown = sys.syscall3(.fcntl, sys.fdArg(p[0]), F_SETPIPE_SZ, cap);
    if (sys.isErr(grown)) return err.fail(sys.errnoOf(grown), "cannot grow the peek pipe to {d} bytes", .{cap});
    const n = sys.syscall4(.tee, sys.fdArg(fd), sys.fdArg(p[1]), cap, SPLICE_F_NONBLOCK);
    if (sys.isErr(n)) {
        // EAGAIN: nothing buffered.
        if (sys.errnoOf(n) == sys.EAGAIN) return 0;
        return err.fail(sys.errnoOf(n), "tee from pipe fd {d} failed", .{fd});
    }
    var got: usize = 0;
    var rounds: u32 = 0;
    while (got < n and rounds < 1 << 20) : (rounds += 1) {
        const r = sys.syscall3(.read, sys.fdArg(p[0]), @intFromPtr(out.ptr + got), n - got);
        if (sys.isErr(r) or r == 0) return err.fail(sys.EIO, "reading the peeked pipe data failed", .{});
        got += r;
    }
    return @intCast(got);
}

/// A new memfd named `name` of `size` bytes at a number >= `min`.
pub fn makeMemfd(name: [*:0]const u8, size: u64, min: i32) i32 {
    const MFD_CLOEXEC: usize = 1;
    const fd = sys.syscall2(.memfd_create, @intFromPtr(name), MFD_CLOEXEC);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "memfd_create({s}) failed", .{std.mem.span(name)});
    const rc = sys.syscall2(.ftruncate, fd, size);
    if (sys.isErr(rc)) {
        _ = sys.syscall1(.close, fd);
        return err.fail(sys.errnoOf(rc), "cannot size memfd {s} to {d} bytes", .{ std.mem.span(name), size });
    }
    return moveAtLeast(fd, min);
}
