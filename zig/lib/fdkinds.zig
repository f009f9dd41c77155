//! Files with no path that cr re-creates from what /proc/PID/fdinfo showed at
//! dump time: eventfd (counter), timerfd (clock, time left, period, ticks not
//! read), signalfd (mask) and epoll instances. Each is created in cr before
//! the first fork, like every other open file description; only epoll
//! registrations wait for the restored task (addEpoll), because the kernel
//! keys them by the fd number in the process that makes them.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const fds = @import("fds.zig");

const O_NONBLOCK = fds.O_NONBLOCK;
const O_CLOEXEC = fds.O_CLOEXEC;
const EFD_SEMAPHORE: usize = 1;
const TFD_TIMER_ABSTIME: u32 = 1;
/// _IOW('T', 0, u64): set the expiration count of a timerfd (CONFIG_CHECKPOINT_RESTORE).
const TFD_IOC_SET_TICKS: usize = 0x40085400;
const KCMP_EPOLL_TFD: usize = 7;
const EPOLL_CTL_ADD: usize = 1;
const NS_PER_S: u64 = 1_000_000_000;

/// `struct epoll_event` is packed on x86_64: 12 bytes, data at offset 4.
const EpollEvent = extern struct {
    events: u32,
    data: u64 align(4),
};

/// `struct kcmp_epoll_slot`.
const KcmpEpollSlot = extern struct {
    efd: u32,
    tfd: u32,
    toff: u32,
};

comptime {
    std.debug.assert(@sizeOf(EpollEvent) == 12);
    std.debug.assert(@sizeOf(KcmpEpollSlot) == 12);
}

const Timespec = extern struct {
    sec: i64,
    nsec: i64,
};

const Itimerspec = extern struct {
    interval: Timespec,
    value: Timespec,
};

fn timespec(ns: u64) Timespec {
    return .{ .sec = @intCast(ns / NS_PER_S), .nsec = @intCast(ns % NS_PER_S) };
}

/// Close `fd` and return the failure recorded for it.
fn closeFail(fd: usize, rc: usize, comptime fmt: []const u8, args: anytype) i32 {
    _ = sys.syscall1(.close, fd);
    return err.fail(sys.errnoOf(rc), fmt, args);
}

/// An eventfd holding `count` (EFD_SEMAPHORE when `semaphore`), at a number
/// >= `min`. Non-blocking until the caller sets the task's own flags.
pub fn makeEventfd(count: u64, semaphore: bool, min: i32) i32 {
    // The counter stops at 2^64-2: a write that would pass it blocks.
    if (count >= std.math.maxInt(u64)) return err.fail(sys.EINVAL, "eventfd count {d} out of range", .{count});
    const flags: usize = O_CLOEXEC | O_NONBLOCK | (if (semaphore) EFD_SEMAPHORE else 0);
    // eventfd2's initial value is 32-bit: start at 0 and add the count by a write.
    const fd = sys.syscall2(.eventfd2, 0, flags);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "eventfd2 failed", .{});
    if (count != 0) {
        const rc = sys.syscall3(.write, fd, @intFromPtr(&count), 8);
        if (sys.isErr(rc)) return closeFail(fd, rc, "cannot put {d} into an eventfd", .{count});
        std.debug.assert(rc == 8);
    }
    return fds.moveAtLeast(fd, min);
}

/// The `it_value` to arm a restored timer with. fdinfo shows the time left;
/// 0 means disarmed, or (with a period) expired and not re-armed yet because
/// nobody read it: the kernel forwards a periodic timer only on read. Such a
/// timer with ticks waiting restarts a full period from now (the ticks are set
/// separately, so the next read sees exactly them); one with none waiting was
/// due at the dump and expires at once.
fn firstExpiry(value_ns: u64, interval_ns: u64, ticks: u64) u64 {
    if (value_ns != 0 or interval_ns == 0) return value_ns;
    return if (ticks != 0) interval_ns else 1;
}

