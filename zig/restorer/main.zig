//! The restorer: last stage of restore, running inside the new task from the
//! hole the child stage mapped for it. It throws away everything the task
//! inherited from cr, rebuilds the dumped address space, loads the per-task
//! kernel state, starts the task's other threads (clone3 at their tids) and
//! ends, in every thread, in rt_sigreturn on a frame made of that thread's
//! saved registers and xstate, which lands it exactly where it was frozen.
//!
//! No allocation, no globals, no libc: the plan (a copy inside the hole) is
//! the only input, syscalls the only tool. On failure it writes one
//! StatusRecord to the status pipe and exits; cr then reaps and reports.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys");
/// Built ReleaseSafe: a failed assert or bounds check traps (ud2) here, in
/// someone else's task, rather than running on undefined.
pub const panic = std.debug.no_panic;
const frame = abi.sigframe;

export fn blob_entry() linksection(".text.entry") callconv(.naked) noreturn {
    // rdi = plan copy, rsp = top of the restorer stack (set by the child stage).
    asm volatile (
        \\ andq $-16, %%rsp
        \\ call restorer_main
        \\ ud2
    );
}

const TASK_SIZE: u64 = 0x7ffffffff000;
const PAGE: u64 = 4096;

const Ctx = struct {
    h: *abi.PlanHeader,
    base: [*]u8,

    fn fail(c: *const Ctx, rc: usize, step: abi.RestoreStep, index: u32) noreturn {
        const rec = abi.StatusRecord{ .err = @bitCast(rc), .step = @intFromEnum(step), .index = index, .pid = c.h.pid, ._pad = 0 };
        _ = sys.syscall3(sys.SYS_write, @bitCast(@as(isize, c.h.status_fd)), @intFromPtr(&rec), @sizeOf(abi.StatusRecord));
        _ = sys.syscall1(sys.SYS_exit_group, 1);
        unreachable;
    }

    fn check(c: *const Ctx, rc: usize, step: abi.RestoreStep, index: u32) usize {
        if (sys.isErr(rc)) c.fail(rc, step, index);
        return rc;
    }

    fn vmas(c: *const Ctx) []const abi.PlanVma {
        const p: [*]const abi.PlanVma = @ptrCast(@alignCast(c.base + c.h.vmas_off));
        return p[0..c.h.vmas_count];
    }

    fn pages(c: *const Ctx) []const abi.PlanPages {
        const p: [*]const abi.PlanPages = @ptrCast(@alignCast(c.base + c.h.pages_off));
        return p[0..c.h.pages_count];
    }

    fn files(c: *const Ctx) []const abi.PlanFile {
        const p: [*]const abi.PlanFile = @ptrCast(@alignCast(c.base + c.h.files_off));
        return p[0..c.h.files_count];
    }

    fn posixTimers(c: *const Ctx) []const abi.PlanPosixTimer {
        const p: [*]const abi.PlanPosixTimer = @ptrCast(@alignCast(c.base + c.h.posix_timers_off));
        return p[0..c.h.posix_timers_count];
    }

    fn seccompFilters(c: *const Ctx) []const abi.PlanSeccompFilter {
        const p: [*]const abi.PlanSeccompFilter = @ptrCast(@alignCast(c.base + c.h.seccomp_off));
        return p[0..c.h.seccomp_count];
    }

    /// `count` filter indexes (u32) at `off`.
    fn chain(c: *const Ctx, off: u32, count: u32) []align(1) const u32 {
        const p: [*]align(1) const u32 = @ptrCast(c.base + off);
        return p[0..count];
    }

    fn threads(c: *const Ctx) []const abi.PlanThread {
        const p: [*]const abi.PlanThread = @ptrCast(@alignCast(c.base + c.h.threads_off));
        return p[0..c.h.threads_count];
    }

    /// Thread k's area in the hole, right after the plan copy (see abi.RESTORER_THREAD_AREA).
    fn threadArea(c: *const Ctx, k: usize) u64 {
        return std.mem.alignForward(u64, @intFromPtr(c.base) + c.h.total_len, PAGE) + k * abi.RESTORER_THREAD_AREA;
    }
};

export fn restorer_main(plan: *abi.PlanHeader) callconv(.c) noreturn {
    const c = Ctx{ .h = plan, .base = @ptrCast(plan) };
    if (plan.magic != abi.PLAN_MAGIC) c.fail(@bitCast(@as(isize, -22)), .misc, 0);
    checkPlan(&c);

    unmapOld(&c);
    moveSpecials(&c);
    mapVmas(&c);
    fillPages(&c);
    protectVmas(&c);
    setProtectionKeys(&c);
    setMm(&c);
    setSignals(&c);
    setProcessState(&c);
    setRlimits(&c);
    requestXstatePermissions(&c);
    queuePending(&c, plan.sigpending_off, plan.sigpending_count, false);
    startThreads(&c);
    // After the threads: a timer may notify one of them.
    createPosixTimers(&c);
    leave(&c, 0);
}

/// Entry of every other thread, on its own stack in its area (see cloneThread).
export fn restorer_thread(plan: *abi.PlanHeader, k: usize) callconv(.c) noreturn {
    const c = Ctx{ .h = plan, .base = @ptrCast(plan) };
    leave(&c, k);
}

