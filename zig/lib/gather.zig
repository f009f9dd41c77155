//! Walking runs of pages in pieces: each call gathers the next bytes of the
//! runs, at most `max_bytes` in at most `iov.len` pieces, as iovecs. Used by
//! the parasite (one vmsplice per piece) and by the benchmark's raw copy (one
//! process_vm_readv per piece). Pure: no syscalls, no allocation.
const std = @import("std");
const abi = @import("abi");

/// The kernel's struct iovec, with the address as an integer (the memory is
/// often another process's).
pub const Iovec = extern struct { base: usize, len: usize };

pub const Cursor = struct {
    ranges: []const abi.PageRange,
    /// The current range, and the offset inside it.
    index: usize = 0,
    offset: u64 = 0,

    pub fn done(c: *const Cursor) bool {
        return c.index >= c.ranges.len;
    }

    /// Fill `iov` with the next bytes; returns how many entries (0 at the end)
    /// and sets `bytes` to their total. Every range must be a non-empty run of
    /// whole pages (error.BadRange otherwise, nothing gathered).
    pub fn next(c: *Cursor, iov: []Iovec, max_bytes: usize, bytes: *usize) error{BadRange}!usize {
        std.debug.assert(iov.len > 0 and max_bytes > 0);
        var n: usize = 0;
        var fill: usize = 0;
        while (!c.done() and n < iov.len and fill < max_bytes) {
            const r = c.ranges[c.index];
            if (r.len == 0 or r.len % 4096 != 0 or r.addr % 4096 != 0) return error.BadRange;
            const take: usize = @intCast(@min(r.len - c.offset, max_bytes - fill));
            iov[n] = .{ .base = @intCast(r.addr + c.offset), .len = take };
            n += 1;
            fill += take;
            c.offset += take;
            if (c.offset == r.len) {
                c.index += 1;
                c.offset = 0;
            }
        }
        bytes.* = fill;
        return n;
    }
};

test "ranges are split at max_bytes and gathered up to the iovec count" {
    const ranges = [_]abi.PageRange{
        .{ .addr = 0x10000, .len = 3 * 4096 },
        .{ .addr = 0x20000, .len = 4096 },
        .{ .addr = 0x30000, .len = 2 * 4096 },
    };
    var c: Cursor = .{ .ranges = &ranges };
    var iov: [2]Iovec = undefined;
    var bytes: usize = 0;
    try std.testing.expectEqual(@as(usize, 1), try c.next(&iov, 2 * 4096, &bytes));
    try std.testing.expectEqual(Iovec{ .base = 0x10000, .len = 2 * 4096 }, iov[0]);
    try std.testing.expectEqual(@as(usize, 2), try c.next(&iov, 8 * 4096, &bytes));
    try std.testing.expectEqual(Iovec{ .base = 0x12000, .len = 4096 }, iov[0]);
    try std.testing.expectEqual(Iovec{ .base = 0x20000, .len = 4096 }, iov[1]);
    try std.testing.expectEqual(@as(usize, 2 * 4096), bytes);
    try std.testing.expectEqual(@as(usize, 1), try c.next(&iov, 8 * 4096, &bytes));
    try std.testing.expectEqual(Iovec{ .base = 0x30000, .len = 2 * 4096 }, iov[0]);
    try std.testing.expect(c.done());
    try std.testing.expectEqual(@as(usize, 0), try c.next(&iov, 8 * 4096, &bytes));
    try std.testing.expectEqual(@as(usize, 0), bytes);
    const bad = [_]abi.PageRange{.{ .addr = 0x10000, .len = 100 }};
    var b: Cursor = .{ .ranges = &bad };
    try std.testing.expectError(error.BadRange, b.next(&iov, 4096, &bytes));
}