/// A timerfd on `clockid` armed with the time left `value_ns` (relative to
/// now: the time the tree spent frozen does not count) and period
/// `interval_ns`, with `ticks` expirations waiting to be read. A timer set
/// with TFD_TIMER_ABSTIME is re-armed absolute at now + time left, so that
/// TFD_TIMER_CANCEL_ON_SET still applies.
pub fn makeTimerfd(clockid: u32, settime_flags: u32, value_ns: u64, interval_ns: u64, ticks: u64, min: i32) i32 {
    const fd = sys.syscall2(.timerfd_create, clockid, O_CLOEXEC | O_NONBLOCK);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "timerfd_create(clock {d}) failed", .{clockid});
    var value = firstExpiry(value_ns, interval_ns, ticks);
    if (value != 0 and settime_flags & TFD_TIMER_ABSTIME != 0) {
        var now: Timespec = undefined;
        const rc = sys.syscall2(.clock_gettime, clockid, @intFromPtr(&now));
        if (sys.isErr(rc)) return closeFail(fd, rc, "clock_gettime(clock {d}) failed", .{clockid});
        std.debug.assert(now.sec >= 0 and now.nsec >= 0);
        value +|= @as(u64, @intCast(now.sec)) * NS_PER_S + @as(u64, @intCast(now.nsec));
    }
    if (value != 0 or interval_ns != 0) {
        const its = Itimerspec{ .interval = timespec(interval_ns), .value = timespec(value) };
        const rc = sys.syscall4(.timerfd_settime, fd, settime_flags, @intFromPtr(&its), 0);
        if (sys.isErr(rc)) return closeFail(fd, rc, "timerfd_settime(clock {d}, flags {d}) failed", .{ clockid, settime_flags });
    }
    if (ticks != 0) {
        const rc = sys.syscall3(.ioctl, fd, TFD_IOC_SET_TICKS, @intFromPtr(&ticks));
        if (sys.isErr(rc)) return closeFail(fd, rc, "cannot set {d} ticks on a timerfd (TFD_IOC_SET_TICKS)", .{ticks});
    }
    return fds.moveAtLeast(fd, min);
}

/// A signalfd reading the signals of `mask`, at a number >= `min`.
pub fn makeSignalfd(mask: u64, min: i32) i32 {
    const fd = sys.syscall4(.signalfd4, std.math.maxInt(usize), @intFromPtr(&mask), 8, O_CLOEXEC | O_NONBLOCK);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "signalfd4(mask 0x{x}) failed", .{mask});
    return fds.moveAtLeast(fd, min);
}

/// An empty epoll instance at a number >= `min`; the restored tasks register
/// its files (addEpoll).
pub fn makeEpoll(min: i32) i32 {
    const fd = sys.syscall1(.epoll_create1, O_CLOEXEC);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "epoll_create1 failed", .{});
    return fds.moveAtLeast(fd, min);
}

/// kcmp(KCMP_EPOLL_TFD): 0 when fd `tfd` of `pid` is the file that the epoll
/// `epfd` of `pid` has registered as its `toff`-th registration under number
/// `tfd`, 1 or 2 when it is another file, or -errno (ENOENT: no such
/// registration, EBADF: `tfd` is not open).
pub fn epollTargetIs(pid: i32, epfd: i32, tfd: i32, toff: u32) i32 {
    std.debug.assert(epfd >= 0 and tfd >= 0);
    const slot = KcmpEpollSlot{ .efd = @intCast(epfd), .tfd = @intCast(tfd), .toff = toff };
    const rc = sys.syscall5(.kcmp, sys.fdArg(pid), sys.fdArg(pid), KCMP_EPOLL_TFD, sys.fdArg(tfd), @intFromPtr(&slot));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "kcmp of epoll fd {d}'s registration of fd {d} in {d} failed", .{ epfd, tfd, pid });
    return @intCast(rc);
}

/// Make one registration inside a restored task (its fds are in place).
/// Runs after the restore fork: no error detail, only the raw result for the
/// status record. EPOLLERR and EPOLLHUP are added by the kernel as always.
pub fn addEpoll(reg: *const abi.TreeEpoll) usize {
    std.debug.assert(reg.epfd >= 0 and reg.tfd >= 0);
    var ev = EpollEvent{ .events = reg.events, .data = reg.data };
    return sys.syscall4(.epoll_ctl, sys.fdArg(reg.epfd), EPOLL_CTL_ADD, sys.fdArg(reg.tfd), @intFromPtr(&ev));
}

test "a periodic timer that expired unread restarts a period later, or at once" {
    try std.testing.expectEqual(@as(u64, 5), firstExpiry(5, 10, 3));
    try std.testing.expectEqual(@as(u64, 10), firstExpiry(0, 10, 3));
    try std.testing.expectEqual(@as(u64, 1), firstExpiry(0, 10, 0));
    try std.testing.expectEqual(@as(u64, 0), firstExpiry(0, 0, 3));
}
