//! Page transfer at dump time: the pages of a frozen task go into its pages
//! image through a pipe, copied once.
//!
//! The parasite runs in the task's main thread in `pages` mode: it vmsplices
//! the task's own pages into the pipe (the pipe then holds references to them,
//! no copy) and hashes them (the manifest's XXH3-128). A thread of libcr's own,
//! the splicer, splices the pipe into the image, the one copy. On two CPUs
//! the hash and the copy run side by side, and the dump runs at about the
//! speed of a plain write() of the same bytes.
//!
//! start() returns once the parasite runs, so the caller collects the next
//! task meanwhile; finish() waits for the parasite's word that it is done,
//! then removes it and cures the task (inject.zig: registers, sigmask,
//! xstate; no code of the task's is ever changed).
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");
const inject = @import("inject.zig");
const thread = @import("thread.zig");
const hash = @import("hash.zig");
const gather = @import("gather.zig");
const fds = @import("fds.zig");
const linux = std.os.linux;

const PAGE: usize = 4096;
/// The pipe's size, and the most one splice moves: the parasite gathers as
/// much per vmsplice (parasite/main.zig CHUNK). 1 MiB is the default
/// /proc/sys/fs/pipe-max-size. Measured on 1 GiB: 1 MiB splices 218 ms,
/// 64 KiB ones 256 ms (more calls, each taking the pipe's lock).
const PIPE_SIZE: usize = 1 << 20;
const SPLICER_STACK: usize = 64 << 10;
/// Where the splicer reads what it can no longer write (after a write error),
/// so that the parasite can finish and be cured as usual.
const DRAIN_BUF: usize = 64 << 10;
/// finish() gives up on a parasite that moved no byte for this long.
const STALL_MS: u64 = 10_000;

const F_SETPIPE_SZ: usize = 1031;
const SPLICE_F_MOVE: usize = 1;
const SPLICE_F_NONBLOCK: usize = 2;
const O_NONBLOCK: usize = 0o4000;

/// One page dump in flight, at the start of a region of the dumper's that
/// also holds the splicer's stack and drain buffer.
const Job = struct {
    run: inject.ParasiteRun,
    pid: i32,
    /// Our read end of the task's page pipe.
    rfd: i32,
    out_fd: i32,
    /// The unreadable VMAs (ProtRange array in the area) the parasite opens for reading.
    unreadable: u64 = 0,
    unreadable_count: usize = 0,
    splicer_tid: std.atomic.Value(i32) = .init(0),
    /// Bytes spliced into the image, and read and dropped after a write error.
    written: std.atomic.Value(u64) = .init(0),
    drained: std.atomic.Value(u64) = .init(0),
    /// Set by finish when the pipe may never see EOF (the parasite did not close it).
    stop: std.atomic.Value(bool) = .init(false),
    /// The splicer's first write error.
    write_errno: u16 = 0,

    fn args(j: *const Job) u64 {
        return j.run.area + j.run.layout.args;
    }

    fn moved(ctx: usize) u64 {
        const j: *const Job = @ptrFromInt(ctx);
        return j.written.load(.acquire) + j.drained.load(.acquire);
    }
};

const HEADER: usize = std.mem.alignForward(usize, @sizeOf(Job), PAGE);
const REGION_LEN: usize = HEADER + SPLICER_STACK + DRAIN_BUF;

/// Start dumping `ranges` of frozen task `pid` (its main thread, stopped
/// and cured of any earlier parasite) to `out_fd`, which must stay open until
/// finish; `unreadable` are the VMAs without PROT_READ that hold some of them.
/// `site` is where injected code runs (see inject.zig); the parasite takes
/// the main thread's rseq registration `rseq` off while it runs. `handle`
/// gets what finish() takes; nothing of the task is changed on failure.
pub fn start(pid: i32, site: abi.InjectSite, blob: []const u8, ranges: []const abi.PageRange, unreadable: []const abi.ProtRange, rseq: abi.RseqReg, out_fd: i32, handle: *u64) i32 {
    std.debug.assert(blob.len > 0);
    if (ranges.len == 0) {
        // Nothing to send: no parasite, an empty image.
        handle.* = 0;
        return 0;
    }
    const map_rc = sys.syscall6(.mmap, 0, REGION_LEN, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(map_rc)) return err.fail(sys.errnoOf(map_rc), "cannot map the page dump's state", .{});
    const j: *Job = @ptrFromInt(map_rc);
    j.* = .{ .run = undefined, .pid = pid, .rfd = -1, .out_fd = out_fd };
    const extras_len = ranges.len * @sizeOf(abi.PageRange) + unreadable.len * @sizeOf(abi.ProtRange);
    var rc = j.run.open(pid, site, inject.AreaLayout.of(blob.len, extras_len));
    if (rc == 0) rc = launch(j, blob, ranges, unreadable, rseq);
    if (rc != 0) {
        const saved = err.save();
        _ = cleanUp(j);
        saved.restore();
        _ = sys.syscall2(.munmap, map_rc, REGION_LEN);
        return rc;
    }
    handle.* = map_rc;
    return 0;
}

