//! Page transfer at dump time: copy the present pages of a frozen task into
//! the pages image, and hash them on the way (the manifest's XXH3-128).
//!
//! Two stages, on two threads of their own, so that on a machine with a spare
//! CPU the dump runs at the speed of its slower half instead of the sum of both:
//!   - a reader: process_vm_readv pulls a chunk of the victim's memory into
//!     one of a few bounce buffers;
//!   - a writer: hashes the filled buffers and write()s them to the image, in order.
//! start() returns at once, so the caller builds the task's metadata images
//! while the pages are copied, and finish() waits for them. The dumper's
//! memory use stays at NBUF buffers whatever the victim's size.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const hash = @import("hash.zig");
const linux = std.os.linux;

/// 128 KiB chunks in 16 buffers (2 MiB in all). Measured on 1 GiB dumps,
/// interleaved: 2 MiB chunks in 4 buffers took 234-784 ms (median ~440),
/// 256 KiB in 8 224-249 ms, and 128 KiB in 16 another ~5 % less; 4 MiB or
/// more of buffers in all was slower again. Small chunks stay in L2 between
/// the copy, the hash and the write, and the page cache is not asked for 2 MiB
/// folios, which are slow to find at times (plain 4 MiB writes swing as much).
/// Many buffers let the writer fall behind for a moment without stalling the reader.
const CHUNK: usize = 128 << 10;
const NBUF: u32 = 16;
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
        // 0 in `want` means nobody waits; every real target is BATCH or more.
        std.debug.assert(target >= BATCH);
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

/// Why the reader stopped early.
const ReadFailure = enum(u8) { none, readv, short, too_many, cancelled };

/// One page dump in flight: all the threads share, at the start of a region
/// that also holds the buffers, both stacks and a copy of the ranges, so that
/// nothing of it depends on the caller's memory between start and finish.
const Job = struct {
    prod: Counter = .{},
    cons: Counter = .{},
    /// Each thread's tid; the kernel zeroes it and wakes its futex when the
    /// thread has exited and no longer uses its stack (CLONE_CHILD_CLEARTID).
    reader_tid: std.atomic.Value(i32) = .init(0),
    writer_tid: std.atomic.Value(i32) = .init(0),
    /// finish(abort) asks the reader to stop.
    cancel: std.atomic.Value(bool) = .init(false),
    /// Set by the writer before it publishes FAILED.
    write_errno: u16 = 0,
    /// Set by the reader before it publishes ABORT.
    read_failure: ReadFailure = .none,
    read_errno: u16 = 0,
    read_addr: u64 = 0,
    pid: i32,
    fd: i32,
    want_hash: bool,
    hasher: hash.Hasher = .init(),
    total: u64 = 0,
    ranges: []const Range,
    bufs: [*]u8,
    lens: [NBUF]usize = @splat(0),
    region_len: usize,
};

const HEADER: usize = std.mem.alignForward(usize, @sizeOf(Job), 4096);

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
    const p: *Job = @ptrFromInt(arg);
    var next: u32 = 0;
    while (true) {
        var prod = p.prod.word.load(.seq_cst);
        if (prod & COUNT_MASK == next and prod & (DONE | ABORT) == 0) prod = p.prod.waitFor(next + BATCH, DONE | ABORT);
        if (prod & ABORT != 0) return 0;
        if (prod & COUNT_MASK == next) {
            std.debug.assert(prod & DONE != 0);
            return 0;
        }
        const chunk = p.bufs[next % NBUF * CHUNK ..][0..p.lens[next % NBUF]];
        // Hashing here rather than in the reader brings the chunk into this
        // CPU's cache just before write() copies it: 5-9 % faster dumps
        // (interleaved runs, 1 GiB), the writer being the slower half.
        if (p.want_hash) p.hasher.update(chunk);
        const e = writeAll(p.fd, chunk);
        next += 1;
        if (e != 0) {
            p.write_errno = e;
            p.cons.publish(next - 1 | FAILED);
            return 0;
        }
        p.cons.publish(next);
    }
}

