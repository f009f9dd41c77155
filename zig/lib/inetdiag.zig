//! sock_diag for TCP sockets: find one IPv4 or IPv6 socket by its inode and
//! parse what the kernel says of it into abi.InetDiag: state, queue lengths,
//! local and remote address and port, bound interface. inet_diag has no
//! lookup by inode (an exact request names the socket by its addresses and
//! ports, and a reuseport group answers with any member), so this dumps the
//! family's TCP sockets (NLM_F_DUMP) and keeps the one with that inode, as
//! CRIU does. The parser is pure (tested on byte fixtures).
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const nl = @import("unixdiag.zig");

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const ENOENT: u16 = 2;
const NLM_F_DUMP: u16 = 0x300;
/// Every TCP state (bit N: state N), NEW_SYN_RECV and BOUND_INACTIVE included.
const ALL_STATES: u32 = 0xffffffff;
/// recv calls at most for one dump: the loop's bound (each brings up to 32 KiB).
const MAX_BATCHES: usize = 1 << 16;

/// `struct inet_diag_req_v2` with its `struct inet_diag_sockid`.
const InetDiagReq = extern struct {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    sport: u16,
    dport: u16,
    src: [4]u32,
    dst: [4]u32,
    ifindex: u32,
    cookie: [2]u32,
};

/// Offsets in `struct inet_diag_msg` (72 bytes): family, state, timer,
/// retrans, the sockid (ports big endian, addresses, interface, cookie),
/// expires, rqueue, wqueue, uid, inode.
const MSG_SIZE: usize = 72;
const OFF_SPORT: usize = 4;
const OFF_DPORT: usize = 6;
const OFF_SRC: usize = 8;
const OFF_DST: usize = 24;
const OFF_IF: usize = 40;
const OFF_RQUEUE: usize = 56;
const OFF_WQUEUE: usize = 60;
const OFF_INODE: usize = 68;

comptime {
    std.debug.assert(@sizeOf(InetDiagReq) == 56);
}

pub const ParseError = nl.ParseError;

/// What one batch of the kernel's answer holds for inode `ino`.
pub const Batch = union(enum) {
    found: abi.InetDiag,
    /// NLMSG_DONE: the dump ended without it.
    done,
    /// Not in this batch: read the next.
    more,
    /// NLMSG_ERROR's errno.
    errno: u16,
};

fn portOf(b: []const u8, off: usize) u32 {
    return std.mem.readInt(u16, b[off..][0..2], .big);
}

/// One inet_diag_msg (the body of a SOCK_DIAG_BY_FAMILY message) as abi.InetDiag.
fn parseMsg(body: []const u8) ParseError!abi.InetDiag {
    if (body.len < MSG_SIZE) return error.Malformed;
    if (body[0] != AF_INET and body[0] != AF_INET6) return error.Malformed;
    var out = std.mem.zeroes(abi.InetDiag);
    out.family = body[0];
    out.state = body[1];
    out.sport = portOf(body, OFF_SPORT);
    out.dport = portOf(body, OFF_DPORT);
    // An IPv4 socket's address is the first 4 bytes; the kernel zeroes the rest.
    const alen: usize = if (body[0] == AF_INET) 4 else 16;
    @memcpy(out.src[0..alen], body[OFF_SRC..][0..alen]);
    @memcpy(out.dst[0..alen], body[OFF_DST..][0..alen]);
    out.ifindex = nl.readInt(u32, body, OFF_IF);
    out.rqueue = nl.readInt(u32, body, OFF_RQUEUE);
    out.wqueue = nl.readInt(u32, body, OFF_WQUEUE);
    out.ino = nl.readInt(u32, body, OFF_INODE);
    return out;
}

