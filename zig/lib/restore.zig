//! Restore, native part: create the task at its PID with clone3(set_tid), and in
//! the child (a copy of the cr process, one thread, no JS) open the task's files
//! at their fd numbers, map the restorer blob with its plan and stack into a hole
//! and jump there. From the clone on, the child must not allocate, lock or touch
//! the runtime: only raw syscalls on memory it already has.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");

const CloneArgs = extern struct {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
};

const O_CLOEXEC: u32 = 0o2000000;
const O_PATH: u32 = 0o10000000;
const O_DIRECTORY: u32 = 0o200000;
const F_DUPFD: usize = 0;
const MAP_FIXED_NOREPLACE: usize = 0x100000;
pub const RESTORER_STACK: usize = 256 * 1024;

pub fn planHeader(plan: []u8) ?*abi.PlanHeader {
    if (plan.len < @sizeOf(abi.PlanHeader)) return null;
    const h: *abi.PlanHeader = @ptrCast(@alignCast(plan.ptr));
    if (h.magic != abi.PLAN_MAGIC or h.abi_version != abi.ABI_VERSION or h.total_len != plan.len) return null;
    return h;
}

pub fn files(plan: []u8, h: *const abi.PlanHeader) []abi.PlanFile {
    const p: [*]abi.PlanFile = @ptrCast(@alignCast(plan.ptr + h.files_off));
    return p[0..h.files_count];
}

/// Fork the task. Returns the pid (> 0) and the read end of the status pipe,
/// or -errno. The plan and blob stay owned by the caller (JS).
pub fn spawn(plan: []u8, blob: []const u8, status_rfd: *i32) i32 {
    const h = planHeader(plan) orelse return err.fail(sys.EINVAL, "restore plan is malformed (magic, version or length)", .{});
    if (h.files_off + @as(u64, h.files_count) * @sizeOf(abi.PlanFile) > plan.len) return err.fail(sys.EINVAL, "restore plan: file table out of bounds", .{});
    const needed = std.mem.alignForward(usize, blob.len, 4096) + std.mem.alignForward(usize, plan.len, 4096) + RESTORER_STACK;
    if (h.hole_len < needed) return err.fail(sys.EINVAL, "restore plan: hole of {d} bytes is smaller than the {d} needed", .{ h.hole_len, needed });

    const inherited = pt.rseqOfSelf() catch |e| return err.fail(sys.EIO, "cannot learn cr's own rseq registration: {s}", .{@errorName(e)});
    h.inherited_rseq_ptr = inherited.ptr;
    h.inherited_rseq_len = inherited.len;
    h.inherited_rseq_sig = inherited.sig;

    var pfd: [2]i32 = undefined;
    const prc = sys.syscall2(.pipe2, @intFromPtr(&pfd), O_CLOEXEC);
    if (sys.isErr(prc)) return err.fail(sys.errnoOf(prc), "pipe2 for the restore status failed", .{});

    var tid: i32 = h.pid;
    var ca = std.mem.zeroes(CloneArgs);
    ca.exit_signal = sys.SIGCHLD;
    ca.set_tid = @intFromPtr(&tid);
    ca.set_tid_size = 1;
    const rc = sys.syscall2(.clone3, @intFromPtr(&ca), @sizeOf(CloneArgs));
    if (sys.isErr(rc)) {
        sys.close(pfd[0]);
        sys.close(pfd[1]);
        const e = sys.errnoOf(rc);
        if (e == 17) return err.fail(e, "pid {d} is in use", .{h.pid});
        return err.fail(e, "clone3 with set_tid={d} failed", .{h.pid});
    }
    if (rc == 0) childStage(plan, h, blob, pfd[1]);
    sys.close(pfd[1]);
    std.debug.assert(@as(i32, @intCast(rc)) == h.pid);
    status_rfd.* = pfd[0];
    return @intCast(rc);
}

fn report(status_fd: i32, e: usize, step: abi.RestoreStep, index: u32) noreturn {
    const rec = abi.StatusRecord{ .err = @bitCast(e), .step = @intFromEnum(step), .index = index };
    _ = sys.syscall3(.write, sys.fdArg(status_fd), @intFromPtr(&rec), @sizeOf(abi.StatusRecord));
    _ = sys.syscall1(.exit_group, 1);
    unreachable;
}

fn check(status_fd: i32, rc: usize, step: abi.RestoreStep, index: u32) usize {
    if (sys.isErr(rc)) report(status_fd, rc, step, index);
    return rc;
}

/// Move `fd` to the lowest free number >= `min`, closing the original.
fn moveUp(status_fd: i32, fd: usize, min: i32, index: u32) i32 {
    const n = check(status_fd, sys.syscall3(.fcntl, fd, F_DUPFD, @intCast(min)), .dup_fd, index);
    _ = sys.syscall1(.close, fd);
    return @intCast(n);
}

