//! The per-call error detail behind `cr_last_error()`. Bun calls libcr from its
//! one JS thread, so a single buffer is enough; every failing export fills it
//! and returns -errno.
const std = @import("std");
const sys = @import("sys.zig");

var buf: [512]u8 = undefined;
var len: usize = 0;

/// Record "op: detail" and return -errno for the caller to pass up.
pub fn fail(e: u16, comptime fmt: []const u8, args: anytype) i32 {
    const out = std.fmt.bufPrint(&buf, fmt, args) catch blk: {
        const cut = "(error detail too long)";
        @memcpy(buf[0..cut.len], cut);
        break :blk buf[0..cut.len];
    };
    len = out.len;
    std.debug.assert(e != 0);
    return sys.neg(e);
}

pub fn clear() void {
    len = 0;
}

/// Copy the last detail into `out`; returns its length.
pub fn copyTo(out: [*]u8, cap: usize) usize {
    const n = @min(len, cap);
    @memcpy(out[0..n], buf[0..n]);
    return n;
}

/// The detail as it is now, to put back after clean-up code whose own
/// failures (a task that died: every ptrace call fails) would replace the
/// first, real cause.
pub const Saved = struct {
    text: [buf.len]u8,
    len: usize,

    pub fn restore(s: *const Saved) void {
        @memcpy(buf[0..s.len], s.text[0..s.len]);
        len = s.len;
    }
};

pub fn save() Saved {
    var s: Saved = .{ .text = undefined, .len = len };
    @memcpy(s.text[0..len], buf[0..len]);
    return s;
}

/// `first` when it failed (its detail put back over whatever `then`
/// reported since `saved`), else `then`.
pub fn firstOf(first: i32, saved: *const Saved, then: i32) i32 {
    if (first == 0) return then;
    saved.restore();
    return first;
}

test "the first failure keeps its detail through a failing clean-up" {
    const rc = fail(3, "the real cause", .{});
    const s = save();
    const cleaned = fail(5, "clean-up failed too", .{});
    try std.testing.expectEqual(@as(i32, -3), firstOf(rc, &s, cleaned));
    var out: [64]u8 = undefined;
    try std.testing.expectEqualStrings("the real cause", out[0..copyTo(&out, out.len)]);
    try std.testing.expectEqual(@as(i32, -5), firstOf(0, &s, cleaned));
}