/// The tables the restorer reads lie inside the plan, the thread table names
/// the task's pid first and every thread area fits in the hole below the main
/// stack, every index points into its table: checked before anything is torn
/// down, so a bad plan fails cleanly with a status record, not with a trap.
fn checkPlan(c: *const Ctx) void {
    const h = c.h;
    const bad: usize = @bitCast(@as(isize, -22));
    if (h.special_count > abi.MAX_SPECIAL) c.fail(bad, .move_special, 0);
    if (h.vmas_off + @as(u64, h.vmas_count) * @sizeOf(abi.PlanVma) > h.total_len or h.vmas_off % 8 != 0) c.fail(bad, .map_vma, 0);
    if (h.pages_off + @as(u64, h.pages_count) * @sizeOf(abi.PlanPages) > h.total_len or h.pages_off % 8 != 0) c.fail(bad, .fill_pages, 0);
    if (h.files_off + @as(u64, h.files_count) * @sizeOf(abi.PlanFile) > h.total_len or h.files_off % 8 != 0) c.fail(bad, .open_file, 0);
    if (h.auxv_off + @as(u64, h.auxv_len) > h.total_len) c.fail(bad, .set_mm, 0);
    const files_count: i64 = h.files_count;
    if (h.pages_file < 0 or h.pages_file >= files_count) c.fail(bad, .fill_pages, 1);
    if (h.exe_file < -1 or h.exe_file >= files_count) c.fail(bad, .set_mm, 1);
    for (c.vmas(), 0..) |v, i| {
        const at: u32 = @intCast(i);
        if (v.start >= v.end or v.start % PAGE != 0 or v.end % PAGE != 0 or v.end > TASK_SIZE) c.fail(bad, .map_vma, at);
        if (v.kind == .file and (v.file_index < 0 or v.file_index >= files_count)) c.fail(bad, .map_vma, at);
        if (@as(u64, v.page_first) + v.page_count > h.pages_count) c.fail(bad, .map_vma, at);
        if (v.pkey > 15) c.fail(bad, .pkey, at);
    }
    for (c.pages(), 0..) |p, i| {
        if (p.len == 0 or p.len % PAGE != 0 or p.addr % PAGE != 0 or p.len > TASK_SIZE or p.addr > TASK_SIZE - p.len) c.fail(bad, .fill_pages, @intCast(i));
    }
    if (h.threads_count == 0 or h.threads_count > abi.MAX_THREADS) c.fail(bad, .thread, 0);
    if (h.threads_off + @as(u64, h.threads_count) * @sizeOf(abi.PlanThread) > h.total_len) c.fail(bad, .thread, 1);
    if (c.threads()[0].tid != h.pid) c.fail(bad, .thread, 2);
    if (c.threadArea(h.threads_count) + abi.RESTORER_STACK > h.hole_start + h.hole_len) c.fail(bad, .thread, 3);
    if (h.posix_timers_count > abi.MAX_POSIX_TIMERS) c.fail(bad, .posix_timer, 0);
    if (h.creds.groups_count > abi.MAX_GROUPS or h.creds.groups_off + @as(u64, h.creds.groups_count) * 4 > h.total_len) c.fail(bad, .creds, 0);
    if (h.posix_timers_off + @as(u64, h.posix_timers_count) * @sizeOf(abi.PlanPosixTimer) > h.total_len) c.fail(bad, .posix_timer, 1);
    if (h.seccomp_count > abi.MAX_SECCOMP_FILTERS or h.seccomp_off + @as(u64, h.seccomp_count) * @sizeOf(abi.PlanSeccompFilter) > h.total_len) c.fail(bad, .seccomp, 0);
    for (c.seccompFilters(), 0..) |f, i| {
        if (f.insns_count == 0 or f.insns_count > abi.SECCOMP_MAX_INSNS or f.insns_off + @as(u64, f.insns_count) * 8 > h.total_len) c.fail(bad, .seccomp, @intCast(i));
    }
    checkChain(c, h.seccomp_common_off, h.seccomp_common_count);
    for (c.threads(), 0..) |t, k| {
        checkChain(c, t.seccomp_off, t.seccomp_count);
        if (t.xstate_len > abi.XSTATE_MAX or t.xstate_off + @as(u64, t.xstate_len) > h.total_len) c.fail(bad, .thread, @intCast(k));
        // A frame the kernel rejects would silently restore only the legacy x87/SSE part.
        if (!frame.xstateMarkersValid(c.base[t.xstate_off..][0..t.xstate_len])) c.fail(bad, .xstate, @intCast(k));
        if (t.sigpending_off + @as(u64, t.sigpending_count) * abi.SIGINFO_SIZE > h.total_len) c.fail(bad, .thread, @intCast(k));
    }
}

/// A chain of filter indexes lies inside the plan and names existing filters.
fn checkChain(c: *const Ctx, off: u32, count: u32) void {
    const bad: usize = @bitCast(@as(isize, -22));
    if (count > abi.MAX_SECCOMP_FILTERS or off + @as(u64, count) * 4 > c.h.total_len) c.fail(bad, .seccomp, 0);
    for (c.chain(off, count)) |x| {
        if (x >= c.h.seccomp_count) c.fail(bad, .seccomp, x);
    }
}

