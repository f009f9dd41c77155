//! Freezing and reading one thread with ptrace: PTRACE_SEIZE + PTRACE_INTERRUPT
//! (no SIGSTOP the task could see), registers, xstate, sigmask, rseq and robust
//! list, and the way back (detach).
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");

pub const PTRACE_SEIZE: usize = 0x4206;
pub const PTRACE_INTERRUPT: usize = 0x4207;
pub const PTRACE_DETACH: usize = 17;
pub const PTRACE_CONT: usize = 7;
pub const PTRACE_SYSCALL: usize = 24;
pub const PTRACE_GETREGS: usize = 12;
pub const PTRACE_SETREGS: usize = 13;
pub const PTRACE_PEEKDATA: usize = 2;
pub const PTRACE_POKEDATA: usize = 5;
pub const PTRACE_GETREGSET: usize = 0x4204;
pub const PTRACE_SETREGSET: usize = 0x4205;
pub const PTRACE_GETSIGMASK: usize = 0x420a;
pub const PTRACE_SETSIGMASK: usize = 0x420b;
pub const PTRACE_GET_RSEQ_CONFIGURATION: usize = 0x420f;
pub const PTRACE_EVENT_STOP: u32 = 128;
/// Every thread is seized with it: a syscall stop reports SIGTRAP|0x80,
/// which is no signal, so a thread let go at one (cr gone) is not killed
/// by a SIGTRAP (see inject.zig).
pub const PTRACE_O_TRACESYSGOOD: usize = 1;
pub const SYSCALL_STOP: u32 = sys.SIGTRAP | 0x80;
pub const NT_X86_XSTATE: usize = 0x202;

pub fn ptrace(req: usize, tid: i32, addr: usize, data: usize) usize {
    return sys.syscall4(.ptrace, req, sys.fdArg(tid), addr, data);
}

const Stop = struct { sig: u32, event: u32 };

/// wait4 for `tid` with a deadline, so a task that never stops cannot hang cr.
/// A stop usually follows within microseconds (an injected syscall, the
/// parasite): yield the CPU for the first SPIN_NS instead of sleeping, since
/// the shortest nanosleep costs more than the whole round trip; then back off.
pub fn waitStop(tid: i32, timeout_ms: u64) !Stop {
    const start = sys.monotonicNs();
    const deadline = start + timeout_ms * 1_000_000;
    const SPIN_NS: u64 = 200_000;
    while (true) {
        var status: u32 = 0;
        const rc = sys.syscall4(.wait4, sys.fdArg(tid), @intFromPtr(&status), sys.WALL | sys.WNOHANG, 0);
        if (sys.isErr(rc)) {
            if (sys.errnoOf(rc) == sys.EINTR) continue;
            return error.WaitFailed;
        }
        if (rc != 0) {
            if ((status & 0x7f) == 0 or ((status & 0x7f) != 0x7f)) return error.TaskExited;
            return .{ .sig = (status >> 8) & 0xff, .event = (status >> 16) & 0xff };
        }
        const now = sys.monotonicNs();
        if (now > deadline) return error.Timeout;
        if (now - start < SPIN_NS) {
            _ = sys.syscall0(.sched_yield);
        } else {
            sys.nanosleepNs(if (now - start < 5_000_000) 20_000 else 1_000_000);
        }
    }
}

/// Seize `tid` and bring it to a ptrace stop without any visible signal.
/// A signal that was about to be delivered is let through (it would have been
/// delivered anyway) and we wait for the interrupt stop again. Returns 0, or
/// 1 when the thread was in a job-control stop (SIGSTOP & co.): it reports
/// that group-stop instead, and cannot run injected code until the stop is
/// lifted (SIGCONT to the process, then `retrap`).
pub fn seize(tid: i32) i32 {
    var rc = ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_SEIZE of {d} failed", .{tid});
    rc = ptrace(PTRACE_INTERRUPT, tid, 0, 0);
    if (sys.isErr(rc)) {
        _ = ptrace(PTRACE_DETACH, tid, 0, 0);
        return err.fail(sys.errnoOf(rc), "PTRACE_INTERRUPT of {d} failed", .{tid});
    }
    var tries: u32 = 0;
    while (tries < 64) : (tries += 1) {
        const st = waitStop(tid, 5000) catch |e| {
            _ = ptrace(PTRACE_DETACH, tid, 0, 0);
            return switch (e) {
                error.TaskExited => err.fail(sys.ESRCH, "task {d} exited while being frozen", .{tid}),
                error.Timeout => err.fail(sys.ETIMEDOUT, "task {d} did not stop within 5 s", .{tid}),
                error.WaitFailed => err.fail(sys.ESRCH, "wait4 on {d} failed", .{tid}),
            };
        };
        if (st.event == PTRACE_EVENT_STOP) return if (st.sig == sys.SIGTRAP) 0 else 1;
        // Signal-delivery stop: deliver it as the kernel would have, wait again.
        rc = ptrace(PTRACE_CONT, tid, 0, st.sig);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_CONT of {d} failed", .{tid});
    }
    _ = ptrace(PTRACE_DETACH, tid, 0, 0);
    return err.fail(sys.EAGAIN, "task {d} kept receiving signals while being frozen", .{tid});
}

