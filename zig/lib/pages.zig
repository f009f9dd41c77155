//! Page transfer at dump time: copy the present pages of a frozen task into
//! the pages image, and hash them on the way (the manifest's XXH3-128).
//!
//! Two stages, on two threads, so that on a machine with a spare CPU the dump
//! runs at the speed of its slower half instead of the sum of both:
//!   - this thread: process_vm_readv pulls a chunk of the victim's memory into
//!     one of a few bounce buffers, then hashes it while it is still in cache;
//!   - a writer thread: write()s the filled buffers to the image, in order.
//! The dumper's memory use stays at NBUF buffers whatever the victim's size.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const hash = @import("hash.zig");
const linux = std.os.linux;

/// 256 KiB chunks in 8 buffers (2 MiB in all): measured on a 1 GiB dump, as
/// fast as the plain write of the same size and steady from run to run, where
/// 2 MiB chunks in 4 buffers were up to twice as slow in one run out of two:
/// the chunk stays in L2 between the copy, the hash and the write, and the
/// page cache is not asked for 2 MiB folios, which are slow to find at times.
/// Eight buffers let the writer fall behind for a moment without stalling us.
const CHUNK: usize = 256 << 10;
const NBUF: u32 = 8;
/// Every range is at least a page, so a chunk never needs more (UIO_MAXIOV is 1024).
const MAX_IOV: usize = CHUNK / 4096;
const STACK: usize = 64 << 10;

pub const Range = extern struct { addr: u64, len: u64 };

/// Flags of `prod`, the reader's word; the rest is the count of chunks
/// handed to the writer.
const DONE: u32 = 1 << 31; // no more chunks: write what is left and exit
const ABORT: u32 = 1 << 30; // stop now, the dump failed
/// Flag of `cons`, the writer's word; the rest is the count of chunks written.
const FAILED: u32 = 1 << 31;
const COUNT_MASK: u32 = (1 << 30) - 1;
/// A sleeping thread is woken only once this many chunks can be read or
/// written: on a VM a futex wake is an IPI and a vCPU wake-up, tens of µs,
/// and waking the other side for every chunk made both threads wait on each
/// other (measured: 100-250 ms of 480 for 1 GiB) instead of working.
const BATCH: u32 = NBUF / 2;

/// A count that one thread advances (with flags) and the other waits on.
const Counter = struct {
    word: std.atomic.Value(u32) = .init(0),
    /// 0, or the count the other thread sleeps until.
    want: std.atomic.Value(u32) = .init(0),

    /// Sleep until the count reaches `target` or one of `flags` is set;
    /// returns the word then. The seq_cst pair (want stored, word loaded here;
    /// word stored, want loaded in publish) means a wake is never missed.
    fn waitFor(c: *Counter, target: u32, flags: u32) u32 {
        while (true) {
            const w = c.word.load(.seq_cst);
            if (w & COUNT_MASK >= target or w & flags != 0) return w;
            c.want.store(target, .seq_cst);
            // EAGAIN (the word changed already) and EINTR both mean: look again.
            if (c.word.load(.seq_cst) == w) _ = linux.futex_4arg(&c.word.raw, .{ .cmd = .WAIT, .private = true }, w, null);
            c.want.store(0, .seq_cst);
        }
    }

    /// Store the new word (only one thread ever writes it), waking the other
    /// thread if it sleeps and can now go on.
    fn publish(c: *Counter, w: u32) void {
        c.word.store(w, .seq_cst);
        const want = c.want.load(.seq_cst);
        if (want != 0 and (w & COUNT_MASK >= want or w & ~COUNT_MASK != 0)) {
            _ = linux.futex_3arg(&c.word.raw, .{ .cmd = .WAKE, .private = true }, 1);
        }
    }
};

/// What the two threads share. Lives in the caller's frame, which outlives the
/// writer (it is joined before dump returns).
const Pipeline = struct {
    prod: Counter = .{},
    cons: Counter = .{},
    /// The writer's tid; the kernel zeroes it and wakes its futex when the
    /// writer has exited and no longer uses its stack (CLONE_CHILD_CLEARTID).
    tid: std.atomic.Value(i32) = .init(0),
    /// Set by the writer before it publishes FAILED.
    write_errno: u16 = 0,
    fd: i32,
    bufs: [*]u8,
    lens: [NBUF]usize = @splat(0),
};

fn writeAll(fd: i32, data: []const u8) u16 {
    var off: usize = 0;
    while (off < data.len) {
        const w = sys.syscall3(.write, sys.fdArg(fd), @intFromPtr(data.ptr + off), data.len - off);
        if (sys.isErr(w)) {
            if (sys.errnoOf(w) == sys.EINTR) continue;
            return sys.errnoOf(w);
        }
        // write() of a regular file or /dev/null never returns 0 for a
        // non-empty buffer; a device that did would loop here forever.
        std.debug.assert(w > 0);
        off += w;
    }
    return 0;
}

