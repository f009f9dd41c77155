//! Kernel feature probes for `cr check`: each one exercises the feature for
//! real on a throwaway child or on cr itself, and records 1 (works), 0
//! (absent) or -errno.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const pt = @import("ptrace.zig");
const scan = @import("scan.zig");

fn result(rc: usize) i32 {
    return if (sys.isErr(rc)) sys.neg(sys.errnoOf(rc)) else 1;
}

/// Fork a child that only sleeps; it runs no cr code but raw syscalls.
fn forkSleeper(set_tid: ?i32) usize {
    var tid: i32 = set_tid orelse 0;
    var ca = std.mem.zeroes(extern struct { flags: u64, pidfd: u64, child_tid: u64, parent_tid: u64, exit_signal: u64, stack: u64, stack_size: u64, tls: u64, set_tid: u64, set_tid_size: u64, cgroup: u64 });
    ca.exit_signal = sys.SIGCHLD;
    if (set_tid != null) {
        ca.set_tid = @intFromPtr(&tid);
        ca.set_tid_size = 1;
    }
    const rc = sys.syscall2(.clone3, @intFromPtr(&ca), @sizeOf(@TypeOf(ca)));
    if (rc == 0) {
        var i: u32 = 0;
        while (i < 100_000) : (i += 1) sys.nanosleepNs(10_000_000);
        _ = sys.syscall1(.exit_group, 0);
    }
    return rc;
}

fn reap(pid: usize) void {
    _ = sys.syscall2(.kill, pid, sys.SIGKILL);
    var status: u32 = 0;
    _ = sys.syscall4(.wait4, pid, @intFromPtr(&status), sys.WALL, 0);
}

var probe_word: u64 = 0x1234;

pub fn run(out: *abi.CheckReport) void {
    out.* = std.mem.zeroes(abi.CheckReport);
    const child = forkSleeper(null);
    if (sys.isErr(child)) {
        out.ptrace_seize = result(child);
        return;
    }
    const tid: i32 = @intCast(child);
    // Seize + interrupt + wait, exactly as a dump does.
    var rc = pt.ptrace(pt.PTRACE_SEIZE, tid, 0, 0);
    out.ptrace_seize = result(rc);
    if (!sys.isErr(rc)) {
        rc = pt.ptrace(pt.PTRACE_INTERRUPT, tid, 0, 0);
        if (!sys.isErr(rc)) {
            const st = pt.waitStop(tid, 2000) catch null;
            out.ptrace_interrupt = if (st != null and st.?.event == pt.PTRACE_EVENT_STOP) 1 else sys.neg(sys.EPROTO);
        } else out.ptrace_interrupt = result(rc);
        var conf: [24]u8 = undefined;
        out.rseq_config = result(pt.ptrace(pt.PTRACE_GET_RSEQ_CONFIGURATION, tid, conf.len, @intFromPtr(&conf)));
        _ = pt.ptrace(pt.PTRACE_DETACH, tid, 0, 0);
    }
    // process_vm_readv from the child: it has its own copy of this global.
    var got: u64 = 0;
    const l = [_]std.posix.iovec{.{ .base = @ptrCast(&got), .len = 8 }};
    const r = [_]std.posix.iovec_const{.{ .base = @ptrCast(&probe_word), .len = 8 }};
    rc = std.os.linux.process_vm_readv(tid, &l, &r, 0);
    out.process_vm_readv = if (sys.isErr(rc)) result(rc) else if (got == 0x1234) 1 else sys.neg(sys.EIO);
    // pidfd_open + pidfd_getfd (fd 0 of the child).
    rc = sys.syscall2(.pidfd_open, child, 0);
    out.pidfd_open = result(rc);
    if (!sys.isErr(rc)) {
        const pidfd = rc;
        const fd = sys.syscall3(.pidfd_getfd, pidfd, 0, 0);
        out.pidfd_getfd = result(fd);
        if (!sys.isErr(fd)) _ = sys.syscall1(.close, fd);
        _ = sys.syscall1(.close, pidfd);
    }
    reap(child);

    // clone3 with set_tid: ask for the pid just freed by the child.
    var tries: u32 = 0;
    out.clone3_set_tid = sys.neg(sys.EAGAIN);
    while (tries < 3) : (tries += 1) {
        const c2 = forkSleeper(tid);
        if (sys.isErr(c2)) {
            out.clone3_set_tid = result(c2);
            if (sys.errnoOf(c2) != 17) break; // EEXIST: someone took it, retry
            continue;
        }
        out.clone3_set_tid = if (c2 == child) 1 else sys.neg(sys.EPROTO);
        reap(c2);
        break;
    }

    rc = sys.syscall1(.userfaultfd, 0o2000000 | 0o4000);
    out.userfaultfd = result(rc);
    if (!sys.isErr(rc)) _ = sys.syscall1(.close, rc);
    rc = sys.syscall2(.memfd_create, @intFromPtr("cr-check"), 1);
    out.memfd_create = result(rc);
    if (!sys.isErr(rc)) _ = sys.syscall1(.close, rc);

    probePagemap(out);
    var size: u32 = 0;
    rc = sys.syscall5(.prctl, 35, 15, @intFromPtr(&size), 0, 0); // PR_SET_MM, PR_SET_MM_MAP_SIZE
    out.prctl_mm_map = if (sys.isErr(rc)) result(rc) else if (size == @sizeOf(abi.PrctlMmMap)) 1 else sys.neg(sys.EPROTO);
    // PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET: 0 or 1 where the kernel has it.
    rc = sys.syscall5(.prctl, 77, 2, 0, 0, 0);
    out.timer_restore_ids = if (sys.isErr(rc)) (if (sys.errnoOf(rc) == sys.EINVAL) 0 else result(rc)) else 1;
}