/// Bring a seized thread whose job-control stop was just lifted (cr sent
/// SIGCONT to its process) to an interrupt stop, where it can run injected
/// code. The SIGCONT cr sent is discarded on the way, so no handler of the
/// task sees it; any other signal is delivered as the kernel would.
pub fn retrap(tid: i32) i32 {
    var sig: usize = 0;
    var tries: u32 = 0;
    while (tries < 64) : (tries += 1) {
        var rc = ptrace(PTRACE_INTERRUPT, tid, 0, 0);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_INTERRUPT of {d} failed", .{tid});
        rc = ptrace(PTRACE_CONT, tid, 0, sig);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_CONT of {d} failed", .{tid});
        const st = waitStop(tid, 5000) catch |e| return switch (e) {
            error.TaskExited => err.fail(sys.ESRCH, "task {d} exited while being frozen", .{tid}),
            error.Timeout => err.fail(sys.ETIMEDOUT, "task {d} did not stop within 5 s", .{tid}),
            error.WaitFailed => err.fail(sys.ESRCH, "wait4 on {d} failed", .{tid}),
        };
        if (st.event == PTRACE_EVENT_STOP and st.sig == sys.SIGTRAP) return 0;
        // A signal-delivery stop: ours (SIGCONT) is dropped, others go through.
        sig = if (st.event == 0 and st.sig != sys.SIGCONT) st.sig else 0;
    }
    return err.fail(sys.EAGAIN, "task {d} kept stopping while being frozen", .{tid});
}

pub fn detach(tid: i32, sig: u32) i32 {
    const rc = ptrace(PTRACE_DETACH, tid, 0, sig);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_DETACH of {d} failed", .{tid});
    return 0;
}

pub fn getRegs(tid: i32, regs: *abi.UserRegs) i32 {
    const rc = ptrace(PTRACE_GETREGS, tid, 0, @intFromPtr(regs));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_GETREGS of {d} failed", .{tid});
    return 0;
}

pub fn setRegs(tid: i32, regs: *const abi.UserRegs) i32 {
    const rc = ptrace(PTRACE_SETREGS, tid, 0, @intFromPtr(regs));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_SETREGS of {d} failed", .{tid});
    return 0;
}

pub fn setSigmask(tid: i32, mask: u64) i32 {
    const m = mask;
    const rc = ptrace(PTRACE_SETSIGMASK, tid, 8, @intFromPtr(&m));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_SETSIGMASK of {d} failed", .{tid});
    return 0;
}

const RseqConfig = extern struct { ptr: u64, len: u32, sig: u32, flags: u32, pad: u32 };

/// Everything ptrace alone tells about a stopped thread.
pub fn readThread(tid: i32, out: *abi.ThreadState) i32 {
    out.tid = tid;
    var rc: i32 = getRegs(tid, &out.regs);
    if (rc != 0) return rc;

    var iov = std.posix.iovec{ .base = &out.xstate, .len = out.xstate.len };
    var r = ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, @intFromPtr(&iov));
    if (sys.isErr(r)) return err.fail(sys.errnoOf(r), "PTRACE_GETREGSET(NT_X86_XSTATE) of {d} failed", .{tid});
    std.debug.assert(iov.len <= abi.XSTATE_MAX);
    out.xstate_len = @intCast(iov.len);

    r = ptrace(PTRACE_GETSIGMASK, tid, 8, @intFromPtr(&out.sigmask));
    if (sys.isErr(r)) return err.fail(sys.errnoOf(r), "PTRACE_GETSIGMASK of {d} failed", .{tid});

    var conf = std.mem.zeroes(RseqConfig);
    r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, @sizeOf(RseqConfig), @intFromPtr(&conf));
    if (sys.isErr(r)) return err.fail(sys.errnoOf(r), "PTRACE_GET_RSEQ_CONFIGURATION of {d} failed", .{tid});
    out.rseq_ptr = conf.ptr;
    out.rseq_len = conf.len;
    out.rseq_sig = conf.sig;
    out.rseq_flags = conf.flags;

    var head: u64 = 0;
    var len: u64 = 0;
    r = sys.syscall3(.get_robust_list, sys.fdArg(tid), @intFromPtr(&head), @intFromPtr(&len));
    if (sys.isErr(r)) return err.fail(sys.errnoOf(r), "get_robust_list of {d} failed", .{tid});
    out.robust_head = head;
    out.robust_len = len;
    rc = 0;
    return rc;
}

pub const PTRACE_PEEKSIGINFO: usize = 0x4209;
const PeekSiginfoArgs = extern struct { off: u64, flags: u32, nr: i32 };

/// Copy up to `max` queued siginfos of `tid` (shared = the process-wide
/// queue) into `out` without dequeuing them. Returns how many.
pub fn peekSiginfo(tid: i32, shared: bool, out: [*]u8, max: u32) i32 {
    var a = PeekSiginfoArgs{ .off = 0, .flags = if (shared) 1 else 0, .nr = @intCast(max) };
    const rc = ptrace(PTRACE_PEEKSIGINFO, tid, @intFromPtr(&a), @intFromPtr(out));
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_PEEKSIGINFO of {d} failed", .{tid});
    return @intCast(rc);
}

