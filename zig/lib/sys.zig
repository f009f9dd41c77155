//! Raw syscalls for libcr (built without libc). Thin wrappers that return the
//! kernel's raw value; `errnoOf` turns it into a positive errno or 0.
const std = @import("std");
const linux = std.os.linux;

pub const SYS = linux.SYS;
pub const syscall0 = linux.syscall0;
pub const syscall1 = linux.syscall1;
pub const syscall2 = linux.syscall2;
pub const syscall3 = linux.syscall3;
pub const syscall4 = linux.syscall4;
pub const syscall5 = linux.syscall5;
pub const syscall6 = linux.syscall6;

/// 0 when `rc` is a success value, else the positive errno.
pub fn errnoOf(rc: usize) u16 {
    const s: isize = @bitCast(rc);
    if (s < 0 and s > -4096) return @intCast(-s);
    return 0;
}

pub fn isErr(rc: usize) bool {
    return errnoOf(rc) != 0;
}

/// Negative errno as the i32 every cr_* export returns.
pub fn neg(e: u16) i32 {
    return -@as(i32, e);
}

pub const EINTR: u16 = 4;
pub const EAGAIN: u16 = 11;
pub const ESRCH: u16 = 3;
pub const ECHILD: u16 = 10;
pub const EINVAL: u16 = 22;
pub const EIO: u16 = 5;
pub const ENOMEM: u16 = 12;
pub const ETIMEDOUT: u16 = 110;
pub const EPROTO: u16 = 71;
pub const EPIPE: u16 = 32;
pub const ENOENT: u16 = 2;
pub const EBADF: u16 = 9;
pub const E2BIG: u16 = 7;
pub const EEXIST: u16 = 17;
pub const ERANGE: u16 = 34;

pub const SIGKILL: u32 = 9;
pub const SIGTRAP: u32 = 5;
pub const SIGSTOP: u32 = 19;
pub const SIGCONT: u32 = 18;
pub const SIGCHLD: u32 = 17;

pub const WALL: u32 = 0x40000000;
pub const WNOHANG: u32 = 1;

pub fn nanosleepNs(ns: u64) void {
    const ts = linux.timespec{ .sec = @intCast(ns / 1_000_000_000), .nsec = @intCast(ns % 1_000_000_000) };
    _ = syscall2(.nanosleep, @intFromPtr(&ts), 0);
}

pub fn monotonicNs() u64 {
    var ts: linux.timespec = undefined;
    _ = syscall2(.clock_gettime, @intFromEnum(linux.CLOCK.MONOTONIC), @intFromPtr(&ts));
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

pub fn close(fd: i32) void {
    _ = syscall1(.close, @as(usize, @bitCast(@as(isize, fd))));
}

pub fn fdArg(fd: i32) usize {
    return @bitCast(@as(isize, fd));
}

/// CPUID: eax, ebx, ecx, edx of `leaf` / `sub`.
pub fn cpuid(leaf: u32, sub: u32) [4]u32 {
    var a: u32 = undefined;
    var b: u32 = undefined;
    var c: u32 = undefined;
    var d: u32 = undefined;
    asm volatile ("cpuid"
        : [a] "={eax}" (a),
          [b] "={ebx}" (b),
          [c] "={ecx}" (c),
          [d] "={edx}" (d),
        : [leaf] "{eax}" (leaf),
          [sub] "{ecx}" (sub),
    );
    return .{ a, b, c, d };
}

/// XGETBV: the extended control register `xcr` (0: the state the kernel saves).
/// Only valid when CPUID reports OSXSAVE.
pub fn xgetbv(xcr: u32) u64 {
    var lo: u32 = undefined;
    var hi: u32 = undefined;
    asm volatile ("xgetbv"
        : [lo] "={eax}" (lo),
          [hi] "={edx}" (hi),
        : [xcr] "{ecx}" (xcr),
    );
    return @as(u64, hi) << 32 | lo;
}
