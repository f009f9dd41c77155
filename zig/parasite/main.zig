//! The parasite: a freestanding blob that libcr copies into a frozen victim and
//! runs there on a stack of its own, in one of two modes (ParasiteArgs.mode):
//!   - info: ask the kernel, from inside the task, for what no /proc file or
//!     ptrace request tells about the whole process: every sigaction, the
//!     itimers, the POSIX timers' settings, the current brk, the dumpable
//!     flag and the xstate features it may use (per-thread answers come from syscalls libcr injects into each thread);
//!   - pages: vmsplice the task's pages into a pipe whose other end the dumper
//!     splices into the pages image (the pages are copied once, by the kernel,
//!     into the image's page cache), hashing them on the way on this CPU
//!     while the dumper's thread writes on another.
//! It writes its answers into its argument block, tells cr it is done on its
//! control socket and waits there; cr then stops it and cures the task. If
//! cr is gone (EOF on the socket), it cures the thread itself: it puts back
//! what it changed and ends in the task's own rt_sigreturn on the safety
//! frame cr left (abi.ParasiteCtl, lib/inject.zig).
//!
//! Runs inside someone else's process: no allocation, no globals, no libc,
//! every loop bounded, nothing but the syscalls below. The hash uses SSE
//! registers: the cure (cr's or its own) puts the thread's xstate back.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys");
/// Built ReleaseSafe: a failed assert or bounds check traps (ud2) here, in
/// someone else's task, rather than running on undefined.
pub const panic = std.debug.no_panic;
const xxh3 = @import("xxh3");
const gather = @import("gather");

export fn blob_entry() linksection(".text.entry") callconv(.naked) noreturn {
    // rdi = ParasiteArgs (set by libcr), rsp = top of the parasite stack.
    asm volatile (
        \\ andq $-16, %%rsp
        \\ call parasite_main
        \\ ud2
    );
}

export fn parasite_main(args: *abi.ParasiteArgs) callconv(.c) noreturn {
    const ctl = &args.ctl;
    // cr holds its own copies: with these closed, cr's death is EOF or EPIPE here.
    for (ctl.close_fds) |fd| {
        if (fd >= 0) _ = sys.syscall1(sys.SYS_close, @intCast(fd));
    }
    const st = &args.state;
    if (args.magic != abi.PARASITE_MAGIC) {
        st.err = -22;
        st.err_step = 0xffff;
        args.pages.err = -22;
        args.pages.err_step = 0xffff;
        waitForCr(args);
    }
    st.err = 0;
    st.err_step = 0;
    // What the arguments point to is checked here, explicitly: a bad block
    // is reported, never followed (a trap would kill the task if cr died).
    if (!argsValid(args)) {
        st.err = -22;
        st.err_step = 0xfffe;
        args.pages.err = -22;
        args.pages.err_step = 0xfffe;
        waitForCr(args);
    }
    var pending: u64 = 0;
    if (!sys.isErr(sys.syscall2(sys.SYS_rt_sigpending, @intFromPtr(&pending), 8))) {
        ctl.sigpipe_pending = @intCast((pending >> (SIGPIPE - 1)) & 1);
    }
    if (ctl.rseq.len != 0) {
        const rc = sys.syscall4(sys.SYS_rseq, ctl.rseq.ptr, ctl.rseq.len, RSEQ_FLAG_UNREGISTER, ctl.rseq.sig);
        if (!sys.isErr(rc)) ctl.rseq_off = 1;
    }
    switch (args.mode) {
        .info => info(args),
        .pages => pages(&args.pages),
    }
    waitForCr(args);
}

/// `len` bytes at `addr` lie inside the parasite's area.
fn inArea(ctl: *const abi.ParasiteCtl, addr: u64, len: u64) bool {
    return addr >= ctl.area and len <= ctl.area_len and addr - ctl.area <= ctl.area_len - len;
}

/// Every table the mode reads lies inside the area; counts are within bounds.
fn argsValid(args: *const abi.ParasiteArgs) bool {
    const ctl = &args.ctl;
    if (!inArea(ctl, @intFromPtr(args), @sizeOf(abi.ParasiteArgs)) or !inArea(ctl, ctl.frame, @sizeOf(abi.sigframe.RtSigframe))) return false;
    return switch (args.mode) {
        .info => args.timer_count <= abi.MAX_POSIX_TIMERS,
        .pages => args.pages.range_count <= ctl.area_len / @sizeOf(abi.PageRange) and
            args.pages.unreadable_count <= ctl.area_len / @sizeOf(abi.ProtRange) and
            inArea(ctl, args.pages.ranges, args.pages.range_count * @sizeOf(abi.PageRange)) and
            inArea(ctl, args.pages.unreadable, args.pages.unreadable_count * @sizeOf(abi.ProtRange)),
    };
}

