//! Restore, native part: create the tree of tasks at their PIDs with
//! clone3(set_tid), parents before children. Each task's child stage (a copy
//! of the cr process, one thread, no JS) sets its session and group, forks its
//! own children, puts its fds in place from the shared fd table cr prepared
//! before the first fork, maps the restorer blob with its plan and stack into
//! a hole and jumps there. From the clone on, no task may allocate, lock or
//! touch the runtime: only raw syscalls on memory it already has.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");
const fdkinds = @import("fdkinds.zig");
const tty = @import("tty.zig");

const O_CLOEXEC: u32 = 0o2000000;
const F_DUPFD: usize = 0;
const MAP_FIXED_NOREPLACE: usize = 0x100000;
const EEXIST: u16 = 17;

pub fn planHeader(plan: []u8) ?*abi.PlanHeader {
    if (plan.len < @sizeOf(abi.PlanHeader) or @intFromPtr(plan.ptr) % 8 != 0) return null;
    const h: *abi.PlanHeader = @ptrCast(@alignCast(plan.ptr));
    if (h.magic != abi.PLAN_MAGIC or h.abi_version != abi.ABI_VERSION or h.total_len != plan.len) return null;
    if (h.files_off + @as(u64, h.files_count) * @sizeOf(abi.PlanFile) > plan.len) return null;
    return h;
}

pub fn files(plan: []u8, h: *const abi.PlanHeader) []abi.PlanFile {
    const p: [*]abi.PlanFile = @ptrCast(@alignCast(plan.ptr + h.files_off));
    return p[0..h.files_count];
}

/// A validated view of the tree buffer.
const Tree = struct {
    buf: []u8,
    h: *abi.TreeHeader,

    fn tasks(t: Tree) []abi.TreeTask {
        const p: [*]abi.TreeTask = @ptrCast(@alignCast(t.buf.ptr + t.h.tasks_off));
        return p[0..t.h.task_count];
    }

    fn shared(t: Tree) []i32 {
        const p: [*]i32 = @ptrCast(@alignCast(t.buf.ptr + t.h.shared_off));
        return p[0..t.h.shared_count];
    }

    fn plan(t: Tree, i: usize) []u8 {
        const task = t.tasks()[i];
        return t.buf[task.plan_off..][0..task.plan_len];
    }

    fn epolls(t: Tree, i: usize) []abi.TreeEpoll {
        const task = t.tasks()[i];
        const p: [*]abi.TreeEpoll = @ptrCast(@alignCast(t.buf.ptr + task.epoll_off));
        return p[0..task.epoll_count];
    }
};

const TreeError = error{Malformed};

fn viewTree(buf: []u8, blob_len: usize) TreeError!Tree {
    if (buf.len < @sizeOf(abi.TreeHeader) or @intFromPtr(buf.ptr) % 8 != 0) return error.Malformed;
    const h: *abi.TreeHeader = @ptrCast(@alignCast(buf.ptr));
    if (h.magic != abi.TREE_MAGIC or h.abi_version != abi.ABI_VERSION or h.total_len != buf.len) return error.Malformed;
    if (h.task_count == 0 or h.task_count > abi.MAX_TASKS or h.shared_count > abi.MAX_SHARED_FDS) return error.Malformed;
    if (h.tasks_off % 8 != 0 or h.tasks_off + @as(u64, h.task_count) * @sizeOf(abi.TreeTask) > buf.len) return error.Malformed;
    if (h.shared_off % 4 != 0 or h.shared_off + @as(u64, h.shared_count) * 4 > buf.len) return error.Malformed;
    if (h.service_fd_base < 3) return error.Malformed;
    const t = Tree{ .buf = buf, .h = h };
    // The root stage compacts the shared fds in this order (see rootStage).
    var prev: i32 = h.service_fd_base;
    for (t.shared()) |fd| {
        if (fd <= prev) return error.Malformed;
        prev = fd;
    }
    for (t.tasks(), 0..) |task, i| {
        // Parents come before their children; only the root has none.
        if ((i == 0) != (task.parent < 0)) return error.Malformed;
        if (i > 0 and task.parent >= @as(i32, @intCast(i))) return error.Malformed;
        if (task.plan_off % 8 != 0 or @as(u64, task.plan_off) + task.plan_len > buf.len) return error.Malformed;
        const ph = planHeader(t.plan(i)) orelse return error.Malformed;
        if (ph.pid != task.pid or ph.service_fd_base != h.service_fd_base) return error.Malformed;
        if (task.zombie == 0) {
            if (ph.threads_count == 0 or ph.threads_count > abi.MAX_THREADS) return error.Malformed;
            if (ph.threads_off % 8 != 0 or ph.threads_off + @as(u64, ph.threads_count) * @sizeOf(abi.PlanThread) > task.plan_len) return error.Malformed;
            if (ph.hole_len < holeNeeded(blob_len, task.plan_len, ph.threads_count)) return error.Malformed;
        }
        for (files(t.plan(i), ph)) |f| {
            if (f.shared >= @as(i32, @intCast(h.shared_count))) return error.Malformed;
            if (f.target_fd >= h.service_fd_base) return error.Malformed;
            if (f.target_fd >= 0 and f.shared < 0) return error.Malformed;
        }
        try checkEpolls(t, i);
    }
    try checkForeground(t);
    return t;
}

