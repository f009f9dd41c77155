//! inotify instances. Dump: the watched object of a watch is known to fdinfo
//! only by its file handle, opened here with open_by_handle_at so that cr can
//! read its path. Restore: a new instance whose watches get back the wd
//! numbers they had, because programs compare the wd of each event with the
//! ones inotify_add_watch returned them. Created in cr before the first fork,
//! like every other open file description.
const std = @import("std");
const sys = @import("sys.zig");
const err = @import("err.zig");
const fds = @import("fds.zig");

const O_PATH: usize = 0o10000000;
const IN_NONBLOCK: usize = fds.O_NONBLOCK;
const IN_CLOEXEC: usize = fds.O_CLOEXEC;
/// Flags of inotify_add_watch that only say how to combine with an existing
/// watch: never one at restore (each path is added to a fresh instance), and
/// IN_MASK_ADD with IN_MASK_CREATE is EINVAL.
const IN_MASK_CREATE: u32 = 0x10000000;
const IN_MASK_ADD: u32 = 0x20000000;
/// MAX_HANDLE_SZ of the kernel.
const MAX_HANDLE_SZ = 128;
/// How many watches cr adds and removes at most to bring the kernel's wd
/// counter up to one wanted wd (about three syscalls each: a second or so).
pub const MAX_WD_STEPS: u32 = 1 << 20;
/// Reads of the queue after each removed stand-in watch: one IN_IGNORED each,
/// so one read normally empties it; the bound only guards against a flood of
/// real events on the watches already placed.
const MAX_DRAIN_READS = 64;

/// `struct file_handle` with room for the largest handle.
const FileHandle = extern struct {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [MAX_HANDLE_SZ]u8,
};

/// An O_PATH fd on the object of file handle (`handle_type`, `bytes`) of the
/// filesystem that `mount_fd` is on (CAP_DAC_READ_SEARCH needed).
pub fn openByHandle(mount_fd: i32, handle_type: i32, bytes: []const u8) i32 {
    if (bytes.len == 0 or bytes.len > MAX_HANDLE_SZ) return err.fail(sys.EINVAL, "a file handle of {d} bytes", .{bytes.len});
    var fh = FileHandle{ .handle_bytes = @intCast(bytes.len), .handle_type = handle_type, .f_handle = undefined };
    @memcpy(fh.f_handle[0..bytes.len], bytes);
    const fd = sys.syscall3(.open_by_handle_at, sys.fdArg(mount_fd), @intFromPtr(&fh), O_PATH | IN_CLOEXEC);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "open_by_handle_at (handle type {d}) failed", .{handle_type});
    return @intCast(fd);
}

/// A new inotify instance without watches, non-blocking (the caller sets the
/// task's own flags once the watches are in), at a number >= `min`.
pub fn makeInotify(min: i32) i32 {
    const fd = sys.syscall1(.inotify_init1, IN_NONBLOCK | IN_CLOEXEC);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "inotify_init1 failed", .{});
    return fds.moveAtLeast(fd, min);
}

/// Throw away what the queue of non-blocking instance `fd` holds: the
/// IN_IGNORED events of the stand-in watches removed on the way to a wd.
fn drain(fd: usize) void {
    var buf: [4096]u8 align(8) = undefined;
    var i: usize = 0;
    while (i < MAX_DRAIN_READS) : (i += 1) {
        const rc = sys.syscall3(.read, fd, @intFromPtr(&buf), buf.len);
        if (sys.isErr(rc) or rc == 0) return;
    }
}

/// Watch `path` with `mask` in instance `fd` as wd `wd`. The kernel hands out
/// wds in increasing order from a cursor (idr cyclic), one past the last it
/// gave: watches are added in wd order, `placed` is the highest wd already
/// placed in this instance (0: none). Until the kernel gives `wd`, the watch
/// is added and removed again (as CRIU does), which moves the cursor on.
pub fn addWatch(fd: i32, path: [*:0]const u8, mask: u32, wd: i32, placed: i32) i32 {
    std.debug.assert(fd >= 0);
    if (wd <= placed) return err.fail(sys.EINVAL, "inotify watches out of wd order ({d} after {d})", .{ wd, placed });
    const m = mask & ~(IN_MASK_ADD | IN_MASK_CREATE);
    const ufd = sys.fdArg(fd);
    var steps: u32 = 0;
    while (steps < MAX_WD_STEPS) : (steps += 1) {
        const rc = sys.syscall3(.inotify_add_watch, ufd, @intFromPtr(path), m);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "inotify_add_watch({s}) for wd {d} failed", .{ path, wd });
        const got: i32 = @intCast(rc);
        if (got == wd) {
            drain(ufd);
            return 0;
        }
        // An existing wd: the path is now the same file as an earlier watch's.
        // Removing it would remove that watch.
        if (got <= placed) return err.fail(sys.EEXIST, "{s} (wd {d}) is now the same file as the watch with wd {d}", .{ path, wd, got });
        _ = sys.syscall2(.inotify_rm_watch, ufd, rc);
        // The cursor wrapped or was past `wd` already: it will not come back to it.
        if (got > wd) return err.fail(sys.EEXIST, "the kernel gave wd {d} for {s}, past the wanted wd {d}", .{ got, path, wd });
        drain(ufd);
    }
    return err.fail(sys.ERANGE, "wd {d} for {s} not reached after {d} stand-in watches", .{ wd, path, MAX_WD_STEPS });
}

test "watches get the wds asked for, in order, with a gap; an out-of-order or reused one is refused" {
    const fd = makeInotify(3);
    try std.testing.expect(fd >= 3);
    defer sys.close(fd);
    try std.testing.expectEqual(@as(i32, 0), addWatch(fd, "/", 0x2, 2, 0));
    try std.testing.expectEqual(@as(i32, 0), addWatch(fd, "/dev", 0x100, 7, 2));
    try std.testing.expectEqual(sys.neg(sys.EINVAL), addWatch(fd, "/proc", 0x2, 5, 7));
    // "/" is watched as wd 2 already.
    try std.testing.expectEqual(sys.neg(sys.EEXIST), addWatch(fd, "/", 0x2, 9, 7));
    // The stand-ins' IN_IGNORED events were read away: nothing is queued.
    var buf: [256]u8 align(8) = undefined;
    const rc = sys.syscall3(.read, sys.fdArg(fd), @intFromPtr(&buf), buf.len);
    try std.testing.expectEqual(sys.EAGAIN, sys.errnoOf(rc));
}