/// Unmap every range of [0, TASK_SIZE) except the hole and the special
/// mappings (vdso & co.) we are going to move: they cannot be re-created.
fn unmapOld(c: *const Ctx) void {
    // Keep-list sorted by start: at most the hole + MAX_SPECIAL entries.
    var keep: [abi.MAX_SPECIAL + 1][2]u64 = undefined;
    var n: usize = 0;
    keep[n] = .{ c.h.hole_start, c.h.hole_start + c.h.hole_len };
    n += 1;
    var i: usize = 0;
    while (i < c.h.special_count) : (i += 1) {
        const s = c.h.special[i];
        keep[n] = .{ s.cur_start, s.cur_start + s.len };
        n += 1;
    }
    // Insertion sort, n <= 5.
    var a: usize = 1;
    while (a < n) : (a += 1) {
        var b = a;
        while (b > 0 and keep[b - 1][0] > keep[b][0]) : (b -= 1) {
            const t = keep[b];
            keep[b] = keep[b - 1];
            keep[b - 1] = t;
        }
    }
    var cursor: u64 = 0;
    for (keep[0..n]) |k| {
        if (k[0] > cursor) _ = c.check(sys.syscall2(sys.SYS_munmap, cursor, k[0] - cursor), .unmap_old, 0);
        cursor = @max(cursor, k[1]);
    }
    if (cursor < TASK_SIZE) _ = c.check(sys.syscall2(sys.SYS_munmap, cursor, TASK_SIZE - cursor), .unmap_old, 1);
}

/// Move vvar / vvar_vclock / vdso to where the dumped task had them. They keep
/// their relative layout, so moving in the right order (like memmove) never
/// lands one on another that has not moved yet.
fn moveSpecials(c: *const Ctx) void {
    const n = c.h.special_count;
    if (n == 0) return;
    const up = c.h.special[0].target_start > c.h.special[0].cur_start;
    var k: usize = 0;
    while (k < n) : (k += 1) {
        const i = if (up) n - 1 - k else k;
        const s = c.h.special[i];
        if (s.cur_start == s.target_start) continue;
        const rc = sys.syscall5(sys.SYS_mremap, s.cur_start, s.len, s.len, sys.MREMAP_MAYMOVE | sys.MREMAP_FIXED, s.target_start);
        _ = c.check(rc, .move_special, @intCast(i));
    }
}

fn mapVmas(c: *const Ctx) void {
    const fs = c.files();
    for (c.vmas(), 0..) |v, i| {
        std.debug.assert(v.start < v.end and v.start % PAGE == 0 and v.end % PAGE == 0);
        // Writable while we fill it; the final protection comes in protectVmas.
        const prot = if (v.page_count > 0) v.prot | sys.PROT_WRITE else v.prot;
        const flags = v.flags | sys.MAP_FIXED;
        const fd: usize = if (v.kind == .file) @bitCast(@as(isize, fs[@intCast(v.file_index)].fd)) else std.math.maxInt(usize);
        const rc = sys.syscall6(sys.SYS_mmap, v.start, v.end - v.start, prot, flags, fd, v.pgoff);
        _ = c.check(rc, .map_vma, @intCast(i));
        if (rc != v.start) c.fail(@bitCast(@as(isize, -14)), .map_vma, @intCast(i));
    }
}

fn fillPages(c: *const Ctx) void {
    const fd: usize = @bitCast(@as(isize, c.files()[@intCast(c.h.pages_file)].fd));
    for (c.pages(), 0..) |p, i| {
        var done: u64 = 0;
        // Bounded: every round moves forward by at least one byte or fails.
        while (done < p.len) {
            const want = @min(p.len - done, 1 << 30);
            const rc = sys.syscall4(sys.SYS_pread64, fd, p.addr + done, want, p.file_off + done);
            _ = c.check(rc, .fill_pages, @intCast(i));
            if (rc == 0) c.fail(@bitCast(@as(isize, -5)), .fill_pages, @intCast(i));
            done += rc;
        }
    }
}

fn protectVmas(c: *const Ctx) void {
    for (c.vmas(), 0..) |v, i| {
        if (v.page_count == 0 or (v.prot & sys.PROT_WRITE) != 0) continue;
        _ = c.check(sys.syscall3(sys.SYS_mprotect, v.start, v.end - v.start, v.prot), .protect_vma, @intCast(i));
    }
}