/// The foreground group, if any, is led by a live task of the tree (the one
/// that makes it the foreground) through one of the shared fds.
fn checkForeground(t: Tree) TreeError!void {
    if (t.h.fg_pgid == 0) return;
    if (t.h.fg_tty < 0 or t.h.fg_tty >= @as(i32, @intCast(t.h.shared_count))) return error.Malformed;
    for (t.tasks(), 0..) |task, i| {
        if (task.pid != t.h.fg_pgid) continue;
        const ph = planHeader(t.plan(i)).?;
        if (task.zombie != 0 or ph.pgid != task.pid) return error.Malformed;
        return;
    }
    return error.Malformed;
}

/// The restorer hole's size for a plan: see abi.RESTORER_THREAD_AREA.
pub fn holeNeeded(blob_len: usize, plan_len: usize, threads: usize) usize {
    return std.mem.alignForward(usize, blob_len, 4096) + std.mem.alignForward(usize, plan_len, 4096) +
        threads * abi.RESTORER_THREAD_AREA + abi.RESTORER_STACK;
}

/// A task's epoll registrations lie in the buffer and name only fds the task
/// will have (below the service base); a zombie makes none.
fn checkEpolls(t: Tree, i: usize) TreeError!void {
    const task = t.tasks()[i];
    if (task.epoll_count == 0) return;
    if (task.zombie != 0 or task.epoll_count > abi.MAX_EPOLL_REGS or task.epoll_off % 8 != 0) return error.Malformed;
    if (@as(u64, task.epoll_off) + @as(u64, task.epoll_count) * @sizeOf(abi.TreeEpoll) > t.buf.len) return error.Malformed;
    for (t.epolls(i)) |e| {
        if (e.epfd < 0 or e.tfd < 0 or e.epfd == e.tfd) return error.Malformed;
        if (e.epfd >= t.h.service_fd_base or e.tfd >= t.h.service_fd_base) return error.Malformed;
    }
}

/// Fork the root task of `buf` (which forks the rest). Returns the root's pid
/// (> 0), the read end of the status pipe and the write end of the go pipe,
/// or -errno. Every task, once ready, waits in the restorer until cr closes
/// the go pipe: no task runs its own code before the whole tree is restored
/// (a parent must not find its zombie child still being made). The buffer and
/// blob stay owned by the caller (JS); the shared fds stay open in cr too.
pub fn spawnTree(buf: []u8, blob: []const u8, status_rfd: *i32, go_wfd: *i32) i32 {
    const t = viewTree(buf, blob.len) catch return err.fail(sys.EINVAL, "restore tree is malformed", .{});
    const inherited = pt.rseqOfSelf() catch |e| return err.fail(sys.EIO, "cannot learn cr's own rseq registration: {s}", .{@errorName(e)});
    t.h.inherited_rseq_ptr = inherited.ptr;
    t.h.inherited_rseq_len = inherited.len;
    t.h.inherited_rseq_sig = inherited.sig;

    var pfd: [2]i32 = undefined;
    const prc = sys.syscall2(.pipe2, @intFromPtr(&pfd), O_CLOEXEC);
    if (sys.isErr(prc)) return err.fail(sys.errnoOf(prc), "pipe2 for the restore status failed", .{});
    var go: [2]i32 = undefined;
    const grc = sys.syscall2(.pipe2, @intFromPtr(&go), O_CLOEXEC);
    if (sys.isErr(grc)) {
        sys.close(pfd[0]);
        sys.close(pfd[1]);
        return err.fail(sys.errnoOf(grc), "pipe2 for the restore go signal failed", .{});
    }

    const root_pid = t.tasks()[0].pid;
    const rc = cloneAt(root_pid);
    if (sys.isErr(rc)) {
        for ([_]i32{ pfd[0], pfd[1], go[0], go[1] }) |fd| sys.close(fd);
        const e = sys.errnoOf(rc);
        if (e == EEXIST) return err.fail(e, "pid {d} is in use", .{root_pid});
        return err.fail(e, "clone3 with set_tid={d} failed", .{root_pid});
    }
    if (rc == 0) rootStage(t, blob, pfd[1], go);
    sys.close(pfd[1]);
    sys.close(go[0]);
    std.debug.assert(@as(i32, @intCast(rc)) == root_pid);
    status_rfd.* = pfd[0];
    go_wfd.* = go[1];
    return @intCast(rc);
}