fn childStage(plan: []u8, h: *abi.PlanHeader, blob: []const u8, pipe_w: i32) noreturn {
    // Nothing of cr's may run here: block every signal until the restored
    // task's own mask is loaded by rt_sigreturn.
    const all: u64 = std.math.maxInt(u64);
    _ = sys.syscall4(.rt_sigprocmask, 2, @intFromPtr(&all), 0, 8);

    // cr's rseq area is about to be unmapped: drop the registration first.
    if (h.inherited_rseq_ptr != 0) {
        _ = sys.syscall4(.rseq, h.inherited_rseq_ptr, h.inherited_rseq_len, 1, h.inherited_rseq_sig);
    }
    const base = h.service_fd_base;
    std.debug.assert(base > 2);
    // The status pipe goes to exactly `base` and everything above it is closed,
    // so the service fds that follow get contiguous numbers.
    if (pipe_w != base) {
        if (sys.isErr(sys.syscall3(.dup3, sys.fdArg(pipe_w), sys.fdArg(base), 0))) {
            report(pipe_w, @bitCast(@as(isize, -9)), .dup_fd, 0);
        }
        sys.close(pipe_w);
    }
    const status_fd = base;
    _ = sys.syscall3(.close_range, @intCast(base + 1), std.math.maxInt(u32), 0);
    h.status_fd = status_fd;
    var next: i32 = status_fd + 1;

    if (h.sid == h.pid) {
        _ = check(status_fd, sys.syscall0(.setsid), .session, 0);
    } else if (h.pgid == h.pid) {
        _ = check(status_fd, sys.syscall2(.setpgid, 0, 0), .session, 0);
    }

    const fs = files(plan, h);
    // Service files first, at numbers the task does not use.
    for (fs, 0..) |*f, i| {
        if (f.target_fd >= 0) continue;
        const path: [*:0]const u8 = @ptrCast(plan.ptr + f.path_off);
        const fd = check(status_fd, sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr(path), f.flags | O_CLOEXEC, f.mode), .open_file, @intCast(i));
        f.fd = moveUp(status_fd, fd, next, @intCast(i));
        next = f.fd + 1;
    }
    // Everything cr had open below `base` goes; the task's own fds come next.
    _ = sys.syscall3(.close_range, 0, @intCast(base - 1), 0);

    for (fs, 0..) |*f, i| {
        if (f.target_fd < 0) continue;
        std.debug.assert(f.target_fd < base);
        const flags: usize = if (f.cloexec != 0) O_CLOEXEC else 0;
        if (f.dup_of >= 0) {
            const src = fs[@intCast(f.dup_of)];
            std.debug.assert(src.target_fd >= 0);
            _ = check(status_fd, sys.syscall3(.dup3, sys.fdArg(src.target_fd), sys.fdArg(f.target_fd), flags), .dup_fd, @intCast(i));
        } else {
            const path: [*:0]const u8 = @ptrCast(plan.ptr + f.path_off);
            const fd = check(status_fd, sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr(path), f.flags & ~@as(u32, O_CLOEXEC), f.mode), .open_file, @intCast(i));
            if (f.pos != 0) _ = check(status_fd, sys.syscall3(.lseek, fd, f.pos, 0), .open_file, @intCast(i));
            if (fd != @as(usize, @intCast(f.target_fd))) {
                _ = check(status_fd, sys.syscall3(.dup3, fd, sys.fdArg(f.target_fd), flags), .dup_fd, @intCast(i));
                _ = sys.syscall1(.close, fd);
            } else if (flags != 0) {
                _ = sys.syscall3(.fcntl, fd, 2, 1); // F_SETFD FD_CLOEXEC
            }
        }
        f.fd = f.target_fd;
    }
    if (h.cwd_file >= 0) _ = check(status_fd, sys.syscall1(.fchdir, sys.fdArg(fs[@intCast(h.cwd_file)].fd)), .chdir, 0);

    // The hole: [restorer blob | plan copy | stack]. RWX because the restorer
    // runs from it and writes its frame there; it is not part of the task.
    const blob_len = std.mem.alignForward(usize, blob.len, 4096);
    const plan_len = std.mem.alignForward(usize, plan.len, 4096);
    const hole = check(status_fd, sys.syscall6(.mmap, h.hole_start, h.hole_len, 7, 0x22 | MAP_FIXED_NOREPLACE, std.math.maxInt(usize), 0), .map_hole, 0);
    if (hole != h.hole_start) report(status_fd, @bitCast(@as(isize, -17)), .map_hole, 0);
    const dst: [*]u8 = @ptrFromInt(hole);
    @memcpy(dst[0..blob.len], blob);
    @memcpy(dst[blob_len .. blob_len + plan.len], plan);
    const plan_copy = hole + blob_len;
    const stack_top = (hole + h.hole_len) & ~@as(usize, 15);
    std.debug.assert(stack_top - RESTORER_STACK >= plan_copy + plan_len);
    asm volatile (
        \\ movq %[sp], %%rsp
        \\ xorl %%ebp, %%ebp
        \\ jmpq *%[entry]
        :
        : [sp] "r" (stack_top),
          [entry] "r" (hole),
          [arg] "{rdi}" (plan_copy),
    );
    unreachable;
}