/// Memory protection keys (x86 PKU): the keys the VMAs use are allocated
/// again (pkey_alloc hands out the lowest free one: take keys until every
/// one needed is ours, give back the others), then each VMA gets its key.
/// The keys' rights are the thread's PKRU, which its frame brings back.
fn setProtectionKeys(c: *const Ctx) void {
    var needed: u16 = 0;
    for (c.vmas()) |v| {
        if (v.pkey != 0) needed |= @as(u16, 1) << @intCast(v.pkey);
    }
    if (needed == 0) return;
    var have: u16 = 0;
    var spare: u16 = 0;
    var tries: u32 = 0;
    // Bounded: at most 16 keys exist.
    while (have & needed != needed and tries < 16) : (tries += 1) {
        const k = c.check(sys.syscall2(sys.SYS_pkey_alloc, 0, 0), .pkey, @intCast(tries));
        if (k > 15) c.fail(@bitCast(@as(isize, -22)), .pkey, @intCast(k));
        const bit = @as(u16, 1) << @intCast(k);
        if (needed & bit != 0) have |= bit else spare |= bit;
    }
    if (have & needed != needed) c.fail(@bitCast(@as(isize, -28)), .pkey, needed & ~have);
    var k: u5 = 1;
    while (k < 16) : (k += 1) {
        if (spare & (@as(u16, 1) << @intCast(k)) != 0) _ = c.check(sys.syscall1(sys.SYS_pkey_free, k), .pkey, k);
    }
    for (c.vmas(), 0..) |v, i| {
        if (v.pkey == 0) continue;
        _ = c.check(sys.syscall4(sys.SYS_pkey_mprotect, v.start, v.end - v.start, v.prot, v.pkey), .pkey, @intCast(i));
    }
}

fn setMm(c: *const Ctx) void {
    var mm = c.h.mm;
    mm.auxv = @intFromPtr(c.base + c.h.auxv_off);
    mm.auxv_size = c.h.auxv_len;
    mm.exe_fd = if (c.h.exe_file >= 0) @intCast(c.files()[@intCast(c.h.exe_file)].fd) else std.math.maxInt(u32);
    _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_SET_MM, sys.PR_SET_MM_MAP, @intFromPtr(&mm), @sizeOf(abi.PrctlMmMap), 0), .set_mm, 0);
}

fn setSignals(c: *const Ctx) void {
    var sig: usize = 1;
    while (sig <= abi.NSIG) : (sig += 1) {
        if (sig == 9 or sig == 19) continue; // SIGKILL, SIGSTOP: fixed by the kernel
        const act = c.h.sigactions[sig - 1];
        _ = c.check(sys.syscall4(sys.SYS_rt_sigaction, sig, @intFromPtr(&act), 0, 8), .sigaction, @intCast(sig));
    }
    var which: usize = 0;
    while (which < 3) : (which += 1) {
        const it = c.h.itimers[which];
        _ = c.check(sys.syscall3(sys.SYS_setitimer, which, @intFromPtr(&it), 0), .itimer, @intCast(which));
    }
}

fn setProcessState(c: *const Ctx) void {
    _ = sys.syscall1(sys.SYS_umask, c.h.umask);
    _ = c.check(sys.syscall1(sys.SYS_personality, c.h.personality), .misc, 1);
}

/// The resource limits, process-wide, late: a lower RLIMIT_AS or RLIMIT_DATA
/// must not stop the restorer's own mappings. Still privileged (raising a hard
/// limit needs CAP_SYS_RESOURCE), so before the credentials.
fn setRlimits(c: *const Ctx) void {
    for (&c.h.rlimits, 0..) |*l, r| {
        if ((c.h.rlimits_set >> @intCast(r)) & 1 == 0) continue;
        _ = c.check(sys.syscall4(sys.SYS_prlimit64, 0, r, @intFromPtr(l), 0), .rlimit, @intCast(r));
    }
}

/// What each thread sets for itself: name, clear-tid address, robust list, rseq.
fn setThreadState(c: *const Ctx, t: *const abi.PlanThread, k: usize) void {
    const idx: u32 = @intCast(k);
    _ = c.check(sys.syscall2(sys.SYS_prctl, sys.PR_SET_NAME, @intFromPtr(&t.comm)), .thread, idx);
    _ = sys.syscall1(sys.SYS_set_tid_address, t.tid_address);
    if (t.robust_head != 0) _ = c.check(sys.syscall2(sys.SYS_set_robust_list, t.robust_head, t.robust_len), .thread, idx);
    if (t.rseq_ptr != 0) _ = c.check(sys.syscall4(sys.SYS_rseq, t.rseq_ptr, t.rseq_len, 0, t.rseq_sig), .rseq, idx);
}

const CapHeader = extern struct { version: u32, pid: i32 };
const CapData = extern struct { effective: u32, permitted: u32, inheritable: u32 };
const LINUX_CAPABILITY_VERSION_3: u32 = 0x20080522;
const EINVAL: usize = @bitCast(@as(isize, -22));

/// The process's permissions for dynamic xstate features (AMX TILEDATA), as
/// it had them: asked for one by one, before any other thread exists (a
/// permission is the whole process's).
fn requestXstatePermissions(c: *const Ctx) void {
    var bit: u7 = 0;
    while (bit < 64) : (bit += 1) {
        if ((c.h.xcomp_perm >> @intCast(bit)) & 1 == 0) continue;
        _ = c.check(sys.syscall2(sys.SYS_arch_prctl, sys.ARCH_REQ_XCOMP_PERM, bit), .xstate, bit);
    }
}

