//! libcr: the native half of cr, loaded by Bun through bun:ffi (src/native is
//! the only importer). Built without libc. Every export returns 0 (or a
//! non-negative result) on success and -errno on failure, with the detail in
//! cr_last_error().
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");
const inject = @import("inject.zig");
const pages = @import("pages.zig");
const restore = @import("restore.zig");
const probe = @import("probe.zig");
const gadgets = @import("gadgets.zig");
const fds = @import("fds.zig");
const fdkinds = @import("fdkinds.zig");
const inotify = @import("inotify.zig");
const tty = @import("tty.zig");
const hash = @import("hash.zig");
const scan = @import("scan.zig");
const interrupt = @import("interrupt.zig");
const unixdiag = @import("unixdiag.zig");
const unixsk = @import("unixsk.zig");
const inetdiag = @import("inetdiag.zig");
const inetsk = @import("inetsk.zig");
const nonzero = @import("nonzero.zig");

export fn cr_abi_layout(out: *abi.Layout) void {
    out.* = abi.layout();
}

export fn cr_last_error(out: [*]u8, cap: usize) usize {
    return err.copyTo(out, cap);
}

/// The `syscall; ret` and rt_sigreturn sequences of `pid`'s code, searched
/// in the executable `ranges` in the order given (see gadgets.zig); fills
/// `site`'s first two fields.
export fn cr_find_gadgets(pid: i32, ranges: [*]const abi.PageRange, count: u32, site: *abi.InjectSite) i32 {
    err.clear();
    var f: gadgets.Found = .{};
    const rc = gadgets.find(pid, ranges[0..count], &f);
    site.syscall_ret = f.syscall_ret;
    site.sigreturn = f.sigreturn;
    return rc;
}

export fn cr_cpu_xstate(out: *abi.CpuXstate) void {
    probe.cpuXstate(out);
}

export fn cr_check(out: *abi.CheckReport) i32 {
    err.clear();
    probe.run(out);
    return 0;
}

/// Note SIGHUP, SIGINT, SIGQUIT and SIGTERM instead of dying of them, while
/// cr holds a tree (see interrupt.zig), until cr_release_stop_signals.
export fn cr_hold_stop_signals() i32 {
    err.clear();
    return interrupt.hold();
}

/// The stop signal noted since cr_hold_stop_signals (0: none).
export fn cr_stop_signal() u32 {
    return interrupt.pending();
}

/// Put the old actions back; returns the stop signal noted meanwhile (0: none).
export fn cr_release_stop_signals() u32 {
    return interrupt.release();
}

/// Make cr a child subreaper: orphans of the trees it restores (and of the
/// tests' workloads) come back to it to be reaped, instead of to a slow PID 1.
export fn cr_set_child_subreaper() i32 {
    const rc = sys.syscall5(.prctl, 36, 1, 0, 0, 0);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "prctl(PR_SET_CHILD_SUBREAPER) failed", .{});
    return 0;
}

export fn cr_seize(tid: i32) i32 {
    err.clear();
    return pt.seize(tid);
}

export fn cr_retrap(tid: i32) i32 {
    err.clear();
    return pt.retrap(tid);
}

export fn cr_detach(tid: i32, sig: i32) i32 {
    err.clear();
    return pt.detach(tid, @intCast(sig));
}

export fn cr_kill(pid: i32, sig: i32) i32 {
    const rc = sys.syscall2(.kill, sys.fdArg(pid), @intCast(sig));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "kill({d}, {d}) failed", .{ pid, sig });
    return 0;
}

/// Stop seized `tid`'s seccomp filters from applying to what cr injects.
export fn cr_suspend_seccomp(tid: i32) i32 {
    err.clear();
    return pt.suspendSeccomp(tid);
}

/// Seccomp filter `index` (0: oldest) of seized `tid` into `out` (`cap`
/// bytes); returns its instruction count, -ENOENT past the newest.
export fn cr_seccomp_filter(tid: i32, index: u32, out: [*]u8, cap: usize, flags: *u64) i32 {
    err.clear();
    return pt.seccompFilter(tid, index, out[0..cap], flags);
}

export fn cr_read_thread(tid: i32, out: *abi.ThreadState) i32 {
    err.clear();
    return pt.readThread(tid, out);
}

export fn cr_peek_siginfo(tid: i32, shared: i32, out: [*]u8, max: u32) i32 {
    err.clear();
    return pt.peekSiginfo(tid, shared != 0, out, max);
}

