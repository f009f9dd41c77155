//! Page transfer at dump time: copy the present pages of a frozen task into
//! the pages image. process_vm_readv pulls a chunk of the victim's memory into
//! a small bounce buffer that stays in cache, write() pushes it to the file;
//! the dumper's memory use stays at the buffer size whatever the victim's size.
const std = @import("std");
const sys = @import("sys.zig");
const err = @import("err.zig");

const CHUNK: usize = 2 << 20;
const MAX_IOV: usize = 512;

pub const Range = extern struct { addr: u64, len: u64 };

pub fn dump(pid: i32, ranges: []const Range, fd: i32, written: *u64) i32 {
    const buf_rc = sys.syscall6(.mmap, 0, CHUNK, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(buf_rc)) return err.fail(sys.errnoOf(buf_rc), "cannot map the page buffer", .{});
    const buf: [*]u8 = @ptrFromInt(buf_rc);
    defer _ = sys.syscall2(.munmap, buf_rc, CHUNK);

    var remote: [MAX_IOV]std.posix.iovec_const = undefined;
    var ri: usize = 0; // current range
    var roff: u64 = 0; // offset inside it
    var total: u64 = 0;
    while (ri < ranges.len) {
        // Gather up to CHUNK bytes of remote ranges.
        var n_iov: usize = 0;
        var fill: usize = 0;
        while (ri < ranges.len and fill < CHUNK and n_iov < MAX_IOV) {
            const r = ranges[ri];
            std.debug.assert(r.len > 0 and r.len % 4096 == 0);
            const take: usize = @intCast(@min(r.len - roff, CHUNK - fill));
            remote[n_iov] = .{ .base = @ptrFromInt(r.addr + roff), .len = take };
            n_iov += 1;
            fill += take;
            roff += take;
            if (roff == r.len) {
                ri += 1;
                roff = 0;
            }
        }
        const local = [_]std.posix.iovec{.{ .base = buf, .len = fill }};
        const got = std.os.linux.process_vm_readv(pid, &local, remote[0..n_iov], 0);
        if (sys.isErr(got)) return err.fail(sys.errnoOf(got), "process_vm_readv of {d} at 0x{x} failed", .{ pid, @intFromPtr(remote[0].base) });
        if (got != fill) return err.fail(sys.EIO, "short read of {d}'s memory near 0x{x}", .{ pid, @intFromPtr(remote[0].base) + got });
        var off: usize = 0;
        while (off < fill) {
            const w = sys.syscall3(.write, sys.fdArg(fd), @intFromPtr(buf + off), fill - off);
            if (sys.isErr(w)) {
                if (sys.errnoOf(w) == sys.EINTR) continue;
                return err.fail(sys.errnoOf(w), "writing the pages image failed", .{});
            }
            off += w;
        }
        total += fill;
    }
    written.* = total;
    return 0;
}