const RSEQ_FLAG_UNREGISTER: usize = 1;
const SIGPIPE: u6 = 13;
const MSG_NOSIGNAL: usize = 0x4000;

/// Say done, then wait on the control socket: cr stops the thread while it
/// waits here. EOF, or any error, means cr is gone: cure the thread.
fn waitForCr(args: *abi.ParasiteArgs) noreturn {
    const fd: usize = @intCast(args.ctl.fd);
    const done = [1]u8{abi.PARASITE_DONE};
    // cr may be gone already: no SIGPIPE for that.
    _ = sys.syscall6(sys.SYS_sendto, fd, @intFromPtr(&done), 1, MSG_NOSIGNAL, 0, 0);
    var b: u8 = 0;
    // Every signal is blocked (a ptrace stop restarts the read): only EOF or an error ends it.
    var rounds: u32 = 0;
    while (rounds < 1 << 20) : (rounds += 1) {
        const rc = sys.syscall3(sys.SYS_read, fd, @intFromPtr(&b), 1);
        if (rc == 0 or (sys.isErr(rc) and rc != EINTR)) break;
    }
    selfCure(args);
}

const EINTR: usize = @bitCast(@as(isize, -4));

/// cr is gone: close what cr made for this run, put the rseq registration
/// back, and return the thread to its own state through the safety frame.
/// The area stays mapped: other threads' frames may be in it.
fn selfCure(args: *abi.ParasiteArgs) noreturn {
    const ctl = &args.ctl;
    _ = sys.syscall1(sys.SYS_close, @intCast(ctl.fd));
    if (args.mode == .pages and args.pages.closed == 0) _ = sys.syscall1(sys.SYS_close, @intCast(args.pages.pipe[1]));
    if (ctl.rseq_off != 0) {
        _ = sys.syscall4(sys.SYS_rseq, ctl.rseq.ptr, ctl.rseq.len, 0, ctl.rseq.sig);
        ctl.rseq_off = 0;
    }
    // A vmsplice into the page pipe cr no longer reads raised SIGPIPE (blocked
    // here, it would kill the task once its own mask is back): take it, unless
    // the task had one pending of its own.
    if (ctl.sigpipe_pending == 0) {
        const set: u64 = @as(u64, 1) << (SIGPIPE - 1);
        const zero = [2]u64{ 0, 0 };
        _ = sys.syscall4(sys.SYS_rt_sigtimedwait, @intFromPtr(&set), 0, @intFromPtr(&zero), 8);
    }
    // The task's own `mov $15, %eax; syscall`, with the frame where rt_sigreturn looks (rsp - 8).
    asm volatile (
        \\ movq %[sp], %%rsp
        \\ jmpq *%[to]
        :
        : [sp] "r" (ctl.frame + 8),
          [to] "r" (ctl.sigreturn),
    );
    unreachable;
}

fn info(args: *abi.ParasiteArgs) void {
    const st = &args.state;

    var sig: usize = 1;
    while (sig <= abi.NSIG) : (sig += 1) {
        const rc = sys.syscall4(sys.SYS_rt_sigaction, sig, 0, @intFromPtr(&st.sigactions[sig - 1]), 8);
        if (sys.isErr(rc)) return fail(st, rc, @intCast(sig));
    }
    var which: usize = 0;
    while (which < 3) : (which += 1) {
        const rc = sys.syscall2(sys.SYS_getitimer, which, @intFromPtr(&st.itimers[which]));
        if (sys.isErr(rc)) return fail(st, rc, 100 + @as(u32, @intCast(which)));
    }
    for (args.timer_ids[0..args.timer_count], st.posix_timers[0..args.timer_count], 0..) |id, *t, i| {
        const timer: usize = @intCast(id);
        var rc = sys.syscall2(sys.SYS_timer_gettime, timer, @intFromPtr(&t.spec));
        if (sys.isErr(rc)) return fail(st, rc, 300 + @as(u32, @intCast(i)));
        rc = sys.syscall1(sys.SYS_timer_getoverrun, timer);
        if (sys.isErr(rc)) return fail(st, rc, 300 + @as(u32, @intCast(i)));
        t.overrun = @intCast(rc);
    }
    st.brk = sys.syscall1(sys.SYS_brk, 0);
    const dumpable = sys.syscall2(sys.SYS_prctl, sys.PR_GET_DUMPABLE, 0);
    if (sys.isErr(dumpable)) return fail(st, dumpable, 400);
    st.dumpable = dumpable;
    // Before 5.16 the kernel has no such request, and no dynamic features.
    st.xcomp_perm = 0;
    const perm = sys.syscall2(sys.SYS_arch_prctl, sys.ARCH_GET_XCOMP_PERM, @intFromPtr(&st.xcomp_perm));
    if (sys.isErr(perm) and perm != @as(usize, @bitCast(@as(isize, -22)))) return fail(st, perm, 500);
}