/// A thread's frame that holds a dynamic feature needs the thread's larger
/// xstate buffer, which the kernel gives it only on its first use of the
/// feature (the trap of a use while the feature is still disarmed): without
/// it rt_sigreturn finds the frame too big and restores x87/SSE only. Use
/// them once here: XRSTOR of zeros for just those features. Loading zeros
/// counts as a use only when the header says the state is there (XSTATE_BV;
/// an init state is taken without a trap), and XRSTOR needs the whole area up
/// to their end: it runs on the place the frame's fpstate takes next (see
/// buildFrame), which the frame then overwrites with the real content.
fn useDynamicFeatures(c: *const Ctx, t: *const abi.PlanThread, area: u64) void {
    const dynamic = frameFeatures(c, t) & c.h.xcomp_perm;
    if (dynamic == 0) return;
    const fp: [*]align(64) u8 = @ptrFromInt(area + FRAME_FP_OFF);
    std.debug.assert(FRAME_FP_OFF + t.xstate_len <= abi.RESTORER_FRAME_RESERVE);
    @memset(fp[0..t.xstate_len], 0);
    std.mem.writeInt(u64, fp[XSAVE_LEGACY..][0..8], dynamic, .little); // XSTATE_BV
    asm volatile ("xrstor64 (%[p])"
        :
        : [p] "r" (fp),
          [lo] "{eax}" (@as(u32, @truncate(dynamic))),
          [hi] "{edx}" (@as(u32, @truncate(dynamic >> 32))),
        : .{ .memory = true });
}

fn capHalf(v: u64, high: bool) u32 {
    return @truncate(if (high) v >> 32 else v);
}

/// The task's credentials, for the calling thread (the kernel keeps them per
/// thread): bounding set first (needs CAP_SETPCAP), groups and gids (needs
/// CAP_SETGID), uids with KEEPCAPS so the capabilities survive, then the
/// exact capability sets, ambient ones, no_new_privs and dumpable.
fn setCreds(c: *const Ctx, k: usize) void {
    const cr = &c.h.creds;
    const idx: u32 = @intCast(k);
    var cap: usize = 0;
    while (cap < 64) : (cap += 1) {
        if ((cr.cap_bnd >> @intCast(cap)) & 1 != 0) continue;
        const rc = sys.syscall2(sys.SYS_prctl, sys.PR_CAPBSET_DROP, cap);
        // EINVAL: beyond the kernel's last capability.
        if (sys.isErr(rc) and rc != EINVAL) c.fail(rc, .creds, idx);
    }
    _ = c.check(sys.syscall2(sys.SYS_setgroups, cr.groups_count, @intFromPtr(c.base + cr.groups_off)), .creds, idx);
    _ = c.check(sys.syscall3(sys.SYS_setresgid, cr.gid[0], cr.gid[1], cr.gid[2]), .creds, idx);
    _ = sys.syscall1(sys.SYS_setfsgid, cr.gid[3]);
    _ = c.check(sys.syscall2(sys.SYS_prctl, sys.PR_SET_KEEPCAPS, 1), .creds, idx);
    _ = c.check(sys.syscall3(sys.SYS_setresuid, cr.uid[0], cr.uid[1], cr.uid[2]), .creds, idx);
    _ = sys.syscall1(sys.SYS_setfsuid, cr.uid[3]);
    // Kept for seccomp() when the task has no no_new_privs: dropped in dropSeccompAdmin.
    const admin: u64 = if (c.h.seccomp_admin != 0) CAP_SYS_ADMIN else 0;
    setCaps(c, cr.cap_eff | admin, cr.cap_prm | admin, cr.cap_inh, .creds, idx);
    _ = c.check(sys.syscall2(sys.SYS_prctl, sys.PR_SET_KEEPCAPS, 0), .creds, idx);
    _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_CAP_AMBIENT, sys.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), .creds, idx);
    cap = 0;
    while (cap < 64) : (cap += 1) {
        if ((cr.cap_amb >> @intCast(cap)) & 1 == 0) continue;
        _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_CAP_AMBIENT, sys.PR_CAP_AMBIENT_RAISE, cap, 0, 0), .creds, idx);
    }
    if (cr.no_new_privs != 0) _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), .creds, idx);
    // After the uid change, which resets it: the task's own setting.
    _ = c.check(sys.syscall2(sys.SYS_prctl, sys.PR_SET_DUMPABLE, cr.dumpable), .creds, idx);
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

