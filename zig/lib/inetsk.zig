//! TCP listening sockets for dump and restore, done from cr itself. Dump:
//! the options a server sets that change how the socket (and the connections
//! it accepts, which inherit them) behave, read with getsockopt through a
//! copy of the frozen task's fd. Restore: a new socket with those options,
//! bound to the same address and port and listening with the same backlog,
//! before the first fork like every other description.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const fds = @import("fds.zig");

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_STREAM: usize = 1;
const SOCK_CLOEXEC: usize = 0o2000000;
const SOCK_NONBLOCK: usize = 0o4000;
const IPPROTO_TCP: usize = 6;
const SOL_SOCKET: usize = 1;
const IPPROTO_IPV6: usize = 41;
const SO_REUSEADDR: usize = 2;
const SO_KEEPALIVE: usize = 9;
const SO_REUSEPORT: usize = 15;
const TCP_NODELAY: usize = 1;
const IPV6_V6ONLY: usize = 26;
const EADDRINUSE: u16 = 98;

/// One option: its level and name, and its bit in abi.INET_OPT_*.
const Opt = struct { level: usize, name: usize, bit: u32 };
/// The options in the order a restore sets them: all before bind (V6ONLY and
/// the two REUSE* must be; the others are inherited by accepted connections).
const OPTS = [_]Opt{
    .{ .level = SOL_SOCKET, .name = SO_REUSEADDR, .bit = abi.INET_OPT_REUSEADDR },
    .{ .level = SOL_SOCKET, .name = SO_REUSEPORT, .bit = abi.INET_OPT_REUSEPORT },
    .{ .level = IPPROTO_IPV6, .name = IPV6_V6ONLY, .bit = abi.INET_OPT_V6ONLY },
    .{ .level = IPPROTO_TCP, .name = TCP_NODELAY, .bit = abi.INET_OPT_NODELAY },
    .{ .level = SOL_SOCKET, .name = SO_KEEPALIVE, .bit = abi.INET_OPT_KEEPALIVE },
};

/// The options of TCP socket `fd` of `family` as abi.INET_OPT_* bits
/// (V6ONLY only asked of an IPv6 socket).
pub fn readOpts(fd: i32, family: u32) i32 {
    var bits: u32 = 0;
    for (OPTS) |o| {
        if (o.level == IPPROTO_IPV6 and family != AF_INET6) continue;
        var v: i32 = 0;
        var len: u32 = 4;
        const rc = sys.syscall5(.getsockopt, sys.fdArg(fd), o.level, o.name, @intFromPtr(&v), @intFromPtr(&len));
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "getsockopt({d}, {d}) of fd {d} failed", .{ o.level, o.name, fd });
        if (v != 0) bits |= o.bit;
    }
    std.debug.assert(bits & ~abi.INET_OPT_ALL == 0);
    return @intCast(bits);
}

const SockaddrIn = extern struct { family: u16, port: u16, addr: [4]u8, zero: [8]u8 };
const SockaddrIn6 = extern struct { family: u16, port: u16, flowinfo: u32, addr: [16]u8, scope_id: u32 };

comptime {
    std.debug.assert(@sizeOf(SockaddrIn) == 16);
    std.debug.assert(@sizeOf(SockaddrIn6) == 28);
}

/// A TCP socket of `family` with options `opts` (abi.INET_OPT_* bits), bound
/// to `addr` (4 or 16 bytes, network order) and `port` and listening with
/// `backlog`, at a number >= `min`, non-blocking until the caller sets the
/// tasks' flags. The port taken by another socket is EADDRINUSE.
pub fn makeListener(family: u32, addr: []const u8, port: u16, backlog: u32, opts: u32, min: i32) i32 {
    std.debug.assert(opts & ~abi.INET_OPT_ALL == 0);
    std.debug.assert(addr.len == if (family == AF_INET) @as(usize, 4) else 16);
    const fd = sys.syscall3(.socket, family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "socket({d}, SOCK_STREAM) failed", .{family});
    var ok = false;
    defer if (!ok) {
        _ = sys.syscall1(.close, fd);
    };
    for (OPTS) |o| {
        // IPV6_V6ONLY is set either way on IPv6: its default (a sysctl) may differ from the dump's host.
        if (o.level == IPPROTO_IPV6 and family != AF_INET6) continue;
        const v: i32 = @intFromBool(opts & o.bit != 0);
        if (v == 0 and o.level != IPPROTO_IPV6) continue;
        const rc = sys.syscall5(.setsockopt, fd, o.level, o.name, @intFromPtr(&v), 4);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "setsockopt({d}, {d}) failed", .{ o.level, o.name });
    }
    const rc = if (family == AF_INET) blk: {
        var sa = SockaddrIn{ .family = AF_INET, .port = std.mem.nativeToBig(u16, port), .addr = undefined, .zero = [_]u8{0} ** 8 };
        @memcpy(&sa.addr, addr);
        break :blk sys.syscall3(.bind, fd, @intFromPtr(&sa), @sizeOf(SockaddrIn));
    } else blk: {
        var sa = SockaddrIn6{ .family = AF_INET6, .port = std.mem.nativeToBig(u16, port), .flowinfo = 0, .addr = undefined, .scope_id = 0 };
        @memcpy(&sa.addr, addr);
        break :blk sys.syscall3(.bind, fd, @intFromPtr(&sa), @sizeOf(SockaddrIn6));
    };
    if (sys.isErr(rc)) {
        const e = sys.errnoOf(rc);
        // The caller names the address; the message says what happened.
        if (e == EADDRINUSE) return err.fail(e, "address in use", .{});
        return err.fail(e, "cannot bind a TCP socket to port {d}", .{port});
    }
    const l = sys.syscall2(.listen, fd, backlog);
    if (sys.isErr(l)) return err.fail(sys.errnoOf(l), "listen({d}) failed", .{backlog});
    ok = true;
    return fds.moveAtLeast(fd, min);
}