/// `tids`: every thread of the task, the main thread first; `extras` gets one
/// record per thread, in the same order.
/// `timer_ids`: the task's POSIX timers, read into `out.posix_timers` in order.
export fn cr_run_parasite(tids: [*]const i32, count: u32, site: *const abi.InjectSite, blob: [*]const u8, blob_len: usize, timer_ids: [*]const i32, timer_count: u32, out: *abi.ParasiteState, extras: [*]abi.ThreadExtra) i32 {
    err.clear();
    if (blob_len == 0) return err.fail(sys.EINVAL, "empty parasite blob", .{});
    if (timer_count > abi.MAX_POSIX_TIMERS) return err.fail(sys.EINVAL, "{d} POSIX timers: more than {d}", .{ timer_count, abi.MAX_POSIX_TIMERS });
    if (count == 0 or count > abi.MAX_THREADS) return err.fail(sys.EINVAL, "{d} threads: not in 1..{d}", .{ count, abi.MAX_THREADS });
    if (site.syscall_ret == 0 or site.sigreturn == 0) return err.fail(sys.EINVAL, "no place to run injected code in {d}", .{tids[0]});
    return inject.runParasite(tids[0..count], site.*, blob[0..blob_len], timer_ids[0..timer_count], out, extras[0..count]);
}

/// The runs of pages to save of `vmas`, from address `from` on: fills `out`
/// (`cap` runs at most), returns how many, and sets `next` to the address to
/// resume from when `out` filled up, else to 0.
export fn cr_scan_pages(pid: i32, vmas: [*]const abi.ScanVma, count: u32, from: u64, out: [*]abi.PageRange, cap: u32, next: *u64) i32 {
    err.clear();
    if (cap == 0) return err.fail(sys.EINVAL, "no room for page runs", .{});
    return scan.scan(pid, vmas[0..count], from, out[0..cap], next, .scan_ioctl);
}

/// Start dumping the pages of `ranges` of frozen task `pid` into `fd` (see
/// pages.zig: the parasite `blob` runs in the task, injected at `site`, and
/// opens the `unreadable` VMAs for reading meanwhile; the main thread's rseq
/// registration (`rseq_len` 0: none) is off until the cure);
/// `handle` gets the job for cr_dump_pages_finish, which must follow,
/// whatever happens in between.
export fn cr_dump_pages_start(pid: i32, site: *const abi.InjectSite, blob: [*]const u8, blob_len: usize, ranges: [*]const abi.PageRange, count: u32, unreadable: [*]const abi.ProtRange, unreadable_count: u32, rseq_ptr: u64, rseq_len: u32, rseq_sig: u32, fd: i32, handle: *u64) i32 {
    err.clear();
    if (blob_len == 0) return err.fail(sys.EINVAL, "empty parasite blob", .{});
    const rseq: abi.RseqReg = .{ .ptr = rseq_ptr, .len = rseq_len, .sig = rseq_sig };
    if (site.syscall_ret == 0 or site.sigreturn == 0) return err.fail(sys.EINVAL, "no place to run injected code in {d}", .{pid});
    return pages.start(pid, site.*, blob[0..blob_len], ranges[0..count], unreadable[0..unreadable_count], rseq, fd, handle);
}

/// Bytes of the page dump of `handle` in its image so far (or read and
/// dropped after a write error): a progress figure, read while it runs.
export fn cr_dump_pages_written(handle: u64) u64 {
    return pages.progress(handle);
}

/// Wait for the page dump of `handle` and cure its task; `out` gets how
/// many bytes were sent and their XXH3-128.
export fn cr_dump_pages_finish(handle: u64, out: *abi.Digest) i32 {
    err.clear();
    return pages.finish(handle, out);
}

/// Copy the non-zero pages of the first `size` bytes of `src` into `out`
/// (see nonzero.zig); `runs` (room for `cap`) and `count` get where they went,
/// `digest` the bytes written and their XXH3-128.
export fn cr_copy_nonzero_pages(src: i32, out: i32, size: u64, runs: [*]abi.PageRun, cap: u32, count: *u32, digest: *abi.Digest) i32 {
    err.clear();
    return nonzero.copy(src, out, size, runs[0..cap], count, digest);
}

/// The benchmark's raw copy: process_vm_readv of `ranges` of `pid` into a
/// buffer, thrown away; `bytes` gets how many.
export fn cr_copy_pages(pid: i32, ranges: [*]const abi.PageRange, count: u32, bytes: *u64) i32 {
    err.clear();
    return pages.rawCopy(pid, ranges[0..count], bytes);
}