fn setCaps(c: *const Ctx, eff: u64, prm: u64, inh: u64, step: abi.RestoreStep, idx: u32) void {
    var hdr = CapHeader{ .version = LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    const data = [2]CapData{
        .{ .effective = capHalf(eff, false), .permitted = capHalf(prm, false), .inheritable = capHalf(inh, false) },
        .{ .effective = capHalf(eff, true), .permitted = capHalf(prm, true), .inheritable = capHalf(inh, true) },
    };
    _ = c.check(sys.syscall2(sys.SYS_capset, @intFromPtr(&hdr), @intFromPtr(&data)), step, idx);
}

const SECCOMP_SET_MODE_FILTER: usize = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
/// struct sock_fprog: the instruction count, then a pointer to them.
const SockFprog = extern struct { len: u16, _pad: [6]u8 = .{0} ** 6, filter: u64 };

/// Install the filters of `chain` in order (oldest first), in the calling
/// thread, or with `sync` in all threads of the task at once (TSYNC: they
/// then share the very same filters, as before the dump).
fn installFilters(c: *const Ctx, chain: []align(1) const u32, sync: bool) void {
    const filters = c.seccompFilters();
    for (chain) |x| {
        const f = filters[x];
        const prog = SockFprog{ .len = @intCast(f.insns_count), .filter = @intFromPtr(c.base + f.insns_off) };
        const flags = f.flags | (if (sync) SECCOMP_FILTER_FLAG_TSYNC else 0);
        const rc = sys.syscall3(sys.SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, @intFromPtr(&prog));
        // TSYNC: a positive return is the thread that could not be synced.
        if (rc != 0) c.fail(if (sys.isErr(rc)) rc else EINVAL, .seccomp, x);
    }
}

/// After the filters: the capabilities exactly as dumped (see PlanHeader.seccomp_admin).
fn dropSeccompAdmin(c: *const Ctx, k: usize) void {
    if (c.h.seccomp_admin == 0) return;
    const cr = &c.h.creds;
    setCaps(c, cr.cap_eff, cr.cap_prm, cr.cap_inh, .seccomp, @intCast(k));
}

/// Put back the signals that were pending at dump time: the process-wide
/// ones, or (`own`) those of the calling thread only. Every signal is blocked
/// here, so they stay queued until rt_sigreturn loads the thread's mask.
fn queuePending(c: *const Ctx, off: u32, count: u32, own: bool) void {
    const pid = sys.syscall0(sys.SYS_getpid);
    const tid = sys.syscall0(sys.SYS_gettid);
    var i: u32 = 0;
    while (i < count) : (i += 1) {
        const info: [*]const u8 = c.base + off + i * abi.SIGINFO_SIZE;
        const signo: usize = @intCast(@as(*align(1) const i32, @ptrCast(info)).*);
        const rc = if (own)
            sys.syscall4(sys.SYS_rt_tgsigqueueinfo, pid, tid, signo, @intFromPtr(info))
        else
            sys.syscall3(sys.SYS_rt_sigqueueinfo, pid, signo, @intFromPtr(info));
        _ = c.check(rc, .misc, 100 + i);
    }
}

// What pthread_create asks for, minus the TLS and tid words: each thread
// loads its own fs_base and clear-tid address from its plan.
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

/// Every thread but the main one, at its tid (clone3 set_tid), each starting
/// in restorer_thread on the stack in its area. They inherit the all-blocked
/// mask, so no signal reaches them before their own mask is loaded.
fn startThreads(c: *const Ctx) void {
    const n = c.h.threads_count;
    @atomicStore(u32, &c.h.threads_waiting, n - 1, .release);
    @atomicStore(u32, &c.h.threads_go, 0, .release);
    @atomicStore(u32, &c.h.seccomp_pending, n - 1, .release);
    @atomicStore(u32, &c.h.seccomp_common_done, 0, .release);
    var k: usize = 1;
    while (k < n) : (k += 1) {
        var tid: i32 = c.threads()[k].tid;
        var ca = std.mem.zeroes(abi.CloneArgs);
        ca.flags = THREAD_FLAGS;
        ca.stack = c.threadArea(k) + abi.RESTORER_FRAME_RESERVE;
        ca.stack_size = abi.RESTORER_THREAD_AREA - abi.RESTORER_FRAME_RESERVE;
        ca.set_tid = @intFromPtr(&tid);
        ca.set_tid_size = 1;
        _ = c.check(cloneThread(&ca, c.h, k), .thread, @intCast(k));
    }
}

/// clone3 for a thread: the child comes back from the syscall on its new
/// stack with the parent's registers, so it must not return into the
/// parent's frames: it calls restorer_thread(plan, k) right away.
fn cloneThread(ca: *const abi.CloneArgs, plan: *abi.PlanHeader, k: usize) usize {
    return asm volatile (
        \\ syscall
        \\ testq %%rax, %%rax
        \\ jnz 1f
        \\ movq %%r12, %%rdi
        \\ movq %%r13, %%rsi
        \\ xorl %%ebp, %%ebp
        \\ callq restorer_thread
        \\ ud2
        \\ 1:
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (sys.SYS_clone3),
          [a1] "{rdi}" (@intFromPtr(ca)),
          [a2] "{rsi}" (@sizeOf(abi.CloneArgs)),
          [plan] "{r12}" (@intFromPtr(plan)),
          [k] "{r13}" (k),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

/// Kernel `struct sigevent` (64 bytes on x86_64).
const KSigevent = extern struct {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [11]i32,
};

comptime {
    std.debug.assert(@sizeOf(KSigevent) == 64);
}

/// Every POSIX timer at its id: PR_TIMER_CREATE_RESTORE_IDS makes
/// timer_create take the id it is given; then the remaining time and the
/// interval (relative: the clock may not be the one it was).
fn createPosixTimers(c: *const Ctx) void {
    const timers = c.posixTimers();
    if (timers.len == 0) return;
    _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0), .posix_timer, 0);
    for (timers, 0..) |t, i| {
        const idx: u32 = @intCast(i);
        var sev = std.mem.zeroes(KSigevent);
        sev.value = t.sival;
        sev.signo = t.signo;
        sev.notify = t.notify;
        sev.tid = t.tid;
        var id: i32 = t.id;
        const clock: usize = @bitCast(@as(isize, t.clock));
        _ = c.check(sys.syscall3(sys.SYS_timer_create, clock, @intFromPtr(&sev), @intFromPtr(&id)), .posix_timer, idx);
        if (id != t.id) c.fail(@bitCast(@as(isize, -22)), .posix_timer, idx);
        _ = c.check(sys.syscall4(sys.SYS_timer_settime, @intCast(id), 0, @intFromPtr(&t.spec), 0), .posix_timer, idx);
    }
    _ = c.check(sys.syscall5(sys.SYS_prctl, sys.PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0), .posix_timer, 0);
}

const FUTEX_WAIT_PRIVATE: usize = 128;
const FUTEX_WAKE_PRIVATE: usize = 129;
const ETIMEDOUT: usize = @bitCast(@as(isize, -110));
/// 100 ms timeouts before the main thread gives up waiting for its threads to
/// be ready (30 s): a thread that fails takes the whole task with it
/// (exit_group), so running out means something else is wrong.
const READY_TIMEOUTS: u32 = 300;
/// The other threads wait for the main thread's go, which comes only once the
/// whole tree is restored: that may take long, and cr kills the task if it
/// gives up, so they never give up themselves.
const GO_TIMEOUTS: u32 = std.math.maxInt(u32);

/// Sleep until `word` holds `want`. Every wake-up without a timeout saw the
/// word change or a wake, so only timeouts count against `max_timeouts`.
fn waitFor(c: *const Ctx, word: *u32, want: u32, k: usize, max_timeouts: u32) void {
    const timeout = [2]i64{ 0, 100_000_000 };
    var timeouts: u32 = 0;
    while (true) {
        const v = @atomicLoad(u32, word, .acquire);
        if (v == want) return;
        if (timeouts == max_timeouts) c.fail(ETIMEDOUT, .thread, @intCast(k));
        const rc = sys.syscall4(sys.SYS_futex, @intFromPtr(word), FUTEX_WAIT_PRIVATE, v, @intFromPtr(&timeout));
        if (rc == ETIMEDOUT) timeouts += 1;
    }
}

/// Every fd above the status pipe is cr's (service files, the shared fds this
/// task did not take), but for the go pipe, closed once it has spoken: none
/// may leak into the restored task.
fn closeServiceFds(c: *const Ctx) void {
    const base: u32 = @intCast(c.h.service_fd_base);
    const go: u32 = @intCast(c.h.go_fd);
    std.debug.assert(go > base);
    if (go > base + 1) _ = sys.syscall3(sys.SYS_close_range, base + 1, go - 1, 0);
    _ = sys.syscall3(sys.SYS_close_range, go + 1, std.math.maxInt(u32), 0);
}

/// Block until cr says go: one abi.RESTORE_GO byte for each task, written
/// at once when the whole tree is ready (the restore's point of no return).
/// EOF without it means cr is gone before that point: the tree must not
/// run half-restored, so the task kills itself (every other task of the
/// tree gets here too, ready or not yet, and does the same).
fn waitForGo(c: *const Ctx) void {
    var byte: u8 = 0;
    var reads: u32 = 0;
    // Bounded: EINTR cannot come (every signal is blocked); anything else ends it.
    while (reads < 64) : (reads += 1) {
        const rc = sys.syscall3(sys.SYS_read, @intCast(c.h.go_fd), @intFromPtr(&byte), 1);
        if (rc == 1 and byte == abi.RESTORE_GO) {
            _ = sys.syscall1(sys.SYS_close, @intCast(c.h.go_fd));
            return;
        }
        if (rc == 0 or (sys.isErr(rc) and rc != EINTR_RC)) break;
    }
    _ = sys.syscall2(sys.SYS_kill, @intCast(c.h.pid), SIGKILL);
    _ = sys.syscall1(sys.SYS_exit_group, 1);
    unreachable;
}

const EINTR_RC: usize = @bitCast(@as(isize, -4));
const SIGKILL: usize = 9;

/// The last steps of thread k: its own state, its pending signals, its
/// frame. Then all threads leave together: the others report ready; the
/// main thread installs the seccomp filters they all share (TSYNC), then
/// every thread its own rest; the others wait for the main thread's go,
/// which comes once they all have their filters, no fd of cr's is left, the
/// task told cr it is ready (closing the status pipe) and cr let the whole
/// tree go (closing the go pipe). After the filters: only futex, capset (see
/// PlanHeader.seccomp_admin), close_range, close, read and rt_sigreturn; cr
/// seizes the threads with PTRACE_O_SUSPEND_SECCOMP during the read.
fn leave(c: *const Ctx, k: usize) noreturn {
    const t = &c.threads()[k];
    setThreadState(c, t, k);
    queuePending(c, t.sigpending_off, t.sigpending_count, true);
    // Last of what the thread does for itself: after this only seccomp() may
    // need a privilege (CAP_SYS_ADMIN, kept for it when needed).
    setCreds(c, k);
    // After the credentials, whose change clears it.
    if (t.pdeath_sig != 0) _ = c.check(sys.syscall2(sys.SYS_prctl, sys.PR_SET_PDEATHSIG, t.pdeath_sig), .thread, @intCast(k));
    const area = c.threadArea(k);
    useDynamicFeatures(c, t, area);
    const frame_addr = buildFrame(c, t, area);
    _ = c.check(sys.syscall2(sys.SYS_arch_prctl, sys.ARCH_SET_FS, t.regs.fs_base), .sigreturn, 1);
    _ = c.check(sys.syscall2(sys.SYS_arch_prctl, sys.ARCH_SET_GS, t.regs.gs_base), .sigreturn, 2);
    // The seccomp filters, last: they may forbid any of the syscalls above.
    // All threads are ready first, so the common ones go to all at once.
    if (k == 0) {
        waitFor(c, &c.h.threads_waiting, 0, 0, READY_TIMEOUTS);
        installFilters(c, c.chain(c.h.seccomp_common_off, c.h.seccomp_common_count), c.h.threads_count > 1);
        installFilters(c, c.chain(t.seccomp_off, t.seccomp_count), false);
        dropSeccompAdmin(c, k);
        @atomicStore(u32, &c.h.seccomp_common_done, 1, .release);
        _ = sys.syscall3(sys.SYS_futex, @intFromPtr(&c.h.seccomp_common_done), FUTEX_WAKE_PRIVATE, std.math.maxInt(i32));
        waitFor(c, &c.h.seccomp_pending, 0, 0, READY_TIMEOUTS);
        closeServiceFds(c);
        // Ready: closing the status pipe tells cr so; then wait for the whole tree.
        _ = sys.syscall1(sys.SYS_close, @bitCast(@as(isize, c.h.status_fd)));
        waitForGo(c);
        @atomicStore(u32, &c.h.threads_go, 1, .release);
        _ = sys.syscall3(sys.SYS_futex, @intFromPtr(&c.h.threads_go), FUTEX_WAKE_PRIVATE, std.math.maxInt(i32));
    } else {
        if (@atomicRmw(u32, &c.h.threads_waiting, .Sub, 1, .acq_rel) == 1) {
            _ = sys.syscall3(sys.SYS_futex, @intFromPtr(&c.h.threads_waiting), FUTEX_WAKE_PRIVATE, 1);
        }
        // Own filters only once the common ones are in (TSYNC needs no thread ahead of the main one).
        waitFor(c, &c.h.seccomp_common_done, 1, k, GO_TIMEOUTS);
        installFilters(c, c.chain(t.seccomp_off, t.seccomp_count), false);
        dropSeccompAdmin(c, k);
        if (@atomicRmw(u32, &c.h.seccomp_pending, .Sub, 1, .acq_rel) == 1) {
            _ = sys.syscall3(sys.SYS_futex, @intFromPtr(&c.h.seccomp_pending), FUTEX_WAKE_PRIVATE, 1);
        }
        waitFor(c, &c.h.threads_go, 1, k, GO_TIMEOUTS);
    }
    asm volatile (
        \\ movq %[sp], %%rsp
        \\ movl $15, %%eax
        \\ syscall
        \\ ud2
        :
        : [sp] "r" (frame_addr + 8),
    );
    unreachable;
}

/// The features the frame of thread t holds (its software-reserved bytes).
fn frameFeatures(c: *const Ctx, t: *const abi.PlanThread) u64 {
    return std.mem.readInt(u64, (c.base + t.xstate_off + frame.SW_RESERVED_OFF + 8)[0..8], .little);
}

const XSAVE_LEGACY = frame.XSAVE_LEGACY;
const XSAVE_MIN = frame.XSAVE_MIN;
/// Where a frame's fpstate starts in its thread's area (64-byte aligned, as XSAVE areas must be).
const FRAME_FP_OFF: u64 = 64;

/// Write thread t's rt_sigreturn frame (xstate, ucontext with its registers,
/// sigmask and altstack) into the first RESTORER_FRAME_RESERVE bytes of
/// `area`; returns the frame's address (rt_sigreturn finds it at rsp - 8).
/// The plan's xstate is the frame's fpstate as it is (cr built it for this
/// CPU and the task's permissions, checkPlan checked its markers): copied,
/// never changed.
fn buildFrame(c: *const Ctx, t: *const abi.PlanThread, area: u64) u64 {
    const xlen: usize = t.xstate_len;
    const fp_addr = area + FRAME_FP_OFF;
    const frame_addr = (fp_addr + xlen + 64 + 15) & ~@as(usize, 15);
    std.debug.assert(area % 64 == 0);
    std.debug.assert(frame_addr + @sizeOf(frame.RtSigframe) <= area + abi.RESTORER_FRAME_RESERVE);

    const fp: [*]u8 = @ptrFromInt(fp_addr);
    const src: [*]const u8 = c.base + t.xstate_off;
    @memcpy(fp[0..xlen], src[0..xlen]);
    // rt_sigreturn also restores the altstack from the frame.
    frame.fill(@ptrFromInt(frame_addr), &t.regs, t.sigmask, t.altstack, fp_addr);
    return frame_addr;
}