/// PAGEMAP_SCAN (6.7+) and soft-dirty, both on a page of our own.
fn probePagemap(out: *abi.CheckReport) void {
    const page = sys.syscall6(.mmap, 0, 4096, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(page)) {
        out.pagemap_scan = result(page);
        out.soft_dirty = result(page);
        return;
    }
    defer _ = sys.syscall2(.munmap, page, 4096);
    @as(*volatile u8, @ptrFromInt(page)).* = 1;
    const fd = sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr("/proc/self/pagemap"), 0, 0);
    if (sys.isErr(fd)) {
        out.pagemap_scan = result(fd);
        out.soft_dirty = result(fd);
        return;
    }
    defer _ = sys.syscall1(.close, fd);
    var entry: u64 = 0;
    const n = sys.syscall4(.pread64, fd, @intFromPtr(&entry), 8, (page / 4096) * 8);
    // A freshly written page is soft-dirty (bit 55) where the kernel tracks it.
    out.soft_dirty = if (sys.isErr(n)) result(n) else if ((entry >> 55) & 1 == 1) 1 else 0;
    var arg = scan.ScanArg{ .start = page, .end = page + 4096, .vec = 0, .vec_len = 0 };
    const rc = sys.syscall3(.ioctl, fd, scan.PAGEMAP_SCAN, @intFromPtr(&arg));
    out.pagemap_scan = if (sys.isErr(rc)) (if (sys.errnoOf(rc) == 25) 0 else result(rc)) else 1;
}

/// This CPU's user XSAVE layout (see abi.CpuXstate). A CPU without XSAVE
/// enabled by the kernel (CPUID.1:ECX.OSXSAVE clear) reports only x87 and SSE.
pub fn cpuXstate(out: *abi.CpuXstate) void {
    out.* = std.mem.zeroes(abi.CpuXstate);
    const osxsave = (sys.cpuid(1, 0)[2] >> 27) & 1 == 1;
    if (!osxsave or sys.cpuid(0, 0)[0] < 0xd) {
        out.xcr0 = 0b11;
        out.size = 512;
        return;
    }
    out.xcr0 = sys.xgetbv(0);
    // CPUID leaf 0xD: size of the XSAVE area for the features enabled in XCR0.
    out.size = sys.cpuid(0xd, 0)[1];
    var bit: u5 = 2;
    while (true) : (bit += 1) {
        if ((out.xcr0 >> bit) & 1 == 1) {
            const r = sys.cpuid(0xd, bit);
            out.sizes[bit] = r[0];
            out.offsets[bit] = r[1];
            // Every user feature has a fixed place in the standard format.
            std.debug.assert(r[1] >= 576 and r[1] + r[0] <= out.size);
        }
        if (bit == abi.XFEATURES - 1) break;
    }
}