pub const RseqOfSelf = struct { ptr: u64, len: u32, sig: u32 };

/// The rseq registration of the calling thread. A thread cannot ask this of
/// itself, but a raw-cloned child inherits it: seize such a child (it only
/// sleeps), read its configuration, kill it.
pub fn rseqOfSelf() !RseqOfSelf {
    var ca = std.mem.zeroes([11]u64);
    ca[4] = sys.SIGCHLD; // exit_signal
    const rc = sys.syscall2(.clone3, @intFromPtr(&ca), @sizeOf([11]u64));
    if (sys.isErr(rc)) return error.CloneFailed;
    if (rc == 0) {
        var i: u32 = 0;
        while (i < 1000) : (i += 1) sys.nanosleepNs(10_000_000);
        _ = sys.syscall1(.exit_group, 0);
    }
    const tid: i32 = @intCast(rc);
    defer {
        _ = sys.syscall2(.kill, rc, sys.SIGKILL);
        var status: u32 = 0;
        _ = sys.syscall4(.wait4, rc, @intFromPtr(&status), sys.WALL, 0);
    }
    if (sys.isErr(ptrace(PTRACE_SEIZE, tid, 0, 0))) return error.SeizeFailed;
    if (sys.isErr(ptrace(PTRACE_INTERRUPT, tid, 0, 0))) return error.InterruptFailed;
    _ = try waitStop(tid, 2000);
    var conf = std.mem.zeroes(RseqConfig);
    const r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, @sizeOf(RseqConfig), @intFromPtr(&conf));
    if (sys.isErr(r)) return error.RseqConfigFailed;
    return .{ .ptr = conf.ptr, .len = conf.len, .sig = conf.sig };
}

pub const PTRACE_SETOPTIONS: usize = 0x4200;
pub const PTRACE_SECCOMP_GET_FILTER: usize = 0x420c;
pub const PTRACE_SECCOMP_GET_METADATA: usize = 0x420d;
pub const PTRACE_O_SUSPEND_SECCOMP: usize = 1 << 21;
/// Most classic BPF instructions of one filter (BPF_MAXINSNS).
pub const SECCOMP_MAX_INSNS: u32 = 4096;

/// Seized `tid`'s seccomp filters stop applying while cr holds it: the
/// parasite's (or the restore clean-up's) injected syscalls must not meet
/// the task's filters. Needs CAP_SYS_ADMIN and cr itself not under seccomp;
/// the option goes with the detach. cr seizes with TRACESYSGOOD only.
pub fn suspendSeccomp(tid: i32) i32 {
    const rc = ptrace(PTRACE_SETOPTIONS, tid, 0, PTRACE_O_SUSPEND_SECCOMP | PTRACE_O_TRACESYSGOOD);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_SETOPTIONS(PTRACE_O_SUSPEND_SECCOMP) of {d} failed", .{tid});
    return 0;
}

const SeccompMetadata = extern struct { filter_off: u64, flags: u64 };

/// Filter `index` of seized, stopped `tid` (0: the oldest, first installed):
/// its instructions (struct sock_filter, 8 bytes each) into `out`, its flags
/// (SECCOMP_FILTER_FLAG_LOG) into `flags`; returns the instruction count.
/// -ENOENT past the newest filter, without a detail: that is the normal end.
pub fn seccompFilter(tid: i32, index: u32, out: []u8, flags: *u64) i32 {
    // The kernel copies the whole program without a length check: ask its size first.
    const n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, 0);
    if (sys.isErr(n)) {
        if (sys.errnoOf(n) == 2) return sys.neg(2);
        return err.fail(sys.errnoOf(n), "PTRACE_SECCOMP_GET_FILTER({d}) of {d} failed", .{ index, tid });
    }
    if (n == 0 or n > SECCOMP_MAX_INSNS) return err.fail(sys.EINVAL, "seccomp filter {d} of {d} has {d} instructions", .{ index, tid, n });
    if (n * 8 > out.len) return err.fail(sys.ERANGE, "seccomp filter {d} of {d}: {d} instructions do not fit", .{ index, tid, n });
    const got = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, @intFromPtr(out.ptr));
    if (sys.isErr(got)) return err.fail(sys.errnoOf(got), "PTRACE_SECCOMP_GET_FILTER({d}) of {d} failed", .{ index, tid });
    // Frozen: the filter cannot change between the two calls.
    std.debug.assert(got == n);
    var md = SeccompMetadata{ .filter_off = index, .flags = 0 };
    const mr = ptrace(PTRACE_SECCOMP_GET_METADATA, tid, @sizeOf(SeccompMetadata), @intFromPtr(&md));
    if (sys.isErr(mr)) return err.fail(sys.errnoOf(mr), "PTRACE_SECCOMP_GET_METADATA({d}) of {d} failed", .{ index, tid });
    flags.* = md.flags;
    return @intCast(n);
}
