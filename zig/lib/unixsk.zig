//! Unix sockets for dump and restore, done from cr itself. Dump: take a copy
//! of a frozen task's socket fd (pidfd_getfd), read its options and peek its
//! receive queue without consuming it (MSG_PEEK, message by message with
//! SO_PEEK_OFF). Restore: socket pairs with their queues put back by sending
//! them from the other end, shutdown and send buffer, listening sockets
//! bound again, all before the first fork like every other description.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const fds = @import("fds.zig");

const AF_UNIX: usize = 1;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_SEQPACKET: u32 = 5;
const SOCK_CLOEXEC: usize = 0o2000000;
const SOCK_NONBLOCK: usize = 0o4000;
const SOL_SOCKET: usize = 1;
const SO_TYPE: usize = 3;
const SO_SNDBUF: usize = 7;
const SO_SNDBUFFORCE: usize = 32;
const SO_PROTOCOL: usize = 38;
const SO_DOMAIN: usize = 39;
const SO_PEEK_OFF: usize = 42;
const MSG_PEEK: usize = 2;
const MSG_CTRUNC: u32 = 8;
const MSG_TRUNC: usize = 0x20;
const MSG_DONTWAIT: usize = 0x40;
const MSG_NOSIGNAL: usize = 0x4000;
const SCM_RIGHTS: i32 = 1;
const RCV_SHUTDOWN: u32 = 1;
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const AT_FDCWD: isize = -100;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const ENOENT: u16 = 2;
const EEXIST: u16 = 17;
const EADDRINUSE: u16 = 98;
const ECONNREFUSED: u16 = 111;
const EBADMSG: u16 = 74;
/// Messages peeked at most from one queue: the loop's bound.
pub const MAX_MESSAGES: u32 = 1 << 16;

fn getInt(fd: i32, opt: usize) union(enum) { ok: i32, errno: u16 } {
    var v: i32 = 0;
    var len: u32 = 4;
    const rc = sys.syscall5(.getsockopt, sys.fdArg(fd), SOL_SOCKET, opt, @intFromPtr(&v), @intFromPtr(&len));
    if (sys.isErr(rc)) return .{ .errno = sys.errnoOf(rc) };
    return .{ .ok = v };
}

fn setInt(fd: i32, opt: usize, v: i32) usize {
    return sys.syscall5(.setsockopt, sys.fdArg(fd), SOL_SOCKET, opt, @intFromPtr(&v), 4);
}

/// Domain, type, protocol and send buffer of socket `fd`.
pub fn sockOpts(fd: i32, out: *abi.SockOpts) i32 {
    const opts = [_]usize{ SO_DOMAIN, SO_TYPE, SO_PROTOCOL, SO_SNDBUF };
    var vals: [4]i32 = undefined;
    for (opts, 0..) |o, i| switch (getInt(fd, o)) {
        .ok => |v| vals[i] = v,
        .errno => |e| return err.fail(e, "getsockopt({d}) of fd {d} failed", .{ o, fd }),
    };
    out.* = .{ .domain = vals[0], .type = vals[1], .protocol = vals[2], .sndbuf = vals[3] };
    return 0;
}

const Iovec = extern struct { base: usize, len: usize };
const MsgHdr = extern struct {
    name: usize,
    namelen: u32,
    _pad0: u32 = 0,
    iov: usize,
    iovlen: usize,
    control: usize,
    controllen: usize,
    flags: u32,
    _pad1: u32 = 0,
};

comptime {
    std.debug.assert(@sizeOf(MsgHdr) == 56);
}

/// Close every fd an SCM_RIGHTS control message put in cr; true if there was one.
fn dropPassedFds(ctl: []const u8) bool {
    var off: usize = 0;
    var found = false;
    var rounds: usize = 0;
    // cmsghdr: len (u64), level, type (i32); data; 8-byte aligned.
    while (off + 16 <= ctl.len and rounds < 64) : (rounds += 1) {
        const len = std.mem.readInt(u64, ctl[off..][0..8], .little);
        const typ = std.mem.readInt(i32, ctl[off + 12 ..][0..4], .little);
        if (len < 16 or off + len > ctl.len) break;
        if (typ == SCM_RIGHTS) {
            found = true;
            var i: usize = off + 16;
            while (i + 4 <= off + len) : (i += 4) sys.close(std.mem.readInt(i32, ctl[i..][0..4], .little));
        }
        off += (len + 7) & ~@as(u64, 7);
    }
    return found;
}