/// The reader thread: the same rules as the writer's; it reports failures
/// through the Job, for finish() to turn into an error.
fn readerMain(arg: usize) callconv(.c) u8 {
    const p: *Job = @ptrFromInt(arg);
    produce(p);
    // DONE lets the writer drain what is queued; ABORT drops it.
    p.prod.publish(p.prod.word.raw | if (p.read_failure == .none) DONE else ABORT);
    return 0;
}

fn spawn(func: *const fn (usize) callconv(.c) u8, stack_top: usize, p: *Job, tid: *std.atomic.Value(i32)) u16 {
    // The thread must never run a signal handler: it has no TLS of its own
    // (it would see ours through %fs), so handlers installed by the runtime
    // that loaded libcr could corrupt it. It inherits our mask at clone.
    var all: linux.sigset_t = linux.sigfillset();
    var old: linux.sigset_t = undefined;
    _ = linux.sigprocmask(linux.SIG.SETMASK, &all, &old);
    defer _ = linux.sigprocmask(linux.SIG.SETMASK, &old, null);
    const flags: u32 = linux.CLONE.VM | linux.CLONE.FS | linux.CLONE.FILES | linux.CLONE.SIGHAND |
        linux.CLONE.THREAD | linux.CLONE.SYSVSEM | linux.CLONE.PARENT_SETTID | linux.CLONE.CHILD_CLEARTID;
    const rc = linux.clone(func, stack_top, flags, @intFromPtr(p), &tid.raw, 0, &tid.raw);
    if (sys.isErr(rc)) return sys.errnoOf(rc);
    std.debug.assert(rc > 0);
    return 0;
}

fn join(tid: *std.atomic.Value(i32)) void {
    while (true) {
        const t = tid.load(.acquire);
        if (t == 0) return;
        // Not private: the kernel's wake at thread exit is a shared-futex wake.
        _ = linux.futex_4arg(&tid.raw, .{ .cmd = .WAIT, .private = false }, @bitCast(t), null);
    }
}

/// Start copying `ranges` of `pid`'s memory to `fd` (which must stay open
/// until finish); hash them when `want_hash` (the benchmark's raw copy does
/// not). `handle` gets what finish() takes.
pub fn start(pid: i32, ranges: []const Range, fd: i32, want_hash: bool, handle: *u64) i32 {
    const stacks = HEADER + NBUF * CHUNK;
    const ranges_off = stacks + 2 * STACK;
    const region_len = std.mem.alignForward(usize, ranges_off + ranges.len * @sizeOf(Range), 4096);
    const map_rc = sys.syscall6(.mmap, 0, region_len, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(map_rc)) return err.fail(sys.errnoOf(map_rc), "cannot map the page buffers", .{});
    const copy: [*]Range = @ptrFromInt(map_rc + ranges_off);
    @memcpy(copy[0..ranges.len], ranges);
    const p: *Job = @ptrFromInt(map_rc);
    p.* = .{ .pid = pid, .fd = fd, .want_hash = want_hash, .ranges = copy[0..ranges.len], .bufs = @ptrFromInt(map_rc + HEADER), .region_len = region_len };
    // Before any thread hashes: the choice of kernel is then only ever read.
    hash.prepare();
    var e = spawn(writerMain, map_rc + stacks + STACK, p, &p.writer_tid);
    if (e != 0) {
        _ = sys.syscall2(.munmap, map_rc, region_len);
        return err.fail(e, "cannot start the page writer thread", .{});
    }
    e = spawn(readerMain, map_rc + stacks + 2 * STACK, p, &p.reader_tid);
    if (e != 0) {
        p.prod.publish(ABORT);
        join(&p.writer_tid);
        _ = sys.syscall2(.munmap, map_rc, region_len);
        return err.fail(e, "cannot start the page reader thread", .{});
    }
    handle.* = map_rc;
    return 0;
}

