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