/// The writer thread: no TLS, no allocation, no signals (all blocked), only
/// write() and futex calls on memory the dumping thread keeps alive.
fn writerMain(arg: usize) callconv(.c) u8 {
    const p: *Pipeline = @ptrFromInt(arg);
    var next: u32 = 0;
    while (true) {
        var prod = p.prod.word.load(.seq_cst);
        if (prod & COUNT_MASK == next and prod & (DONE | ABORT) == 0) prod = p.prod.waitFor(next + BATCH, DONE | ABORT);
        if (prod & ABORT != 0) return 0;
        if (prod & COUNT_MASK == next) {
            std.debug.assert(prod & DONE != 0);
            return 0;
        }
        const slot = next % NBUF;
        const e = writeAll(p.fd, p.bufs[slot * CHUNK ..][0..p.lens[slot]]);
        next += 1;
        if (e != 0) {
            p.write_errno = e;
            p.cons.publish(next - 1 | FAILED);
            return 0;
        }
        p.cons.publish(next);
    }
}

fn startWriter(p: *Pipeline, stack: usize) i32 {
    // The writer must never run a signal handler: it has no TLS of its own
    // (it would see ours through %fs), so handlers installed by the runtime
    // that loaded libcr could corrupt it. It inherits our mask at clone.
    var all: linux.sigset_t = linux.sigfillset();
    var old: linux.sigset_t = undefined;
    _ = linux.sigprocmask(linux.SIG.SETMASK, &all, &old);
    defer _ = linux.sigprocmask(linux.SIG.SETMASK, &old, null);
    const flags: u32 = linux.CLONE.VM | linux.CLONE.FS | linux.CLONE.FILES | linux.CLONE.SIGHAND |
        linux.CLONE.THREAD | linux.CLONE.SYSVSEM | linux.CLONE.PARENT_SETTID | linux.CLONE.CHILD_CLEARTID;
    const rc = linux.clone(writerMain, stack + STACK, flags, @intFromPtr(p), &p.tid.raw, 0, &p.tid.raw);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot start the page writer thread", .{});
    std.debug.assert(rc > 0);
    return 0;
}

fn joinWriter(p: *Pipeline) void {
    while (true) {
        const tid = p.tid.load(.acquire);
        if (tid == 0) return;
        // Not private: the kernel's wake at thread exit is a shared-futex wake.
        _ = linux.futex_4arg(&p.tid.raw, .{ .cmd = .WAIT, .private = false }, @bitCast(tid), null);
    }
}

/// Copy `ranges` of `pid`'s memory to `fd`; `out` gets the byte count and,
/// when `want_hash`, their XXH3-128 (otherwise zeros: the benchmark's raw copy).
pub fn dump(pid: i32, ranges: []const Range, fd: i32, want_hash: bool, out: *abi.Digest) i32 {
    const region = NBUF * CHUNK + STACK;
    const map_rc = sys.syscall6(.mmap, 0, region, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(map_rc)) return err.fail(sys.errnoOf(map_rc), "cannot map the page buffers", .{});
    defer _ = sys.syscall2(.munmap, map_rc, region);

    var p = Pipeline{ .fd = fd, .bufs = @ptrFromInt(map_rc) };
    const started = startWriter(&p, map_rc + NBUF * CHUNK);
    if (started < 0) return started;
    var h = hash.Hasher.init();
    var total: u64 = 0;
    const rc = produce(&p, pid, ranges, if (want_hash) &h else null, &total);
    // DONE lets the writer drain what is queued; ABORT drops it.
    p.prod.publish(p.prod.word.raw | if (rc < 0) ABORT else DONE);
    joinWriter(&p);
    if (rc < 0) return rc;
    const cons = p.cons.word.load(.seq_cst);
    if (cons & FAILED != 0) return err.fail(p.write_errno, "writing the pages image failed", .{});
    std.debug.assert(cons == p.prod.word.raw & COUNT_MASK);
    out.* = .{ .bytes = total, .hash = if (want_hash) h.final() else @splat(0) };
    return 0;
}