/// Wait for the job of `handle` (stopping it first when `abort`) and free it;
/// `out` gets the byte count and the hash (zeros without `want_hash`).
pub fn finish(handle: u64, abort: bool, out: *abi.Digest) i32 {
    const p: *Job = @ptrFromInt(handle);
    if (abort) p.cancel.store(true, .release);
    join(&p.reader_tid);
    join(&p.writer_tid);
    defer _ = sys.syscall2(.munmap, handle, p.region_len);
    switch (p.read_failure) {
        .none => {},
        .readv => return err.fail(p.read_errno, "process_vm_readv of {d} at 0x{x} failed", .{ p.pid, p.read_addr }),
        .short => return err.fail(sys.EIO, "short read of {d}'s memory near 0x{x}", .{ p.pid, p.read_addr }),
        .too_many => return err.fail(sys.E2BIG, "too many pages in one dump", .{}),
        .cancelled => return err.fail(sys.EINTR, "page dump cancelled", .{}),
    }
    const cons = p.cons.word.raw;
    if (cons & FAILED != 0) return err.fail(p.write_errno, "writing the pages image failed", .{});
    std.debug.assert(cons == p.prod.word.raw & COUNT_MASK);
    out.* = .{ .bytes = p.total, .hash = if (p.want_hash) p.hasher.final() else @splat(0) };
    return 0;
}

/// The reading half: fill the free buffers in turn and hand them to the writer.
fn produce(p: *Job) void {
    var remote: [MAX_IOV]std.posix.iovec_const = undefined;
    var ri: usize = 0; // current range
    var roff: u64 = 0; // offset inside it
    var n: u32 = 0; // chunks handed over
    while (ri < p.ranges.len) {
        if (p.cancel.load(.acquire)) {
            p.read_failure = .cancelled;
            return;
        }
        // A free buffer: the writer is less than NBUF chunks behind. When
        // it is not, sleep until BATCH buffers are free.
        var cons = p.cons.word.load(.seq_cst);
        if (cons & FAILED == 0 and n - cons >= NBUF) cons = p.cons.waitFor(n - NBUF + BATCH, FAILED);
        // The writer failed: finish() reports its error.
        if (cons & FAILED != 0) return;
        std.debug.assert(n - cons < NBUF);
        if (n >= COUNT_MASK) {
            p.read_failure = .too_many;
            return;
        }
        const slot = n % NBUF;
        const buf = p.bufs + slot * CHUNK;
        // Gather up to CHUNK bytes of remote ranges.
        var n_iov: usize = 0;
        var fill: usize = 0;
        while (ri < p.ranges.len and fill < CHUNK and n_iov < MAX_IOV) {
            const r = p.ranges[ri];
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
        const got = linux.process_vm_readv(p.pid, &local, remote[0..n_iov], 0);
        if (sys.isErr(got) or got != fill) {
            p.read_failure = if (sys.isErr(got)) .readv else .short;
            p.read_errno = sys.errnoOf(got);
            p.read_addr = @intFromPtr(remote[0].base) + if (sys.isErr(got)) 0 else got;
            return;
        }
        p.lens[slot] = fill;
        n += 1;
        // The store publishes lens[slot] and the buffer with the count.
        p.prod.publish(n);
        p.total += fill;
    }
}

fn dumpNow(ranges: []const Range, fd: i32, out: *abi.Digest) i32 {
    var handle: u64 = 0;
    const rc = start(@intCast(linux.getpid()), ranges, fd, true, &handle);
    if (rc < 0) return rc;
    return finish(handle, false, out);
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
    try std.testing.expectEqual(@as(i32, 0), dumpNow(&ranges, fd, &d));

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
    try std.testing.expectEqual(@as(i32, -9), dumpNow(&ok, -1, &d));
    // EFAULT from process_vm_readv, after a first good chunk went to the writer.
    const bad = [_]Range{ .{ .addr = @intFromPtr(mem.ptr), .len = 4 << 20 }, .{ .addr = 4096, .len = 4096 } };
    const fd: i32 = @intCast(linux.memfd_create("pages-test", 0));
    defer sys.close(fd);
    try std.testing.expectEqual(@as(i32, -14), dumpNow(&bad, fd, &d));
    // Cancelled: whatever the threads had done, both are gone and the region freed.
    var handle: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), start(@intCast(linux.getpid()), &ok, fd, true, &handle));
    const rc = finish(handle, true, &d);
    try std.testing.expect(rc == 0 or rc == -4);
}