/// Peek the receive queue of socket `fd` (type `stype`) without consuming it:
/// each message (DGRAM, SEQPACKET) or run of bytes (STREAM) in turn, from
/// offset 0 with SO_PEEK_OFF, which is put back as it was. Writes the bytes
/// into `out`, each piece's length into `lens`; `count` gets the pieces.
/// Returns the total bytes. Refuses (EBADMSG) a queue carrying fds.
pub fn peekQueue(fd: i32, stype: u32, shutdown: u32, out: []u8, lens: []u32, count: *u32) i32 {
    std.debug.assert(lens.len <= MAX_MESSAGES);
    const old = switch (getInt(fd, SO_PEEK_OFF)) {
        .ok => |v| v,
        .errno => |e| return err.fail(e, "SO_PEEK_OFF is not readable on fd {d}", .{fd}),
    };
    const set = setInt(fd, SO_PEEK_OFF, 0);
    if (sys.isErr(set)) return err.fail(sys.errnoOf(set), "cannot set SO_PEEK_OFF on fd {d}", .{fd});
    const rc = peekAll(fd, stype, shutdown, out, lens, count);
    const back = setInt(fd, SO_PEEK_OFF, old);
    if (rc >= 0 and sys.isErr(back)) return err.fail(sys.errnoOf(back), "cannot put SO_PEEK_OFF of fd {d} back to {d}", .{ fd, old });
    return rc;
}

fn peekAll(fd: i32, stype: u32, shutdown: u32, out: []u8, lens: []u32, count: *u32) i32 {
    var total: usize = 0;
    var n: u32 = 0;
    var ctl: [256]u8 align(8) = undefined;
    while (n < lens.len) {
        // A stream peek into no room would read as its end.
        if (total == out.len) return err.fail(sys.E2BIG, "more than {d} bytes queued", .{out.len});
        var iov = Iovec{ .base = @intFromPtr(out.ptr + total), .len = out.len - total };
        var msg = MsgHdr{ .name = 0, .namelen = 0, .iov = @intFromPtr(&iov), .iovlen = 1, .control = @intFromPtr(&ctl), .controllen = ctl.len, .flags = 0 };
        // MSG_TRUNC: a message's real length, to refuse one cut short.
        const trunc: usize = if (stype == SOCK_STREAM) 0 else MSG_TRUNC;
        const r = sys.syscall3(.recvmsg, sys.fdArg(fd), @intFromPtr(&msg), MSG_PEEK | MSG_DONTWAIT | trunc);
        if (sys.isErr(r)) {
            if (sys.errnoOf(r) == sys.EAGAIN) break;
            return err.fail(sys.errnoOf(r), "peeking the queue of fd {d} failed", .{fd});
        }
        if (msg.flags & MSG_CTRUNC != 0 or dropPassedFds(ctl[0..msg.controllen])) {
            return err.fail(EBADMSG, "file descriptors in flight (SCM_RIGHTS) in its queue", .{});
        }
        // 0: end of stream (the peer shut down), or an empty message, which
        // a SEQPACKET socket shut down for reading cannot tell from its end.
        if (r == 0 and (stype == SOCK_STREAM or (stype == SOCK_SEQPACKET and shutdown & RCV_SHUTDOWN != 0))) break;
        if (r > out.len - total) return err.fail(sys.E2BIG, "more than {d} bytes queued", .{out.len});
        total += r;
        lens[n] = @intCast(r);
        n += 1;
    }
    if (n == lens.len) return err.fail(sys.E2BIG, "more than {d} messages queued", .{lens.len});
    count.* = n;
    return @intCast(total);
}