/// Read `fd` from its position to EOF; `out` gets how many bytes and their XXH3-128.
export fn cr_hash_fd(fd: i32, out: *abi.Digest) i32 {
    err.clear();
    return hash.hashFd(fd, out);
}

/// `tids`: every thread of the task, the main thread first.
export fn cr_unmap_remote(tids: [*]const i32, count: u32, site: *const abi.InjectSite, addr: u64, len: u64, back: [*]abi.ThreadState) i32 {
    err.clear();
    if (count == 0 or count > abi.MAX_THREADS) return err.fail(sys.EINVAL, "{d} threads: not in 1..{d}", .{ count, abi.MAX_THREADS });
    if (site.syscall_ret == 0 or site.sigreturn == 0) return err.fail(sys.EINVAL, "no place to run injected code in {d}", .{tids[0]});
    return inject.unmapRemote(tids[0..count], site.*, addr, len, back[0..count]);
}

/// Create the tree of `buf` (abi.TreeHeader and what follows); returns the
/// root's pid and the status pipe's read end.
export fn cr_restore_tree(buf: [*]u8, buf_len: usize, blob: [*]const u8, blob_len: usize, status_rfd: *i32, go_wfd: *i32) i32 {
    err.clear();
    return restore.spawnTree(buf[0..buf_len], blob[0..blob_len], status_rfd, go_wfd);
}

/// 1 once the status pipe `rfd` has something to read (a failure record, or
/// EOF: every task ready), 0 after `timeout_ms` without (see cr_restore_status).
export fn cr_restore_status_ready(rfd: i32, timeout_ms: i32) i32 {
    err.clear();
    var pfd = [_]std.os.linux.pollfd{.{ .fd = rfd, .events = std.os.linux.POLL.IN, .revents = 0 }};
    const rc = std.os.linux.poll(&pfd, 1, timeout_ms);
    if (sys.isErr(rc)) return if (sys.errnoOf(rc) == sys.EINTR) 0 else err.fail(sys.errnoOf(rc), "poll of the restore status failed", .{});
    return if (rc > 0) 1 else 0;
}

/// Block until a new task reports a failure (returns 1 and fills `rec`) or
/// every task has closed the status pipe once ready (it then waits for the go
/// pipe to close before its rt_sigreturn) or, for
/// a zombie, exit (returns 0). Closes `rfd` either way.
export fn cr_restore_status(rfd: i32, rec: *abi.StatusRecord) i32 {
    var got: usize = 0;
    const p: [*]u8 = @ptrCast(rec);
    while (got < @sizeOf(abi.StatusRecord)) {
        const rc = sys.syscall3(.read, sys.fdArg(rfd), @intFromPtr(p + got), @sizeOf(abi.StatusRecord) - got);
        if (sys.isErr(rc)) {
            if (sys.errnoOf(rc) == sys.EINTR) continue;
            sys.close(rfd);
            return err.fail(sys.errnoOf(rc), "reading the restore status failed", .{});
        }
        if (rc == 0) break;
        got += rc;
    }
    sys.close(rfd);
    if (got == 0) return 0;
    if (got != @sizeOf(abi.StatusRecord)) return err.fail(sys.EIO, "truncated restore status ({d} bytes)", .{got});
    return 1;
}

export fn cr_open_file(path: [*:0]const u8, flags: u32, mode: u32, pos: u64, min_fd: i32) i32 {
    err.clear();
    return fds.openFile(path, flags, mode, pos, min_fd);
}

export fn cr_make_pipe(size: u32, data: [*]const u8, len: usize, min_fd: i32, out: *[2]i32) i32 {
    err.clear();
    return fds.makePipe(size, data[0..len], min_fd, out);
}

export fn cr_make_memfd(name: [*:0]const u8, size: u64, min_fd: i32) i32 {
    err.clear();
    return fds.makeMemfd(name, size, min_fd);
}

export fn cr_set_fl(fd: i32, flags: u32) i32 {
    err.clear();
    return fds.setFlags(fd, flags);
}

export fn cr_close(fd: i32) i32 {
    sys.close(fd);
    return 0;
}

export fn cr_same_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) i32 {
    err.clear();
    return fds.sameFile(pid1, fd1, pid2, fd2);
}

