//! sock_diag for unix sockets: ask the kernel about one socket by its inode
//! (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, AF_UNIX, an exact request) and
//! parse the answer into abi.UnixDiag: type, state, peer, queue lengths,
//! shutdown and bound name. The parser is pure (tested on byte fixtures).
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");

pub const AF_NETLINK: usize = 16;
const AF_UNIX: u8 = 1;
pub const SOCK_RAW: usize = 3;
pub const SOCK_CLOEXEC: usize = 0o2000000;
pub const NETLINK_SOCK_DIAG: usize = 4;
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_RQLEN: u32 = 0x10;

const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;

/// `struct nlmsghdr`.
pub const NlMsgHdr = extern struct {
    len: u32,
    type: u16,
    flags: u16,
    seq: u32,
    pid: u32,
};

/// `struct unix_diag_req`.
const UnixDiagReq = extern struct {
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [2]u32,
};

/// `struct unix_diag_msg`.
const UnixDiagMsg = extern struct {
    family: u8,
    type: u8,
    state: u8,
    pad: u8,
    ino: u32,
    cookie: [2]u32,
};

comptime {
    std.debug.assert(@sizeOf(NlMsgHdr) == 16);
    std.debug.assert(@sizeOf(UnixDiagReq) == 24);
    std.debug.assert(@sizeOf(UnixDiagMsg) == 16);
}

pub const ParseError = error{Malformed};

/// What the kernel answered: the socket, or the errno of NLMSG_ERROR.
pub const Reply = union(enum) {
    sock: abi.UnixDiag,
    errno: u16,
};

pub fn readInt(comptime T: type, b: []const u8, off: usize) T {
    return std.mem.readInt(T, b[off..][0..@sizeOf(T)], .little);
}

pub fn alignNl(n: usize) usize {
    return (n + 3) & ~@as(usize, 3);
}

/// The attributes after a unix_diag_msg, into `out`.
fn parseAttrs(attrs: []const u8, out: *abi.UnixDiag) ParseError!void {
    var off: usize = 0;
    var rounds: usize = 0;
    // Each attribute is at least 4 bytes: the loop ends within attrs.len / 4 rounds.
    while (off + 4 <= attrs.len and rounds < 4096) : (rounds += 1) {
        const len = readInt(u16, attrs, off);
        const kind = readInt(u16, attrs, off + 2) & 0x3fff; // drop NLA_F_NESTED / NET_BYTEORDER
        if (len < 4 or off + len > attrs.len) return error.Malformed;
        const val = attrs[off + 4 .. off + len];
        switch (kind) {
            UNIX_DIAG_NAME => {
                if (val.len > abi.UNIX_PATH_MAX) return error.Malformed;
                @memcpy(out.name[0..val.len], val);
                out.name_len = @intCast(val.len);
            },
            UNIX_DIAG_PEER => {
                if (val.len < 4) return error.Malformed;
                out.has_peer = 1;
                out.peer = readInt(u32, val, 0);
            },
            UNIX_DIAG_RQLEN => {
                if (val.len < 8) return error.Malformed;
                out.rqueue = readInt(u32, val, 0);
                out.wqueue = readInt(u32, val, 4);
            },
            UNIX_DIAG_SHUTDOWN => {
                if (val.len < 1) return error.Malformed;
                out.shutdown = val[0];
            },
            else => {},
        }
        off += alignNl(len);
    }
}

/// Parse the kernel's answer to an exact request for inode `ino`: one
/// SOCK_DIAG_BY_FAMILY message (or NLMSG_ERROR), possibly followed by more.
pub fn parseReply(buf: []const u8, ino: u32) ParseError!Reply {
    var off: usize = 0;
    var rounds: usize = 0;
    while (off + @sizeOf(NlMsgHdr) <= buf.len and rounds < 64) : (rounds += 1) {
        const len = readInt(u32, buf, off);
        const kind = readInt(u16, buf, off + 4);
        if (len < @sizeOf(NlMsgHdr) or off + len > buf.len) return error.Malformed;
        const body = buf[off + @sizeOf(NlMsgHdr) .. off + len];
        switch (kind) {
            NLMSG_ERROR => {
                if (body.len < 4) return error.Malformed;
                const e = readInt(i32, body, 0);
                if (e >= 0 or e < -4095) return error.Malformed;
                return .{ .errno = @intCast(-e) };
            },
            NLMSG_DONE => return error.Malformed,
            SOCK_DIAG_BY_FAMILY => {
                if (body.len < @sizeOf(UnixDiagMsg)) return error.Malformed;
                if (body[0] != AF_UNIX or readInt(u32, body, 4) != ino) return error.Malformed;
                var out = std.mem.zeroes(abi.UnixDiag);
                out.ino = ino;
                out.type = body[1];
                out.state = body[2];
                try parseAttrs(body[@sizeOf(UnixDiagMsg)..], &out);
                return .{ .sock = out };
            },
            else => {},
        }
        off += alignNl(len);
    }
    return error.Malformed;
}