/// Look for inode `ino` in one batch of a dump's answer (whole netlink messages).
pub fn parseBatch(buf: []const u8, ino: u32) ParseError!Batch {
    std.debug.assert(ino != 0);
    var off: usize = 0;
    var rounds: usize = 0;
    // Each message is at least 16 bytes: the loop ends within buf.len / 16 rounds.
    while (off + @sizeOf(nl.NlMsgHdr) <= buf.len and rounds < 1 << 16) : (rounds += 1) {
        const len = nl.readInt(u32, buf, off);
        const kind = nl.readInt(u16, buf, off + 4);
        if (len < @sizeOf(nl.NlMsgHdr) or off + len > buf.len) return error.Malformed;
        const body = buf[off + @sizeOf(nl.NlMsgHdr) .. off + len];
        switch (kind) {
            nl.NLMSG_ERROR => {
                if (body.len < 4) return error.Malformed;
                const e = nl.readInt(i32, body, 0);
                if (e >= 0 or e < -4095) return error.Malformed;
                return .{ .errno = @intCast(-e) };
            },
            nl.NLMSG_DONE => return .done,
            nl.SOCK_DIAG_BY_FAMILY => {
                const m = try parseMsg(body);
                if (m.ino == ino) return .{ .found = m };
            },
            else => {},
        }
        off += nl.alignNl(len);
    }
    if (off != buf.len) return error.Malformed;
    return .more;
}

/// Find the TCP socket of inode `ino` among those of `family` (AF_INET or
/// AF_INET6) in cr's network namespace. ENOENT: no TCP socket has that inode.
pub fn query(family: u32, ino: u32, out: *abi.InetDiag) i32 {
    std.debug.assert(ino != 0);
    if (family != AF_INET and family != AF_INET6) return err.fail(sys.EINVAL, "inet_diag of address family {d}", .{family});
    const fd = sys.syscall3(.socket, nl.AF_NETLINK, nl.SOCK_RAW | nl.SOCK_CLOEXEC, nl.NETLINK_SOCK_DIAG);
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "cannot open a NETLINK_SOCK_DIAG socket", .{});
    defer _ = sys.syscall1(.close, fd);
    const Req = extern struct { hdr: nl.NlMsgHdr, req: InetDiagReq };
    var req = std.mem.zeroes(Req);
    req.hdr = .{ .len = @sizeOf(Req), .type = nl.SOCK_DIAG_BY_FAMILY, .flags = nl.NLM_F_REQUEST | NLM_F_DUMP, .seq = 1, .pid = 0 };
    req.req.family = @intCast(family);
    req.req.protocol = IPPROTO_TCP;
    req.req.states = ALL_STATES;
    var kernel = [_]u8{0} ** 12;
    kernel[0] = @intCast(nl.AF_NETLINK);
    const sent = sys.syscall6(.sendto, fd, @intFromPtr(&req), @sizeOf(Req), 0, @intFromPtr(&kernel), kernel.len);
    if (sys.isErr(sent)) return err.fail(sys.errnoOf(sent), "inet_diag request for socket:[{d}] failed", .{ino});
    // The kernel fills each recv with as many whole messages as fit.
    var buf: [32768]u8 align(4) = undefined;
    var batches: usize = 0;
    while (batches < MAX_BATCHES) : (batches += 1) {
        const n = sys.syscall6(.recvfrom, fd, @intFromPtr(&buf), buf.len, 0, 0, 0);
        if (sys.isErr(n)) return err.fail(sys.errnoOf(n), "inet_diag answer for socket:[{d}] failed", .{ino});
        if (n == 0) break;
        const batch = parseBatch(buf[0..n], ino) catch return err.fail(sys.EPROTO, "malformed inet_diag answer for socket:[{d}]", .{ino});
        switch (batch) {
            .found => |s| {
                out.* = s;
                return 0;
            },
            .errno => |e| return err.fail(e, "inet_diag refused the request for socket:[{d}]", .{ino}),
            .done => break,
            .more => {},
        }
    }
    return err.fail(ENOENT, "sock_diag knows no TCP socket socket:[{d}]", .{ino});
}

// ---------------------------------------------------------------------------

