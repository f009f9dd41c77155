//! Holding off the signals that ask cr to stop (SIGHUP, SIGINT, SIGTERM,
//! SIGQUIT) while it holds a tree frozen or half-built. Their default action
//! would end cr at once: a tracee then goes on without its tracer, and one
//! that runs the parasite at that moment dies on the parasite's final int3
//! (an untraced SIGTRAP). Held, such a signal is only noted; cr checks for
//! it between steps, lets the tree go as it was, and then exits.
const std = @import("std");
const sys = @import("sys.zig");
const err = @import("err.zig");
const linux = std.os.linux;

const SIGNALS = [_]u8{ linux.SIG.HUP, linux.SIG.INT, linux.SIG.QUIT, linux.SIG.TERM };

/// The first of SIGNALS that came since hold(), or 0.
var caught = std.atomic.Value(u32).init(0);
/// The actions in place before hold(), put back by release().
var saved: [SIGNALS.len]linux.k_sigaction = undefined;
var holding = false;

/// Runs on whichever thread the signal reaches: only an atomic store.
fn note(sig: i32) callconv(.c) void {
    _ = caught.cmpxchgStrong(0, @intCast(sig), .acq_rel, .acquire);
}

/// Note SIGNALS instead of dying of them, until release().
pub fn hold() i32 {
    std.debug.assert(!holding);
    caught.store(0, .release);
    for (SIGNALS, 0..) |sig, i| {
        // The old action exactly as the kernel has it (restorer included), for release().
        const rc = sys.syscall4(.rt_sigaction, sig, 0, @intFromPtr(&saved[i]), @sizeOf(linux.sigset_t));
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot read the action of signal {d}", .{sig});
    }
    const act: linux.Sigaction = .{ .handler = .{ .handler = note }, .mask = linux.sigfillset(), .flags = linux.SA.RESTART };
    for (SIGNALS, 0..) |sig, i| {
        const rc = linux.sigaction(sig, &act, null);
        if (sys.isErr(rc)) {
            putBack(i);
            return err.fail(sys.errnoOf(rc), "cannot catch signal {d}", .{sig});
        }
    }
    holding = true;
    return 0;
}

/// The signal noted since hold() (0: none), without letting go.
pub fn pending() u32 {
    return caught.load(.acquire);
}

/// Put the old actions back; returns the signal noted since hold() (0: none).
pub fn release() u32 {
    if (holding) putBack(SIGNALS.len);
    holding = false;
    return caught.swap(0, .acq_rel);
}

fn putBack(n: usize) void {
    for (SIGNALS[0..n], saved[0..n]) |sig, *old| {
        _ = sys.syscall4(.rt_sigaction, sig, @intFromPtr(old), 0, @sizeOf(linux.sigset_t));
    }
}

test "a held SIGTERM is noted, not acted on, and the old action comes back" {
    var before: linux.k_sigaction = undefined;
    _ = sys.syscall4(.rt_sigaction, linux.SIG.TERM, 0, @intFromPtr(&before), @sizeOf(linux.sigset_t));
    try std.testing.expectEqual(@as(i32, 0), hold());
    try std.testing.expectEqual(@as(u32, 0), pending());
    _ = linux.kill(linux.getpid(), linux.SIG.TERM);
    // Delivered to some thread of ours by now or very soon.
    var waited: u32 = 0;
    while (pending() == 0 and waited < 1000) : (waited += 1) sys.nanosleepNs(1_000_000);
    try std.testing.expectEqual(@as(u32, linux.SIG.TERM), pending());
    try std.testing.expectEqual(@as(u32, linux.SIG.TERM), release());
    var after: linux.k_sigaction = undefined;
    _ = sys.syscall4(.rt_sigaction, linux.SIG.TERM, 0, @intFromPtr(&after), @sizeOf(linux.sigset_t));
    try std.testing.expectEqual(before.handler, after.handler);
    try std.testing.expectEqual(@as(u32, 0), release());
}