fn cloneAt(pid: i32) usize {
    var tid: i32 = pid;
    var ca = std.mem.zeroes(abi.CloneArgs);
    ca.exit_signal = sys.SIGCHLD;
    ca.set_tid = @intFromPtr(&tid);
    ca.set_tid_size = 1;
    return sys.syscall2(.clone3, @intFromPtr(&ca), @sizeOf(abi.CloneArgs));
}

fn report(status_fd: i32, pid: i32, e: usize, step: abi.RestoreStep, index: u32) noreturn {
    const rec = abi.StatusRecord{ .err = @bitCast(e), .step = @intFromEnum(step), .index = index, .pid = pid, ._pad = 0 };
    _ = sys.syscall3(.write, sys.fdArg(status_fd), @intFromPtr(&rec), @sizeOf(abi.StatusRecord));
    _ = sys.syscall1(.exit_group, 1);
    unreachable;
}

const Stage = struct {
    status_fd: i32,
    pid: i32,

    fn check(s: Stage, rc: usize, step: abi.RestoreStep, index: u32) usize {
        if (sys.isErr(rc)) report(s.status_fd, s.pid, rc, step, index);
        return rc;
    }
};

/// First code of the root task: put the status pipe at the service base, the
/// shared fds right after it and the go pipe's read end after them, close
/// every other fd of cr above the base, then become task 0. Every descendant
/// inherits exactly this fd layout.
fn rootStage(t: Tree, blob: []const u8, pipe_w: i32, go: [2]i32) noreturn {
    // Nothing of cr's may run here: block every signal until the restored
    // task's own mask is loaded by rt_sigreturn.
    const all: u64 = std.math.maxInt(u64);
    _ = sys.syscall4(.rt_sigprocmask, 2, @intFromPtr(&all), 0, 8);
    // cr's rseq area is about to be unmapped: drop the registration first.
    if (t.h.inherited_rseq_ptr != 0) {
        _ = sys.syscall4(.rseq, t.h.inherited_rseq_ptr, t.h.inherited_rseq_len, 1, t.h.inherited_rseq_sig);
    }
    const base = t.h.service_fd_base;
    const root_pid = t.tasks()[0].pid;
    // Only cr may hold the go pipe's write end: its close is the signal.
    sys.close(go[1]);
    // Park the go pipe's read end above every fd about to move.
    const shared_top: i32 = if (t.h.shared_count > 0) t.shared()[t.h.shared_count - 1] else base;
    const parked = sys.syscall3(.fcntl, sys.fdArg(go[0]), F_DUPFD, @intCast(@max(shared_top, base, pipe_w) + 1));
    if (sys.isErr(parked)) report(pipe_w, root_pid, parked, .dup_fd, 0);
    sys.close(go[0]);
    // The shared fds are all above `base` (viewTree), so the pipe can go there.
    if (pipe_w != base) {
        if (sys.isErr(sys.syscall3(.dup3, sys.fdArg(pipe_w), sys.fdArg(base), 0))) {
            report(pipe_w, root_pid, @bitCast(@as(isize, -9)), .dup_fd, 0);
        }
        sys.close(pipe_w);
    }
    const st = Stage{ .status_fd = base, .pid = root_pid };
    // Compact the shared fds to base+1, base+2, ...: they are sorted and all
    // above base, so the i-th one is at or above its target, and a target can
    // only hold an fd that is no longer needed.
    for (t.shared(), 0..) |*fd, i| {
        const target: i32 = base + 1 + @as(i32, @intCast(i));
        std.debug.assert(fd.* >= target);
        if (fd.* != target) {
            _ = st.check(sys.syscall3(.dup3, sys.fdArg(fd.*), sys.fdArg(target), 0), .dup_fd, @intCast(i));
            sys.close(fd.*);
            fd.* = target;
        }
    }
    const go_fd = goFd(t);
    if (parked != go_fd) {
        _ = st.check(sys.syscall3(.dup3, parked, sys.fdArg(go_fd), 0), .dup_fd, t.h.shared_count);
        _ = sys.syscall1(.close, parked);
    }
    _ = sys.syscall3(.close_range, @intCast(go_fd + 1), std.math.maxInt(u32), 0);
    taskStage(t, 0, blob);
}