/// The reading half: fill the free buffers in turn and hand them to the writer.
fn produce(p: *Pipeline, pid: i32, ranges: []const Range, h: ?*hash.Hasher, total: *u64) i32 {
    var remote: [MAX_IOV]std.posix.iovec_const = undefined;
    var ri: usize = 0; // current range
    var roff: u64 = 0; // offset inside it
    var n: u32 = 0; // chunks handed over
    while (ri < ranges.len) {
        // A free buffer: the writer is less than NBUF chunks behind. When
        // it is not, sleep until BATCH buffers are free.
        var cons = p.cons.word.load(.seq_cst);
        if (cons & FAILED == 0 and n - cons >= NBUF) cons = p.cons.waitFor(n - NBUF + BATCH, FAILED);
        if (cons & FAILED != 0) return err.fail(p.write_errno, "writing the pages image failed", .{});
        std.debug.assert(n - cons < NBUF);
        if (n >= COUNT_MASK) return err.fail(sys.E2BIG, "too many pages in one dump", .{});
        const slot = n % NBUF;
        const buf = p.bufs + slot * CHUNK;
        // Gather up to CHUNK bytes of remote ranges.
        var n_iov: usize = 0;
        var fill: usize = 0;
        while (ri < ranges.len and fill < CHUNK and n_iov < MAX_IOV) {
            const r = ranges[ri];
            std.debug.assert(r.len > 0 and r.len % 4096 == 0);
            const take: usize = @intCast(@min(r.len - roff, CHUNK - fill));
            remote[n_iov] = .{ .base = @ptrFromInt(r.addr + roff), .len = take };
            n_iov += 1;
            fill += take;
            roff += take;
            if (roff == r.len) {
                ri += 1;
                roff = 0;
            }
        }
        const local = [_]std.posix.iovec{.{ .base = buf, .len = fill }};
        const got = linux.process_vm_readv(pid, &local, remote[0..n_iov], 0);
        if (sys.isErr(got)) return err.fail(sys.errnoOf(got), "process_vm_readv of {d} at 0x{x} failed", .{ pid, @intFromPtr(remote[0].base) });
        if (got != fill) return err.fail(sys.EIO, "short read of {d}'s memory near 0x{x}", .{ pid, @intFromPtr(remote[0].base) + got });
        // Hash now, while the chunk is in cache; the writer only reads it.
        if (h) |hh| hh.update(buf[0..fill]);
        p.lens[slot] = fill;
        n += 1;
        // The store publishes lens[slot] and the buffer with the count.
        p.prod.publish(n);
        total.* += fill;
    }
    return 0;
}

fn selfPid() i32 {
    return @intCast(linux.getpid());
}

test "pages of our own memory arrive in order, with the hash of what was written" {
    // 5 ranges over 11 MiB: more chunks than buffers, ranges split across chunks.
    const len: usize = 11 << 20;
    const mem = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(4096), len);
    defer std.testing.allocator.free(mem);
    for (mem, 0..) |*b, i| b.* = @truncate(i *% 0x9E3779B1 >> 13);
    const base: u64 = @intFromPtr(mem.ptr);
    const ranges = [_]Range{
        .{ .addr = base, .len = 4096 },
        .{ .addr = base + 8192, .len = 3 << 20 },
        .{ .addr = base + (4 << 20), .len = 5 << 20 },
        .{ .addr = base + (9 << 20), .len = 4096 },
        .{ .addr = base + (10 << 20), .len = 1 << 20 },
    };
    const fd: i32 = @intCast(linux.memfd_create("pages-test", 0));
    defer sys.close(fd);
    var d: abi.Digest = undefined;
    try std.testing.expectEqual(@as(i32, 0), dump(selfPid(), &ranges, fd, true, &d));

    var want = hash.Hasher.init();
    var total: u64 = 0;
    for (ranges) |r| {
        const part = mem[r.addr - base ..][0..r.len];
        want.update(part);
        var back: [4096]u8 = undefined;
        var off: usize = 0;
        while (off < part.len) : (off += back.len) {
            const n = linux.pread(fd, &back, back.len, @intCast(total + off));
            try std.testing.expectEqual(back.len, n);
            try std.testing.expectEqualSlices(u8, part[off..][0..back.len], &back);
        }
        total += r.len;
    }
    try std.testing.expectEqual(total, d.bytes);
    try std.testing.expectEqualSlices(u8, &want.final(), &d.hash);
}

test "a failing write or read stops both threads with the error" {
    const mem = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(4096), 8 << 20);
    defer std.testing.allocator.free(mem);
    @memset(mem, 7);
    var d: abi.Digest = undefined;
    const ok = [_]Range{.{ .addr = @intFromPtr(mem.ptr), .len = mem.len }};
    // EBADF from the writer thread.
    try std.testing.expectEqual(@as(i32, -9), dump(selfPid(), &ok, -1, true, &d));
    // EFAULT from process_vm_readv, after a first good chunk went to the writer.
    const bad = [_]Range{ .{ .addr = @intFromPtr(mem.ptr), .len = 4 << 20 }, .{ .addr = 4096, .len = 4096 } };
    const fd: i32 = @intCast(linux.memfd_create("pages-test", 0));
    defer sys.close(fd);
    try std.testing.expectEqual(@as(i32, -14), dump(selfPid(), &bad, fd, true, &d));
}