/// Ask sock_diag about the unix socket of inode `ino`. ENOENT: no unix
/// socket has that inode (another family's socket, or gone).
pub fn query(ino: u32, out: *abi.UnixDiag) i32 {
    std.debug.assert(ino != 0);
    const fd = sys.syscall3(.socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "cannot open a NETLINK_SOCK_DIAG socket", .{});
    defer _ = sys.syscall1(.close, fd);
    const Req = extern struct { hdr: NlMsgHdr, req: UnixDiagReq };
    const req = Req{
        .hdr = .{ .len = @sizeOf(Req), .type = SOCK_DIAG_BY_FAMILY, .flags = NLM_F_REQUEST, .seq = 1, .pid = 0 },
        // An exact request: the inode, and no cookie to check (INET_DIAG_NOCOOKIE).
        .req = .{ .family = AF_UNIX, .protocol = 0, .pad = 0, .states = 0xffffffff, .ino = ino, .show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, .cookie = .{ 0xffffffff, 0xffffffff } },
    };
    // sockaddr_nl of the kernel: family, then zeros.
    var kernel = [_]u8{0} ** 12;
    kernel[0] = AF_NETLINK;
    const sent = sys.syscall6(.sendto, fd, @intFromPtr(&req), @sizeOf(Req), 0, @intFromPtr(&kernel), kernel.len);
    if (sys.isErr(sent)) return err.fail(sys.errnoOf(sent), "sock_diag request for socket:[{d}] failed", .{ino});
    // One message: header, unix_diag_msg, a name of at most 108 bytes and a few small attributes.
    var buf: [1024]u8 align(4) = undefined;
    const n = sys.syscall6(.recvfrom, fd, @intFromPtr(&buf), buf.len, 0, 0, 0);
    if (sys.isErr(n)) return err.fail(sys.errnoOf(n), "sock_diag answer for socket:[{d}] failed", .{ino});
    const reply = parseReply(buf[0..n], ino) catch return err.fail(sys.EPROTO, "malformed sock_diag answer for socket:[{d}]", .{ino});
    switch (reply) {
        .errno => |e| return err.fail(e, "sock_diag knows no unix socket socket:[{d}]", .{ino}),
        .sock => |s| out.* = s,
    }
    return 0;
}

// ---------------------------------------------------------------------------

/// A fixture: one answer as the kernel lays it out (little endian).
fn fixture(comptime attrs: []const u8, comptime ino: u32) [16 + 16 + attrs.len]u8 {
    var b: [16 + 16 + attrs.len]u8 = undefined;
    std.mem.writeInt(u32, b[0..4], b.len, .little);
    std.mem.writeInt(u16, b[4..6], SOCK_DIAG_BY_FAMILY, .little);
    std.mem.writeInt(u16, b[6..8], 0, .little);
    std.mem.writeInt(u32, b[8..12], 1, .little);
    std.mem.writeInt(u32, b[12..16], 0, .little);
    b[16] = AF_UNIX;
    b[17] = 5; // SOCK_SEQPACKET
    b[18] = 1; // TCP_ESTABLISHED
    b[19] = 0;
    std.mem.writeInt(u32, b[20..24], ino, .little);
    @memset(b[24..32], 0xff);
    @memcpy(b[32..], attrs);
    return b;
}

test "a connected socket: peer, queue lengths, shutdown; no name" {
    const attrs = [_]u8{
        8, 0, UNIX_DIAG_PEER, 0, 0x39, 0x30, 0, 0, // peer 12345
        12, 0, UNIX_DIAG_RQLEN, 0, 7, 0, 0, 0, 9, 0, 0, 0, // rq 7, wq 9
        5, 0, UNIX_DIAG_SHUTDOWN, 0, 2, 0, 0, 0, // SEND_SHUTDOWN, padded to 8
    };
    const b = fixture(&attrs, 777);
    const r = try parseReply(&b, 777);
    const s = r.sock;
    try std.testing.expectEqual(@as(u32, 5), s.type);
    try std.testing.expectEqual(@as(u32, 1), s.state);
    try std.testing.expectEqual(@as(u32, 1), s.has_peer);
    try std.testing.expectEqual(@as(u32, 12345), s.peer);
    try std.testing.expectEqual(@as(u32, 7), s.rqueue);
    try std.testing.expectEqual(@as(u32, 9), s.wqueue);
    try std.testing.expectEqual(@as(u32, 2), s.shutdown);
    try std.testing.expectEqual(@as(u32, 0), s.name_len);
}

test "a bound socket: the name, abstract or not, with its padding skipped" {
    const attrs = [_]u8{ 7, 0, UNIX_DIAG_NAME, 0, 0, 'a', 'b', 0 } ++ [_]u8{ 12, 0, UNIX_DIAG_RQLEN, 0, 0, 0, 0, 0, 64, 0, 0, 0 };
    const b = fixture(&attrs, 5);
    const s = (try parseReply(&b, 5)).sock;
    try std.testing.expectEqualSlices(u8, &.{ 0, 'a', 'b' }, s.name[0..s.name_len]);
    try std.testing.expectEqual(@as(u32, 64), s.wqueue);
    try std.testing.expectEqual(@as(u32, 0), s.has_peer);
}

test "NLMSG_ERROR gives the errno; truncated or foreign answers are refused" {
    var e: [20]u8 = undefined;
    std.mem.writeInt(u32, e[0..4], 20, .little);
    std.mem.writeInt(u16, e[4..6], NLMSG_ERROR, .little);
    @memset(e[6..16], 0);
    std.mem.writeInt(i32, e[16..20], -2, .little);
    try std.testing.expectEqual(@as(u16, 2), (try parseReply(&e, 1)).errno);
    const b = fixture(&[_]u8{ 8, 0, UNIX_DIAG_PEER, 0, 1, 0, 0, 0 }, 9);
    try std.testing.expectError(error.Malformed, parseReply(b[0 .. b.len - 1], 9));
    try std.testing.expectError(error.Malformed, parseReply(&b, 10));
    const bad = fixture(&[_]u8{ 9, 0, UNIX_DIAG_PEER, 0, 1, 0, 0, 0 }, 9);
    try std.testing.expectError(error.Malformed, parseReply(&bad, 9));
}