/// Session and group, set by the task itself before it forks: its children
/// inherit them. pgid 0 means "inherited": nothing to do. A group led by a
/// sibling exists already: the parent made each group leader's group right
/// after forking it.
fn setSession(st: Stage, h: *const abi.PlanHeader) void {
    if (h.sid == h.pid) {
        _ = st.check(sys.syscall0(.setsid), .session, 0);
    } else if (h.pgid == h.pid) {
        _ = st.check(sys.syscall2(.setpgid, 0, 0), .session, 1);
    } else if (h.pgid != 0 and sys.syscall1(.getpgid, 0) != @as(usize, @intCast(h.pgid))) {
        _ = st.check(sys.syscall2(.setpgid, 0, @intCast(h.pgid)), .session, 2);
    }
}

/// --shell-job: the task leading the group that was the terminal's foreground
/// at dump makes it the foreground of cr's terminal, before any task of the
/// job runs (one that read the terminal from the background would be stopped
/// by SIGTTIN). Being in a background group of that terminal now, it would get
/// SIGTTOU for this, but every signal is blocked here (rootStage), which the
/// kernel takes as consent.
fn setForeground(st: Stage, t: Tree) void {
    std.debug.assert(t.h.fg_tty >= 0 and t.h.fg_tty < @as(i32, @intCast(t.h.shared_count)));
    const pgid: i32 = t.h.fg_pgid;
    const fd = t.shared()[@intCast(t.h.fg_tty)];
    _ = st.check(sys.syscall3(.ioctl, sys.fdArg(fd), tty.TIOCSPGRP, @intFromPtr(&pgid)), .foreground, 0);
}

/// A task that was a zombie at dump time ends here the way it ended then.
fn becomeZombie(st: Stage, status: i32) noreturn {
    const sig: u32 = @as(u32, @bitCast(status)) & 0x7f;
    if (sig != 0) {
        // Killed by a signal: default action, unblocked, no core file.
        const no_core = [2]u64{ 0, 0 };
        _ = sys.syscall4(.prlimit64, 0, 4, @intFromPtr(&no_core), 0); // RLIMIT_CORE
        const dfl = abi.KSigaction{ .handler = 0, .flags = 0, .restorer = 0, .mask = 0 };
        _ = sys.syscall4(.rt_sigaction, sig, @intFromPtr(&dfl), 0, 8);
        const mask: u64 = ~(@as(u64, 1) << @intCast(sig - 1));
        _ = sys.syscall4(.rt_sigprocmask, 2, @intFromPtr(&mask), 0, 8);
        _ = sys.syscall2(.kill, sys.syscall0(.getpid), sig);
        report(st.status_fd, st.pid, @bitCast(@as(isize, -22)), .zombie, sig);
    }
    _ = sys.syscall1(.exit_group, (@as(u32, @bitCast(status)) >> 8) & 0xff);
    unreachable;
}

/// Move `fd` to the lowest free number >= `min`, closing the original.
fn moveUp(st: Stage, fd: usize, min: i32, index: u32) i32 {
    const n = st.check(sys.syscall3(.fcntl, fd, F_DUPFD, @intCast(min)), .dup_fd, index);
    _ = sys.syscall1(.close, fd);
    return @intCast(n);
}