/// The steps of start() after the run opened; cleanUp undoes whichever were done.
fn launch(j: *Job, blob: []const u8, ranges: []const abi.PageRange, unreadable: []const abi.ProtRange, rseq: abi.RseqReg) i32 {
    const r = &j.run;
    // The pipe is the task's (vmsplice takes the task's own pages); pipe2
    // writes its two fds where the arguments go later.
    const fds_addr = j.args() + @offsetOf(abi.ParasiteArgs, "pages") + @offsetOf(abi.ParasitePages, "pipe");
    const pr = r.s.syscall(@intFromEnum(sys.SYS.pipe2), .{ fds_addr, 0o2000000, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
    if (sys.isErr(pr)) return err.fail(sys.errnoOf(pr), "cannot create the page pipe in {d}", .{j.pid});
    var pipe: [2]i32 = undefined;
    if (inject.readRemote(j.pid, fds_addr, std.mem.asBytes(&pipe)) != 0) return sys.neg(sys.EIO);
    r.task_fds[inject.ParasiteRun.PIPE_READ] = pipe[0];
    r.task_fds[inject.ParasiteRun.PIPE_WRITE] = pipe[1];

    // Our end of it (the parasite closes the task's: cr's death is EPIPE to it).
    const got = fds.grabFd(j.pid, pipe[0]);
    if (got < 0) return got;
    j.rfd = got;
    // Best effort: a smaller pipe is only slower.
    _ = sys.syscall3(.fcntl, sys.fdArg(j.rfd), F_SETPIPE_SZ, PIPE_SIZE);

    var args = std.mem.zeroes(abi.ParasiteArgs);
    args.magic = abi.PARASITE_MAGIC;
    args.mode = .pages;
    args.pages.ranges = r.area + r.layout.extras;
    args.pages.range_count = ranges.len;
    j.unreadable = args.pages.ranges + ranges.len * @sizeOf(abi.PageRange);
    j.unreadable_count = unreadable.len;
    args.pages.unreadable = j.unreadable;
    args.pages.unreadable_count = unreadable.len;
    args.pages.pipe = pipe;
    args.pages.err = -1;
    // While the parasite runs, the kernel rewrites the thread's rseq area
    // (cpu_id, mm_cid) at every return to user space: a page sent, then
    // changed before the splicer copies it, would not match its hash. The
    // parasite takes the registration off first thing and puts it back if
    // cr dies; otherwise cr does, once every page is in the image.
    args.ctl = r.ctlArgs(rseq);
    const w = inject.writeParasite(j.pid, r.area, blob, r.layout.args, &args, &.{ std.mem.sliceAsBytes(ranges), std.mem.sliceAsBytes(unreadable) });
    if (w != 0) return w;

    const e = thread.spawn(splicerMain, @intFromPtr(j) + HEADER + SPLICER_STACK, @intFromPtr(j), &j.splicer_tid);
    if (e != 0) return err.fail(e, "cannot start the page splicer thread", .{});
    const rc = r.start();
    if (rc != 0) {
        // The splicer waits on a pipe whose write end stays open: tell it to go.
        j.stop.store(true, .release);
        thread.join(&j.splicer_tid);
        return rc;
    }
    return 0;
}

/// Undo what start() did: the parasite stopped, whatever it left (VMAs
/// still open for reading, the rseq registration off), its run (fds, area,
/// cure), our fd. Returns the first error.
fn cleanUp(j: *Job) i32 {
    var first: i32 = j.run.stop();
    if (first == 0 and j.run.area != 0) {
        var a: abi.ParasiteArgs = undefined;
        if (inject.readRemote(j.pid, j.args(), std.mem.asBytes(&a)) != 0) {
            first = sys.neg(sys.EIO);
        } else {
            if (a.magic == abi.PARASITE_MAGIC and a.pages.opened != 0) first = protectAgain(j);
            if (a.magic == abi.PARASITE_MAGIC and a.ctl.rseq_off != 0) {
                const rq = a.ctl.rseq;
                const rr = j.run.s.syscall(@intFromEnum(sys.SYS.rseq), .{ rq.ptr, rq.len, 0, rq.sig, 0, 0 }) catch null;
                const rc: i32 = if (rr == null) sys.neg(sys.EIO) else if (sys.isErr(rr.?)) err.fail(sys.errnoOf(rr.?), "cannot register the rseq area of {d} again", .{j.pid}) else 0;
                if (first == 0) first = rc;
            }
        }
    }
    const closed = j.run.close();
    if (first == 0) first = closed;
    if (j.rfd >= 0) sys.close(j.rfd);
    j.rfd = -1;
    return first;
}

/// Put back the protection of every unreadable VMA the parasite may have
/// left open for reading (mprotect to the same value twice changes nothing).
fn protectAgain(j: *Job) i32 {
    for (0..j.unreadable_count) |i| {
        var v: abi.ProtRange = undefined;
        if (inject.readRemote(j.pid, j.unreadable + i * @sizeOf(abi.ProtRange), std.mem.asBytes(&v)) != 0) return sys.neg(sys.EIO);
        const rc = j.run.s.syscall(@intFromEnum(sys.SYS.mprotect), .{ v.start, v.len, v.prot, 0, 0, 0 }) catch return sys.neg(sys.EIO);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot protect 0x{x} in {d} again", .{ v.start, j.pid });
    }
    return 0;
}

/// The splicer: the pipe into the image until EOF (the parasite closed the
/// write end, or the task is gone). After a write error it keeps reading and
/// dropping, so the parasite never blocks on a full pipe. No TLS, no
/// allocation, no signals (all blocked), only memory the Job keeps alive.
fn splicerMain(arg: usize) callconv(.c) u8 {
    const j: *Job = @ptrFromInt(arg);
    const drain: [*]u8 = @ptrFromInt(arg + HEADER + SPLICER_STACK);
    while (true) {
        const rc = if (j.write_errno == 0)
            sys.syscall6(.splice, sys.fdArg(j.rfd), 0, sys.fdArg(j.out_fd), 0, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        else
            sys.syscall3(.read, sys.fdArg(j.rfd), @intFromPtr(drain), DRAIN_BUF);
        if (rc == 0) return 0;
        if (!sys.isErr(rc)) {
            _ = (if (j.write_errno == 0) &j.written else &j.drained).fetchAdd(rc, .release);
            continue;
        }
        const e = sys.errnoOf(rc);
        if (e == sys.EINTR) continue;
        if (e == sys.EAGAIN) {
            // The pipe is empty: wait for the parasite, or for finish() to say stop.
            if (j.stop.load(.acquire)) return 0;
            var pfd = [_]linux.pollfd{.{ .fd = j.rfd, .events = linux.POLL.IN, .revents = 0 }};
            _ = linux.poll(&pfd, 1, 100);
            continue;
        }
        if (j.write_errno != 0) return 0; // even reading fails: nothing more to do
        // splice fails on the pipe only with EAGAIN: this is the image's error.
        j.write_errno = e;
        // The drain reads block: O_NONBLOCK on our end keeps them stoppable.
        _ = sys.syscall3(.fcntl, sys.fdArg(j.rfd), linux.F.SETFL, O_NONBLOCK);
    }
}

/// Bytes the splicer has moved so far for `handle` (0 for none): progress.
pub fn progress(handle: u64) u64 {
    if (handle == 0) return 0;
    return Job.moved(handle);
}

/// Wait for the page dump of `handle` and cure the task; `out` gets the bytes
/// sent and their XXH3-128. Must follow a successful start(), once.
pub fn finish(handle: u64, out: *abi.Digest) i32 {
    if (handle == 0) {
        out.* = .{ .bytes = 0, .hash = hash.Hasher.init().final() };
        return 0;
    }
    const j: *Job = @ptrFromInt(handle);
    defer _ = sys.syscall2(.munmap, handle, REGION_LEN);
    std.debug.assert(j.run.running);
    // A failed image write does not stall the parasite: the splicer drains the pipe, and reports the error.
    var first = j.run.waitFor(abi.PARASITE_DONE, "its pages were being dumped", STALL_MS, Job.moved, @intFromPtr(j));
    var res = std.mem.zeroes(abi.ParasitePages);
    if (first == 0) {
        const at = j.args() + @offsetOf(abi.ParasiteArgs, "pages");
        if (inject.readRemote(j.pid, at, std.mem.asBytes(&res)) != 0) first = sys.neg(sys.EIO);
    }
    if (first == 0 and res.err != 0) first = parasiteError(j.pid, &res);
    if (res.closed == 1) {
        j.run.task_fds[inject.ParasiteRun.PIPE_WRITE] = -1;
    } else {
        // The write end stays open in the task: the splicer would wait forever.
        j.stop.store(true, .release);
    }
    thread.join(&j.splicer_tid);
    // Only now, with every page in the image, may the task change again.
    const saved = err.save();
    first = err.firstOf(first, &saved, cleanUp(j));
    if (first == 0 and j.write_errno != 0) first = err.fail(j.write_errno, "writing the pages image of {d} failed", .{j.pid});
    const written = j.written.load(.acquire);
    if (first == 0 and written != res.bytes) first = err.fail(sys.EIO, "{d} bytes of {d}'s pages reached the image, the parasite sent {d}", .{ written, j.pid, res.bytes });
    if (first != 0) return first;
    out.* = .{ .bytes = res.bytes, .hash = res.hash };
    return 0;
}

fn parasiteError(pid: i32, res: *const abi.ParasitePages) i32 {
    const e: u16 = if (res.err < 0 and res.err > -4096) @intCast(-res.err) else sys.EIO;
    return switch (@as(abi.PagesStep, @enumFromInt(res.err_step))) {
        .vmsplice => err.fail(e, "cannot dump the page at 0x{x} of {d} (vmsplice)", .{ res.err_addr, pid }),
        .open_unreadable => err.fail(e, "cannot open the unreadable mapping at 0x{x} of {d} for reading", .{ res.err_addr, pid }),
        .close_unreadable => err.fail(e, "cannot protect the mapping at 0x{x} of {d} again", .{ res.err_addr, pid }),
        .close => err.fail(e, "the page parasite in {d} cannot close its pipe", .{pid}),
        .bad_range => err.fail(e, "a page range of {d} is not whole pages", .{pid}),
        else => err.fail(e, "page parasite in {d}: step {d} failed", .{ pid, res.err_step }),
    };
}

/// The benchmark's raw copy: `ranges` of `pid` pulled with process_vm_readv
/// into one buffer, chunk after chunk, and thrown away. Returns the bytes copied.
pub fn rawCopy(pid: i32, ranges: []const abi.PageRange, out: *u64) i32 {
    const CHUNK: usize = 1 << 20;
    const buf = sys.syscall6(.mmap, 0, CHUNK, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(buf)) return err.fail(sys.errnoOf(buf), "cannot map the copy buffer", .{});
    defer _ = sys.syscall2(.munmap, buf, CHUNK);
    var remote: [CHUNK / PAGE]gather.Iovec = undefined;
    var cursor: gather.Cursor = .{ .ranges = ranges };
    var total: u64 = 0;
    // Bounded: every round takes at least a page of the ranges.
    while (!cursor.done()) {
        var fill: usize = 0;
        const n = cursor.next(&remote, CHUNK, &fill) catch return err.fail(sys.EINVAL, "a page range is not whole pages", .{});
        const local = [_]std.posix.iovec{.{ .base = @ptrFromInt(buf), .len = fill }};
        const got = linux.process_vm_readv(pid, &local, @ptrCast(remote[0..n]), 0);
        if (sys.isErr(got)) return err.fail(sys.errnoOf(got), "process_vm_readv of {d} failed", .{pid});
        if (got != fill) return err.fail(sys.EIO, "short read of {d}'s memory", .{pid});
        total += fill;
    }
    out.* = total;
    return 0;
}

test "the raw copy reads every range of our own memory" {
    const mem = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(PAGE), 3 << 20);
    defer std.testing.allocator.free(mem);
    @memset(mem, 1);
    const base: u64 = @intFromPtr(mem.ptr);
    const ranges = [_]abi.PageRange{ .{ .addr = base, .len = PAGE }, .{ .addr = base + 2 * PAGE, .len = 2 << 20 } };
    var n: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), rawCopy(@intCast(linux.getpid()), &ranges, &n));
    try std.testing.expectEqual(@as(u64, PAGE + (2 << 20)), n);
    const bad = [_]abi.PageRange{.{ .addr = PAGE, .len = PAGE }};
    try std.testing.expectEqual(@as(i32, -14), rawCopy(@intCast(linux.getpid()), &bad, &n));
}