/// A connected pair of `stype` at numbers >= `min`, non-blocking until the
/// caller sets the tasks' flags.
pub fn makePair(stype: u32, min: i32, out: *[2]i32) i32 {
    var p: [2]i32 = undefined;
    const rc = sys.syscall4(.socketpair, AF_UNIX, stype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, @intFromPtr(&p));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "socketpair(AF_UNIX, {d}) failed", .{stype});
    out[0] = fds.moveAtLeast(sys.fdArg(p[0]), min);
    if (out[0] < 0) {
        sys.close(p[1]);
        return out[0];
    }
    out[1] = fds.moveAtLeast(sys.fdArg(p[1]), min);
    if (out[1] < 0) {
        sys.close(out[0]);
        return out[1];
    }
    return 0;
}

/// Send `lens.len` messages (concatenated in `data`) from `fd`, so that they
/// queue at its peer. The send buffer is raised first (SO_SNDBUFFORCE): the
/// queue is charged to the sender, and it held them all before.
pub fn fill(fd: i32, data: []const u8, lens: []const u32) i32 {
    std.debug.assert(lens.len <= MAX_MESSAGES);
    // Each message costs its bytes and an skb (well under 1 KiB).
    const need = data.len + lens.len * 1024 + 65536;
    const rc = setInt(fd, SO_SNDBUFFORCE, @intCast(@min(need, std.math.maxInt(i32) / 2)));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot raise the send buffer of fd {d}", .{fd});
    var off: usize = 0;
    for (lens) |len| {
        if (off + len > data.len) return err.fail(sys.EINVAL, "message lengths exceed the {d} bytes given", .{data.len});
        // A message socket sends a message whole or not at all; a stream
        // may take part of a run (it is split into skbs): send the rest.
        var done: usize = 0;
        var rounds: u32 = 0;
        while (rounds == 0 or (done < len and rounds < 1 << 16)) : (rounds += 1) {
            const n = sys.syscall6(.sendto, sys.fdArg(fd), @intFromPtr(data.ptr + off + done), len - done, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0);
            if (sys.isErr(n)) return err.fail(sys.errnoOf(n), "cannot queue {d} bytes back into a socket", .{len});
            if (n == 0 and len != 0) break;
            done += n;
        }
        if (done != len) return err.fail(sys.EIO, "queued {d} of {d} bytes back into a socket", .{ done, len });
        off += len;
    }
    return 0;
}

/// The send buffer as it was (SO_SNDBUF shows twice what was set) and the
/// shutdown state (RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2) of a restored socket.
pub fn finish(fd: i32, sndbuf: u32, shutdown: u32) i32 {
    std.debug.assert(shutdown <= 3);
    if (sndbuf != 0) {
        const rc = setInt(fd, SO_SNDBUFFORCE, @intCast(@min(sndbuf / 2, std.math.maxInt(i32))));
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot set the send buffer of fd {d} to {d}", .{ fd, sndbuf });
    }
    if (shutdown != 0) {
        // SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2: the mask minus one.
        const rc = sys.syscall2(.shutdown, sys.fdArg(fd), shutdown - 1);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "shutdown({d}) of fd {d} failed", .{ shutdown - 1, fd });
    }
    return 0;
}

const SockaddrUn = extern struct {
    family: u16,
    path: [abi.UNIX_PATH_MAX]u8,
};

/// Whether someone listens at path `addr` (a socket file): a connect from a
/// new socket of `stype` is refused when nobody does.
fn listenedAt(stype: u32, addr: *const SockaddrUn, alen: usize) union(enum) { yes, no, errno: u16 } {
    const probe = sys.syscall3(.socket, AF_UNIX, stype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sys.isErr(probe)) return .{ .errno = sys.errnoOf(probe) };
    defer _ = sys.syscall1(.close, probe);
    const rc = sys.syscall3(.connect, probe, @intFromPtr(addr), alen);
    if (!sys.isErr(rc)) return .yes;
    return switch (sys.errnoOf(rc)) {
        ECONNREFUSED => .no,
        // A full backlog: somebody listens.
        sys.EAGAIN => .yes,
        else => |e| .{ .errno = e },
    };
}