/// Where the go pipe's read end is in every task: right after the shared fds.
fn goFd(t: Tree) i32 {
    return t.h.service_fd_base + 1 + @as(i32, @intCast(t.h.shared_count));
}

fn taskStage(t: Tree, i: usize, blob: []const u8) noreturn {
    const task = t.tasks()[i];
    const plan = t.plan(i);
    const h = planHeader(plan).?;
    const base = t.h.service_fd_base;
    const st = Stage{ .status_fd = base, .pid = task.pid };
    h.status_fd = base;
    h.go_fd = goFd(t);

    setSession(st, h);
    if (task.zombie != 0) becomeZombie(st, task.exit_status);
    if (t.h.fg_pgid == task.pid) setForeground(st, t);

    // Children next, in table order: each inherits the session, group and
    // the status + shared fds, and goes on with its own stage.
    for (t.tasks()[i + 1 ..], i + 1..) |child, j| {
        if (child.parent != @as(i32, @intCast(i))) continue;
        const rc = cloneAt(child.pid);
        if (sys.isErr(rc)) report(base, child.pid, rc, .fork, @intCast(j));
        if (rc == 0) taskStage(t, j, blob);
        const ch = planHeader(t.plan(j)).?;
        // Make a new group leader's group now, so that a later sibling can join it.
        if (ch.pgid == ch.pid and ch.sid != ch.pid) _ = sys.syscall2(.setpgid, rc, rc);
    }

    const fs = files(plan, h);
    const shared = t.shared();
    var next: i32 = h.go_fd + 1;
    // Service files, at numbers the task does not use.
    for (fs, 0..) |*f, k| {
        if (f.target_fd >= 0) continue;
        if (f.shared >= 0) {
            f.fd = shared[@intCast(f.shared)];
            continue;
        }
        const path: [*:0]const u8 = @ptrCast(plan.ptr + f.path_off);
        const fd = st.check(sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr(path), f.flags | O_CLOEXEC, f.mode), .open_file, @intCast(k));
        f.fd = moveUp(st, fd, next, @intCast(k));
        next = f.fd + 1;
    }
    // Everything cr had open below `base` goes; the task's own fds come next,
    // each a dup of the open file description cr prepared.
    _ = sys.syscall3(.close_range, 0, @intCast(base - 1), 0);
    for (fs, 0..) |*f, k| {
        if (f.target_fd < 0) continue;
        std.debug.assert(f.target_fd < base and f.shared >= 0);
        const flags: usize = if (f.cloexec != 0) O_CLOEXEC else 0;
        _ = st.check(sys.syscall3(.dup3, sys.fdArg(shared[@intCast(f.shared)]), sys.fdArg(f.target_fd), flags), .dup_fd, @intCast(k));
        f.fd = f.target_fd;
    }
    // Epoll registrations are keyed by (file, fd number in the process that
    // makes them): only now, with its own fds in place, can the task make them.
    for (t.epolls(i), 0..) |*e, k| _ = st.check(fdkinds.addEpoll(e), .epoll, @intCast(k));
    if (h.cwd_file >= 0) _ = st.check(sys.syscall1(.fchdir, sys.fdArg(fs[@intCast(h.cwd_file)].fd)), .chdir, 0);

    // The hole: [restorer blob | plan copy | thread areas | stack] (see
    // abi.RESTORER_THREAD_AREA). RWX because the restorer runs from it and
    // writes its frames there; it is not part of the task.
    const blob_len = std.mem.alignForward(usize, blob.len, 4096);
    const plan_len = std.mem.alignForward(usize, plan.len, 4096);
    const hole = st.check(sys.syscall6(.mmap, h.hole_start, h.hole_len, 7, 0x22 | MAP_FIXED_NOREPLACE, std.math.maxInt(usize), 0), .map_hole, 0);
    if (hole != h.hole_start) report(base, task.pid, @bitCast(@as(isize, -17)), .map_hole, 0);
    const dst: [*]u8 = @ptrFromInt(hole);
    @memcpy(dst[0..blob.len], blob);
    @memcpy(dst[blob_len .. blob_len + plan.len], plan);
    const plan_copy = hole + blob_len;
    const stack_top = (hole + h.hole_len) & ~@as(usize, 15);
    std.debug.assert(stack_top - abi.RESTORER_STACK >= plan_copy + plan_len + h.threads_count * abi.RESTORER_THREAD_AREA);
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