fn fail(st: *abi.ParasiteState, rc: usize, step: u32) void {
    st.err = @bitCast(rc);
    st.err_step = step;
}

/// Bytes gathered per vmsplice call: the size libcr gives the pipe, so one
/// call fills it and the dumper always has a whole pipe to splice.
const CHUNK: usize = 1 << 20;
/// Ranges gathered per call (each at least a page).
const MAX_IOV: usize = 64;

/// The page dump: open the unreadable VMAs for reading, send the pages,
/// put the protections back, and close the pipe (the dumper's EOF).
fn pages(p: *abi.ParasitePages) void {
    p.err = 0;
    p.err_step = 0;
    const unreadable: [*]const abi.ProtRange = @ptrFromInt(p.unreadable);
    for (unreadable[0..p.unreadable_count]) |v| {
        // vmsplice takes pages as the task could read them: PROT_NONE ones not at all.
        const rc = sys.syscall3(sys.SYS_mprotect, v.start, v.len, v.prot | sys.PROT_READ);
        if (sys.isErr(rc)) {
            failPages(p, rc, .open_unreadable, v.start);
            break;
        }
        p.opened += 1;
    }
    if (p.err == 0) send(p);
    // Back as they were, whatever happened (libcr does it if we never get here).
    for (unreadable[0..p.opened]) |v| {
        const rc = sys.syscall3(sys.SYS_mprotect, v.start, v.len, v.prot);
        if (sys.isErr(rc) and p.err == 0) failPages(p, rc, .close_unreadable, v.start);
    }
    if (p.err == 0) p.opened = 0;
    if (p.err != 0) return;
    const rc = sys.syscall1(sys.SYS_close, @intCast(p.pipe[1]));
    if (sys.isErr(rc)) return failPages(p, rc, .close, 0);
    p.closed = 1;
}

/// Send every range, in order, into the pipe, and hash it. vmsplice first:
/// it fails cleanly (EFAULT) on a page the task cannot read, where reading
/// it here would fault; then the hash reads the same, unchanged bytes (the
/// task is frozen).
fn send(p: *abi.ParasitePages) void {
    const ranges: [*]const abi.PageRange = @ptrFromInt(p.ranges);
    const wfd: usize = @intCast(p.pipe[1]);
    var h = xxh3.Hasher(xxh3.blocks).init();
    var total: u64 = 0;
    var cursor: gather.Cursor = .{ .ranges = ranges[0..p.range_count] };
    // Bounded: every round takes at least a page of the ranges.
    while (!cursor.done()) {
        var iov: [MAX_IOV]gather.Iovec = undefined;
        var fill: usize = 0;
        const n = cursor.next(&iov, CHUNK, &fill) catch return failPages(p, @bitCast(@as(isize, -22)), .bad_range, 0);
        // vmsplice may take part of it (the pipe is full): send the rest.
        var sent: [MAX_IOV]gather.Iovec = iov;
        var first: usize = 0;
        while (first < n) {
            const rc = sys.syscall4(sys.SYS_vmsplice, wfd, @intFromPtr(&sent[first]), n - first, 0);
            // Every signal but SIGTRAP is blocked: no EINTR to retry. Each
            // round sends at least a byte, so the loop ends.
            if (sys.isErr(rc)) return failPages(p, rc, .vmsplice, sent[first].base);
            if (rc == 0) return failPages(p, @bitCast(@as(isize, -5)), .vmsplice, sent[first].base);
            var left: usize = rc;
            while (first < n and left >= sent[first].len) : (first += 1) left -= sent[first].len;
            if (first < n) {
                sent[first].base += left;
                sent[first].len -= left;
            }
        }
        for (iov[0..n]) |v| h.update(@as([*]const u8, @ptrFromInt(v.base))[0..v.len]);
        total += fill;
    }
    p.bytes = total;
    p.hash = h.final();
}

fn failPages(p: *abi.ParasitePages, rc: usize, step: abi.PagesStep, addr: u64) void {
    p.err = @bitCast(rc);
    p.err_step = @intFromEnum(step);
    p.err_addr = addr;
}