/// A socket of `stype`, bound to `name` (sun_path bytes; abstract when it
/// starts with 0; none when empty) and listening with `backlog` when
/// `listen`, at a number >= `min`. A socket file left at the path by the
/// dumped (now dead) socket is removed when nobody listens there; one
/// somebody listens at is EADDRINUSE.
pub fn makeSocket(stype: u32, name: []const u8, listen: bool, backlog: u32, min: i32) i32 {
    std.debug.assert(name.len <= abi.UNIX_PATH_MAX);
    const fd = sys.syscall3(.socket, AF_UNIX, stype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "socket(AF_UNIX, {d}) failed", .{stype});
    var ok = false;
    defer if (!ok) {
        _ = sys.syscall1(.close, fd);
    };
    if (name.len != 0) {
        var addr = SockaddrUn{ .family = AF_UNIX, .path = [_]u8{0} ** abi.UNIX_PATH_MAX };
        @memcpy(addr.path[0..name.len], name);
        const alen = 2 + name.len;
        if (name[0] != 0) {
            const r = clearStale(stype, &addr, alen, name);
            if (r != 0) return r;
        }
        const rc = sys.syscall3(.bind, fd, @intFromPtr(&addr), alen);
        if (sys.isErr(rc)) {
            const e = sys.errnoOf(rc);
            if (e == EADDRINUSE) return err.fail(e, "address in use: {s}", .{printable(name)});
            return err.fail(e, "cannot bind a unix socket to {s}", .{printable(name)});
        }
    }
    if (listen) {
        const rc = sys.syscall2(.listen, fd, backlog);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "listen({d}) failed", .{backlog});
    }
    ok = true;
    return fds.moveAtLeast(fd, min);
}

/// Make path `name` free to bind: nothing there, or a socket file nobody
/// listens at (removed).
fn clearStale(stype: u32, addr: *const SockaddrUn, alen: usize, name: []const u8) i32 {
    var path: [abi.UNIX_PATH_MAX + 1]u8 = [_]u8{0} ** (abi.UNIX_PATH_MAX + 1);
    @memcpy(path[0..name.len], name);
    var st: std.os.linux.Stat = undefined;
    const rc = sys.syscall4(.fstatat64, @bitCast(AT_FDCWD), @intFromPtr(&path), @intFromPtr(&st), AT_SYMLINK_NOFOLLOW);
    if (sys.isErr(rc)) {
        if (sys.errnoOf(rc) == ENOENT) return 0;
        return err.fail(sys.errnoOf(rc), "cannot stat {s}", .{printable(name)});
    }
    if (st.mode & S_IFMT != S_IFSOCK) return err.fail(EEXIST, "address in use: {s} exists and is not a socket", .{printable(name)});
    switch (listenedAt(stype, addr, alen)) {
        .yes => return err.fail(EADDRINUSE, "address in use: a process listens at {s}", .{printable(name)}),
        .errno => |e| return err.fail(e, "cannot tell whether anyone listens at {s}", .{printable(name)}),
        .no => {},
    }
    const un = sys.syscall3(.unlinkat, @bitCast(AT_FDCWD), @intFromPtr(&path), 0);
    if (sys.isErr(un) and sys.errnoOf(un) != ENOENT) return err.fail(sys.errnoOf(un), "cannot remove the stale socket {s}", .{printable(name)});
    return 0;
}

/// The name as text for a message: up to its first 0 (an abstract name shows as "@...").
fn printable(name: []const u8) []const u8 {
    if (name.len != 0 and name[0] == 0) return "an abstract name";
    return name[0 .. std.mem.indexOfScalar(u8, name, 0) orelse name.len];
}

test "passed fds in a control message are found" {
    var ctl: [24]u8 align(8) = [_]u8{0} ** 24;
    std.mem.writeInt(u64, ctl[0..8], 20, .little);
    std.mem.writeInt(i32, ctl[8..12], 1, .little);
    std.mem.writeInt(i32, ctl[12..16], SCM_RIGHTS, .little);
    // fd -1: closing it does nothing.
    std.mem.writeInt(i32, ctl[16..20], -1, .little);
    try std.testing.expect(dropPassedFds(&ctl));
    std.mem.writeInt(i32, ctl[12..16], 2, .little); // SCM_CREDENTIALS
    try std.testing.expect(!dropPassedFds(&ctl));
    try std.testing.expectEqualStrings("/tmp/x", printable("/tmp/x\x00\x00"));
}