export fn cr_peek_pipe(fd: i32, out: [*]u8, cap: usize, size: *u32) i32 {
    err.clear();
    return fds.peekPipe(fd, out[0..cap], size);
}

export fn cr_fill_fifo(fd: i32, size: u32, data: [*]const u8, len: usize) i32 {
    err.clear();
    return fds.fillFifo(fd, size, data[0..len]);
}

export fn cr_make_eventfd(count: u64, semaphore: u32, min_fd: i32) i32 {
    err.clear();
    return fdkinds.makeEventfd(count, semaphore != 0, min_fd);
}

export fn cr_make_timerfd(clockid: u32, settime_flags: u32, value_ns: u64, interval_ns: u64, ticks: u64, min_fd: i32) i32 {
    err.clear();
    return fdkinds.makeTimerfd(clockid, settime_flags, value_ns, interval_ns, ticks, min_fd);
}

export fn cr_make_signalfd(mask: u64, min_fd: i32) i32 {
    err.clear();
    return fdkinds.makeSignalfd(mask, min_fd);
}

export fn cr_make_epoll(min_fd: i32) i32 {
    err.clear();
    return fdkinds.makeEpoll(min_fd);
}

export fn cr_epoll_target_is(pid: i32, epfd: i32, tfd: i32, toff: u32) i32 {
    err.clear();
    return fdkinds.epollTargetIs(pid, epfd, tfd, toff);
}

/// An O_PATH fd on the object of a file handle (as fdinfo shows an inotify
/// watch's) of the filesystem `mount_fd` is on.
export fn cr_open_by_handle(mount_fd: i32, handle_type: i32, bytes: [*]const u8, len: u32) i32 {
    err.clear();
    return inotify.openByHandle(mount_fd, handle_type, bytes[0..len]);
}

export fn cr_make_inotify(min_fd: i32) i32 {
    err.clear();
    return inotify.makeInotify(min_fd);
}

/// Watch `path` as wd `wd` in inotify instance `fd`, whose highest wd so far is `placed`.
export fn cr_inotify_watch(fd: i32, path: [*:0]const u8, mask: u32, wd: i32, placed: i32) i32 {
    err.clear();
    return inotify.addWatch(fd, path, mask, wd, placed);
}

/// sock_diag's view of the unix socket of inode `ino` (ENOENT: no such unix socket).
export fn cr_unix_diag(ino: u32, out: *abi.UnixDiag) i32 {
    err.clear();
    return unixdiag.query(ino, out);
}

/// A copy in cr of fd `fd` of task `pid` (pidfd_getfd).
export fn cr_grab_fd(pid: i32, fd: i32) i32 {
    err.clear();
    return fds.grabFd(pid, fd);
}

export fn cr_sock_opts(fd: i32, out: *abi.SockOpts) i32 {
    err.clear();
    return unixsk.sockOpts(fd, out);
}

/// Peek the receive queue of socket `fd` (see unixsk.peekQueue): total bytes.
export fn cr_unix_peek(fd: i32, stype: u32, shutdown: u32, out: [*]u8, cap: usize, lens: [*]u32, max: u32, count: *u32) i32 {
    err.clear();
    return unixsk.peekQueue(fd, stype, shutdown, out[0..cap], lens[0..@min(max, unixsk.MAX_MESSAGES)], count);
}

export fn cr_unix_pair(stype: u32, min_fd: i32, out: *[2]i32) i32 {
    err.clear();
    return unixsk.makePair(stype, min_fd, out);
}

export fn cr_unix_fill(fd: i32, data: [*]const u8, len: usize, lens: [*]const u32, count: u32) i32 {
    err.clear();
    if (count > unixsk.MAX_MESSAGES) return err.fail(sys.E2BIG, "{d} messages to queue", .{count});
    return unixsk.fill(fd, data[0..len], lens[0..count]);
}

export fn cr_unix_finish(fd: i32, sndbuf: u32, shutdown: u32) i32 {
    err.clear();
    if (shutdown > 3) return err.fail(sys.EINVAL, "shutdown state {d}", .{shutdown});
    return unixsk.finish(fd, sndbuf, shutdown);
}

export fn cr_unix_socket(stype: u32, name: [*]const u8, name_len: usize, listen: u32, backlog: u32, min_fd: i32) i32 {
    err.clear();
    if (name_len > abi.UNIX_PATH_MAX) return err.fail(sys.EINVAL, "a unix socket name of {d} bytes", .{name_len});
    return unixsk.makeSocket(stype, name[0..name_len], listen != 0, backlog, min_fd);
}

