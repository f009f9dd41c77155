//! Bare threads of libcr's own (for the page dump's splicer): a clone with
//! CLONE_THREAD on a stack the caller provides, joined through the kernel's
//! clear-tid futex. No TLS, no allocation: the thread must not touch anything
//! of the runtime that loaded libcr.
const std = @import("std");
const sys = @import("sys.zig");
const linux = std.os.linux;

/// Start `func(arg)` on the stack ending at `stack_top`; `tid` holds the
/// thread's id until it has exited, then 0 (see join).
pub fn spawn(func: *const fn (usize) callconv(.c) u8, stack_top: usize, arg: usize, tid: *std.atomic.Value(i32)) u16 {
    // The thread must never run a signal handler: it has no TLS of its own
    // (it would see ours through %fs), so handlers installed by the runtime
    // that loaded libcr could corrupt it. It inherits our mask at clone.
    var all: linux.sigset_t = linux.sigfillset();
    var old: linux.sigset_t = undefined;
    _ = linux.sigprocmask(linux.SIG.SETMASK, &all, &old);
    defer _ = linux.sigprocmask(linux.SIG.SETMASK, &old, null);
    const flags: u32 = linux.CLONE.VM | linux.CLONE.FS | linux.CLONE.FILES | linux.CLONE.SIGHAND |
        linux.CLONE.THREAD | linux.CLONE.SYSVSEM | linux.CLONE.PARENT_SETTID | linux.CLONE.CHILD_CLEARTID;
    const rc = linux.clone(func, stack_top, flags, arg, &tid.raw, 0, &tid.raw);
    if (sys.isErr(rc)) return sys.errnoOf(rc);
    std.debug.assert(rc > 0);
    return 0;
}

/// Wait until the thread of `tid` has exited and no longer uses its stack.
pub fn join(tid: *std.atomic.Value(i32)) void {
    while (true) {
        const t = tid.load(.acquire);
        if (t == 0) return;
        // Not private: the kernel's wake at thread exit is a shared-futex wake.
        _ = linux.futex_4arg(&tid.raw, .{ .cmd = .WAIT, .private = false }, @bitCast(t), null);
    }
}

test "a thread runs and is joined" {
    const Ctx = struct {
        tid: std.atomic.Value(i32) = .init(0),
        ran: std.atomic.Value(u32) = .init(0),
        fn main(arg: usize) callconv(.c) u8 {
            const c: *@This() = @ptrFromInt(arg);
            c.ran.store(1, .release);
            return 0;
        }
    };
    const stack = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(16), 64 << 10);
    defer std.testing.allocator.free(stack);
    var c: Ctx = .{};
    try std.testing.expectEqual(@as(u16, 0), spawn(Ctx.main, @intFromPtr(stack.ptr) + stack.len, @intFromPtr(&c), &c.tid));
    join(&c.tid);
    try std.testing.expectEqual(@as(u32, 1), c.ran.load(.acquire));
    try std.testing.expectEqual(@as(i32, 0), c.tid.load(.acquire));
}