/// A fixture: one SOCK_DIAG_BY_FAMILY message as the kernel lays it out.
fn fixture(family: u8, state: u8, sport: u16, src: []const u8, rq: u32, wq: u32, ino: u32) [16 + MSG_SIZE]u8 {
    var b = [_]u8{0} ** (16 + MSG_SIZE);
    std.mem.writeInt(u32, b[0..4], b.len, .little);
    std.mem.writeInt(u16, b[4..6], nl.SOCK_DIAG_BY_FAMILY, .little);
    std.mem.writeInt(u16, b[6..8], 2, .little); // NLM_F_MULTI
    const m = b[16..];
    m[0] = family;
    m[1] = state;
    std.mem.writeInt(u16, m[OFF_SPORT..][0..2], sport, .big);
    @memcpy(m[OFF_SRC..][0..src.len], src);
    std.mem.writeInt(u32, m[OFF_RQUEUE..][0..4], rq, .little);
    std.mem.writeInt(u32, m[OFF_WQUEUE..][0..4], wq, .little);
    std.mem.writeInt(u32, m[OFF_INODE..][0..4], ino, .little);
    return b;
}

fn done() [20]u8 {
    var b = [_]u8{0} ** 20;
    std.mem.writeInt(u32, b[0..4], 20, .little);
    std.mem.writeInt(u16, b[4..6], nl.NLMSG_DONE, .little);
    return b;
}

test "a listener among others: found by its inode, port in host order, backlog and queue" {
    const other = fixture(AF_INET, 1, 22, &.{ 10, 0, 0, 1 }, 0, 0, 41);
    const mine = fixture(AF_INET, 10, 8000, &.{ 127, 0, 0, 1 }, 2, 128, 42);
    const b = other ++ mine;
    const s = (try parseBatch(&b, 42)).found;
    try std.testing.expectEqual(@as(u32, 2), s.family);
    try std.testing.expectEqual(@as(u32, 10), s.state);
    try std.testing.expectEqual(@as(u32, 8000), s.sport);
    try std.testing.expectEqual(@as(u32, 2), s.rqueue);
    try std.testing.expectEqual(@as(u32, 128), s.wqueue);
    try std.testing.expectEqualSlices(u8, &.{ 127, 0, 0, 1 }, s.src[0..4]);
    try std.testing.expectEqual(@as(u32, 0), s.ifindex);
    try std.testing.expect((try parseBatch(&other, 42)) == .more);
}

test "IPv6: all 16 address bytes; the end of the dump says it is not there" {
    const lo6 = [_]u8{0} ** 15 ++ [_]u8{1};
    const b = fixture(AF_INET6, 10, 443, &lo6, 0, 5, 7) ++ done();
    const s = (try parseBatch(&b, 7)).found;
    try std.testing.expectEqualSlices(u8, &lo6, &s.src);
    try std.testing.expectEqual(@as(u32, 443), s.sport);
    try std.testing.expect((try parseBatch(&b, 8)) == .done);
}

test "NLMSG_ERROR gives the errno; cut or foreign messages are refused" {
    var e = [_]u8{0} ** 20;
    std.mem.writeInt(u32, e[0..4], 20, .little);
    std.mem.writeInt(u16, e[4..6], nl.NLMSG_ERROR, .little);
    std.mem.writeInt(i32, e[16..20], -22, .little);
    try std.testing.expectEqual(@as(u16, 22), (try parseBatch(&e, 1)).errno);
    const b = fixture(AF_INET, 10, 1, &.{ 1, 2, 3, 4 }, 0, 0, 3);
    try std.testing.expectError(error.Malformed, parseBatch(b[0 .. b.len - 1], 3));
    var unix = b;
    unix[16] = 1; // AF_UNIX in an inet answer
    try std.testing.expectError(error.Malformed, parseBatch(&unix, 3));
    var short = b;
    std.mem.writeInt(u32, short[0..4], 16 + 40, .little); // a body shorter than inet_diag_msg
    try std.testing.expectError(error.Malformed, parseBatch(short[0 .. 16 + 40], 3));
}