/// sock_diag's view of the TCP socket of inode `ino`, of `family` (ENOENT: no such TCP socket).
export fn cr_inet_diag(family: u32, ino: u32, out: *abi.InetDiag) i32 {
    err.clear();
    if (ino == 0) return err.fail(sys.EINVAL, "socket inode 0", .{});
    return inetdiag.query(family, ino, out);
}

/// The options of TCP socket `fd` (abi.INET_OPT_* bits).
export fn cr_inet_opts(fd: i32, family: u32) i32 {
    err.clear();
    return inetsk.readOpts(fd, family);
}

/// A listening TCP socket bound to `addr`:`port` (see inetsk.makeListener).
export fn cr_inet_listen(family: u32, addr: [*]const u8, addr_len: usize, port: u32, backlog: u32, opts: u32, min_fd: i32) i32 {
    err.clear();
    const want: usize = if (family == 2) 4 else if (family == 10) 16 else 0;
    if (want == 0 or addr_len != want) return err.fail(sys.EINVAL, "a TCP address of {d} bytes for family {d}", .{ addr_len, family });
    if (port == 0 or port > 65535) return err.fail(sys.EINVAL, "TCP port {d}", .{port});
    if (opts & ~abi.INET_OPT_ALL != 0) return err.fail(sys.EINVAL, "TCP socket options {x}", .{opts});
    return inetsk.makeListener(family, addr[0..addr_len], @intCast(port), backlog, opts, min_fd);
}

/// Modes of terminal `fd`: read into `t` (set 0) or set from it (set 1); see tty.zig.
export fn cr_termios(fd: i32, t: [*]u8, len: usize, set: u32) i32 {
    err.clear();
    return tty.termios(fd, t[0..len], set != 0);
}

/// tcsetpgrp(fd, pgid), never stopped by SIGTTOU.
export fn cr_set_foreground(fd: i32, pgid: i32) i32 {
    err.clear();
    return tty.setForeground(fd, pgid);
}

/// wait4 for one child; returns the raw status in `status`.
export fn cr_wait(pid: i32, status: *i32, flags: i32) i32 {
    while (true) {
        var st: u32 = 0;
        const rc = sys.syscall4(.wait4, sys.fdArg(pid), @intFromPtr(&st), @as(u32, @bitCast(flags)) | sys.WALL, 0);
        if (sys.isErr(rc)) {
            if (sys.errnoOf(rc) == sys.EINTR) continue;
            return err.fail(sys.errnoOf(rc), "wait4({d}) failed", .{pid});
        }
        status.* = @bitCast(st);
        return @intCast(rc);
    }
}

test {
    _ = hash;
    _ = pages;
    _ = scan;
    _ = @import("thread.zig");
    _ = @import("gather.zig");
    _ = interrupt;
    _ = nonzero;
    _ = gadgets;
}

test "abi layout is self-consistent" {
    const l = abi.layout();
    try std.testing.expectEqual(@as(u32, 216), l.size_user_regs);
    try std.testing.expect(l.off_thread_state_xstate % 8 == 0);
    try std.testing.expect(l.size_plan_header % 8 == 0);
}

test "errnoOf decodes raw syscall results" {
    try std.testing.expectEqual(@as(u16, 0), sys.errnoOf(0));
    try std.testing.expectEqual(@as(u16, 0), sys.errnoOf(12345));
    try std.testing.expectEqual(@as(u16, 3), sys.errnoOf(@bitCast(@as(isize, -3))));
    try std.testing.expectEqual(@as(u16, 4095), sys.errnoOf(@bitCast(@as(isize, -4095))));
    try std.testing.expectEqual(@as(u16, 0), sys.errnoOf(@bitCast(@as(isize, -4096))));
}

test "error detail is kept and returned as -errno" {
    const rc = err.fail(sys.ESRCH, "task {d} gone", .{42});
    try std.testing.expectEqual(@as(i32, -3), rc);
    var out: [64]u8 = undefined;
    const n = err.copyTo(&out, out.len);
    try std.testing.expectEqualStrings("task 42 gone", out[0..n]);
}

test {
    // Tests of the files that have their own.
    _ = fdkinds;
    _ = tty;
    _ = unixdiag;
    _ = unixsk;
    _ = inetdiag;
    _ = inetsk;
    _ = inotify;
}
