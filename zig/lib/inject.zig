//! Running code inside a frozen task: single injected syscalls (a `syscall;
//! int3` pair written over a few bytes of an executable mapping) and the
//! parasite blob, which does a whole batch of syscalls in one go from a
//! region mapped into the victim by an injected mmap. Every path ends by
//! curing the task: original code bytes, registers and sigmask put back.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");

const SYSCALL_INT3: u64 = 0xcc050f; // 0f 05 = syscall, cc = int3 (little endian)
const PARASITE_STACK: usize = 64 * 1024;
const PR_GET_TID_ADDRESS: u64 = 40;
const PR_GET_PDEATHSIG: u64 = 2;
const PAGE: usize = 4096;

/// A task prepared for injection: its saved state and the patched site.
pub const Session = struct {
    tid: i32,
    site: u64,
    saved_regs: abi.UserRegs,
    saved_mask: u64,
    saved_word: u64,

    pub fn begin(tid: i32, site: u64) !Session {
        var s = Session{ .tid = tid, .site = site, .saved_regs = undefined, .saved_mask = 0, .saved_word = 0 };
        if (pt.getRegs(tid, &s.saved_regs) != 0) return error.Ptrace;
        var rc = pt.ptrace(pt.PTRACE_GETSIGMASK, tid, 8, @intFromPtr(&s.saved_mask));
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "PTRACE_GETSIGMASK of {d} failed", .{tid});
            return error.Ptrace;
        }
        rc = pt.ptrace(pt.PTRACE_PEEKDATA, tid, site, @intFromPtr(&s.saved_word));
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "cannot read code at 0x{x} in {d}", .{ site, tid });
            return error.Ptrace;
        }
        try s.patchCode();
        // Block every signal but SIGTRAP while our code runs: a handler must not
        // run on the parasite's stack. SIGTRAP stays open because int3 forces it,
        // and forcing a blocked SIGTRAP would reset the task's own handler.
        const all_but_trap: u64 = ~(@as(u64, 1) << (sys.SIGTRAP - 1));
        if (pt.setSigmask(tid, all_but_trap) != 0) {
            _ = pt.ptrace(pt.PTRACE_POKEDATA, tid, site, s.saved_word);
            return error.Ptrace;
        }
        return s;
    }

    /// Write `syscall; int3` over the site, for syscall().
    pub fn patchCode(s: *const Session) !void {
        const patched = (s.saved_word & ~@as(u64, 0xffffff)) | SYSCALL_INT3;
        const rc = pt.ptrace(pt.PTRACE_POKEDATA, s.tid, s.site, patched);
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "cannot patch code at 0x{x} in {d}", .{ s.site, s.tid });
            return error.Ptrace;
        }
    }

    /// Put the site's original code back (cure does it too).
    pub fn restoreCode(s: *const Session) i32 {
        const rc = pt.ptrace(pt.PTRACE_POKEDATA, s.tid, s.site, s.saved_word);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "cannot restore code at 0x{x} in {d}", .{ s.site, s.tid });
        return 0;
    }

    /// Put everything back. Best effort: reports the first failure.
    pub fn cure(s: *const Session) i32 {
        var first: i32 = s.restoreCode();
        const r2 = pt.setRegs(s.tid, &s.saved_regs);
        if (first == 0) first = r2;
        const r3 = pt.setSigmask(s.tid, s.saved_mask);
        if (first == 0) first = r3;
        return first;
    }

    /// Start the task at `regs` (our code), without waiting.
    pub fn start(s: *const Session, regs: *const abi.UserRegs, what: []const u8) !void {
        if (pt.setRegs(s.tid, regs) != 0) return error.Ptrace;
        const rc = pt.ptrace(pt.PTRACE_CONT, s.tid, 0, 0);
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "PTRACE_CONT of {d} for {s} failed", .{ s.tid, what });
            return error.Ptrace;
        }
    }

    /// Run until the int3 after our code; any other stop is an error.
    fn runToTrap(s: *const Session, regs: *const abi.UserRegs, what: []const u8) !abi.UserRegs {
        try s.start(regs, what);
        var st = pt.waitStop(s.tid, 10_000) catch |e| {
            _ = err.fail(sys.EIO, "{s} in {d}: {s}", .{ what, s.tid, @errorName(e) });
            return error.Ptrace;
        };
        // A PTRACE_INTERRUPT that found the task already stopped (see
        // pages.zig's stall path) stops it once more when it resumes: go on.
        if (st.sig == sys.SIGTRAP and st.event == pt.PTRACE_EVENT_STOP) {
            const rc = pt.ptrace(pt.PTRACE_CONT, s.tid, 0, 0);
            if (sys.isErr(rc)) return error.Ptrace;
            st = pt.waitStop(s.tid, 10_000) catch |e| {
                _ = err.fail(sys.EIO, "{s} in {d}: {s}", .{ what, s.tid, @errorName(e) });
                return error.Ptrace;
            };
        }
        if (st.sig != sys.SIGTRAP or st.event != 0) {
            _ = err.fail(sys.EPROTO, "{s} in {d}: unexpected stop (signal {d}, event {d})", .{ what, s.tid, st.sig, st.event });
            return error.Ptrace;
        }
        var after: abi.UserRegs = undefined;
        if (pt.getRegs(s.tid, &after) != 0) return error.Ptrace;
        return after;
    }

    pub fn syscall(s: *const Session, nr: usize, a: [6]u64) !u64 {
        var r = s.saved_regs;
        r.rip = s.site;
        r.rax = nr;
        r.rdi = a[0];
        r.rsi = a[1];
        r.rdx = a[2];
        r.r10 = a[3];
        r.r8 = a[4];
        r.r9 = a[5];
        // orig_rax = -1: no syscall-restart processing when the task resumes.
        r.orig_rax = std.math.maxInt(u64);
        const after = try s.runToTrap(&r, "injected syscall");
        return after.rax;
    }
};

/// Copy the parasite into `tids[0]` (the main thread), run it, ask every
/// thread of `tids` for its ThreadExtra, remove it all.
pub fn runParasite(tids: []const i32, site: u64, blob: []const u8, timer_ids: []const i32, out: *abi.ParasiteState, extras: []abi.ThreadExtra) i32 {
    std.debug.assert(blob.len > 0 and blob.len < 1 << 20);
    std.debug.assert(timer_ids.len <= abi.MAX_POSIX_TIMERS);
    std.debug.assert(tids.len >= 1 and tids.len == extras.len and tids.len <= abi.MAX_THREADS);
    const args_off = std.mem.alignForward(usize, blob.len, 64);
    const scratch_off = std.mem.alignForward(usize, args_off + @sizeOf(abi.ParasiteArgs), 64);
    const region_len = std.mem.alignForward(usize, scratch_off + @sizeOf(abi.ThreadExtra) + PARASITE_STACK, PAGE);

    var s = Session.begin(tids[0], site) catch return sys.neg(sys.EIO);
    const rc = runParasiteIn(&s, tids, blob, timer_ids, .{ .args = args_off, .scratch = scratch_off, .len = region_len }, out, extras);
    const saved = err.save();
    return err.firstOf(rc, &saved, s.cure());
}

const Region = struct { args: usize, scratch: usize, len: usize };

/// Map an RWX private anonymous area of `len` bytes in the task, for the parasite.
pub fn mapArea(s: *const Session, len: usize) !u64 {
    const prot_rwx: u64 = 7;
    const map_private_anon: u64 = 0x22;
    const remote = try s.syscall(@intFromEnum(sys.SYS.mmap), .{ 0, len, prot_rwx, map_private_anon, std.math.maxInt(u64), 0 });
    if (sys.isErr(remote)) {
        _ = err.fail(sys.errnoOf(remote), "mmap of the parasite area in {d} failed", .{s.tid});
        return error.Ptrace;
    }
    return remote;
}

/// Remove the area of mapArea; 0 or -errno (the message says which task).
pub fn unmapArea(s: *const Session, remote: u64, len: usize) i32 {
    const un = s.syscall(@intFromEnum(sys.SYS.munmap), .{ remote, len, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
    if (sys.isErr(un)) return err.fail(sys.errnoOf(un), "munmap of the parasite area in {d} failed", .{s.tid});
    return 0;
}

/// Where writeParasite puts what follows the arguments.
pub fn extraOffset(args_off: usize) usize {
    return std.mem.alignForward(usize, args_off + @sizeOf(abi.ParasiteArgs), 16);
}

/// Copy the blob to the start of the area at `remote`, its arguments at
/// `args_off`, and `extras` (whatever the mode needs, e.g. the page ranges)
/// one after the other from extraOffset(args_off).
pub fn writeParasite(tid: i32, remote: u64, blob: []const u8, args_off: usize, args: *const abi.ParasiteArgs, extras: []const []const u8) i32 {
    std.debug.assert(args_off >= blob.len and extras.len <= 2);
    var local: [4]std.posix.iovec_const = undefined;
    var remote_iov: [4]std.posix.iovec_const = undefined;
    local[0] = .{ .base = blob.ptr, .len = blob.len };
    remote_iov[0] = .{ .base = @ptrFromInt(remote), .len = blob.len };
    local[1] = .{ .base = @ptrCast(args), .len = @sizeOf(abi.ParasiteArgs) };
    remote_iov[1] = .{ .base = @ptrFromInt(remote + args_off), .len = @sizeOf(abi.ParasiteArgs) };
    var n: usize = 2;
    var at = remote + extraOffset(args_off);
    var want = blob.len + @sizeOf(abi.ParasiteArgs);
    for (extras) |e| {
        // An empty iovec may still fault on its base: leave it out.
        if (e.len == 0) continue;
        local[n] = .{ .base = e.ptr, .len = e.len };
        remote_iov[n] = .{ .base = @ptrFromInt(at), .len = e.len };
        n += 1;
        at += e.len;
        want += e.len;
    }
    const w = std.os.linux.process_vm_writev(tid, local[0..n], remote_iov[0..n], 0);
    if (sys.isErr(w)) return err.fail(sys.errnoOf(w), "writing the parasite into {d} failed", .{tid});
    if (w != want) return err.fail(sys.EIO, "short write of the parasite into {d}", .{tid});
    return 0;
}

/// The registers that start the parasite of the area at `remote`: its entry,
/// its arguments in rdi, its stack at the end of the area.
pub fn parasiteRegs(s: *const Session, remote: u64, args_off: usize, len: usize) abi.UserRegs {
    var r = s.saved_regs;
    r.rip = remote;
    r.rdi = remote + args_off;
    r.rsp = remote + len - 64;
    r.orig_rax = std.math.maxInt(u64);
    r.rax = 0;
    r.eflags &= ~@as(u64, 0x400); // clear DF: the parasite is ordinary compiled code
    return r;
}

fn runParasiteIn(s: *Session, tids: []const i32, blob: []const u8, timer_ids: []const i32, region: Region, out: *abi.ParasiteState, extras: []abi.ThreadExtra) i32 {
    const remote = mapArea(s, region.len) catch return sys.neg(sys.EIO);
    const rc = runInArea(s, remote, tids, blob, timer_ids, region, out, extras);
    const saved = err.save();
    return err.firstOf(rc, &saved, unmapArea(s, remote, region.len));
}

fn runInArea(s: *Session, remote: u64, tids: []const i32, blob: []const u8, timer_ids: []const i32, region: Region, out: *abi.ParasiteState, extras: []abi.ThreadExtra) i32 {
    var args = std.mem.zeroes(abi.ParasiteArgs);
    args.magic = abi.PARASITE_MAGIC;
    args.mode = .info;
    args.timer_count = @intCast(timer_ids.len);
    @memcpy(args.timer_ids[0..timer_ids.len], timer_ids);
    args.state.err = -1;
    const w = writeParasite(s.tid, remote, blob, region.args, &args, &.{});
    if (w != 0) return w;

    const r = parasiteRegs(s, remote, region.args, region.len);
    _ = s.runToTrap(&r, "parasite") catch return sys.neg(sys.EIO);

    if (readRemote(s.tid, remote + region.args, std.mem.asBytes(&args)) != 0) return sys.neg(sys.EIO);
    if (args.state.err != 0) {
        const e: u16 = if (args.state.err < 0 and args.state.err > -4096) @intCast(-args.state.err) else sys.EIO;
        return err.fail(e, "parasite in {d}: step {d} failed", .{ s.tid, args.state.err_step });
    }
    out.* = args.state;

    // Per-thread answers. The main thread's session is open; every other
    // thread gets its own, nested in it: it finds the site already patched
    // and puts back the patched word, and the main thread's cure, last,
    // restores the original code.
    const scratch = remote + region.scratch;
    if (askThread(s, scratch, &extras[0]) != 0) return sys.neg(sys.EIO);
    for (tids[1..], extras[1..]) |tid, *x| {
        var ts = Session.begin(tid, s.site) catch return sys.neg(sys.EIO);
        const rc = askThread(&ts, scratch, x);
        const saved = err.save();
        const first = err.firstOf(rc, &saved, ts.cure());
        if (first != 0) return first;
    }
    return 0;
}

/// sigaltstack, PR_GET_TID_ADDRESS and PR_GET_PDEATHSIG, run by the thread
/// of session `s`, answered into `scratch` (inside the parasite's area) and
/// read back.
fn askThread(s: *const Session, scratch: u64, out: *abi.ThreadExtra) i32 {
    const alt = scratch + @offsetOf(abi.ThreadExtra, "altstack");
    const tida = scratch + @offsetOf(abi.ThreadExtra, "tid_address");
    const pdeath = scratch + @offsetOf(abi.ThreadExtra, "pdeath_sig");
    var rc = s.syscall(@intFromEnum(sys.SYS.sigaltstack), .{ 0, alt, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "sigaltstack in thread {d} failed", .{s.tid});
    rc = s.syscall(@intFromEnum(sys.SYS.prctl), .{ PR_GET_TID_ADDRESS, tida, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PR_GET_TID_ADDRESS in thread {d} failed", .{s.tid});
    rc = s.syscall(@intFromEnum(sys.SYS.prctl), .{ PR_GET_PDEATHSIG, pdeath, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
    if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PR_GET_PDEATHSIG in thread {d} failed", .{s.tid});
    if (readRemote(s.tid, scratch, std.mem.asBytes(out)) != 0) return sys.neg(sys.EIO);
    out.tid = s.tid;
    return 0;
}

pub fn readRemote(tid: i32, addr: u64, buf: []u8) i32 {
    const liov = [_]std.posix.iovec{.{ .base = buf.ptr, .len = buf.len }};
    const riov = [_]std.posix.iovec_const{.{ .base = @ptrFromInt(addr), .len = buf.len }};
    const n = std.os.linux.process_vm_readv(tid, &liov, &riov, 0);
    if (sys.isErr(n) or n != buf.len) return err.fail(sys.EIO, "reading the parasite's answers from {d} failed", .{tid});
    return 0;
}

/// munmap a range inside a restored task whose threads `tids` (the main
/// thread first) cr seized while they waited at the go barrier: step each
/// out of the range, read its state back into `back` (the registers, xstate
/// and sigmask its rt_sigreturn gave it, before it runs any code of its
/// own), inject the syscall into the main thread, cure, and let them all go.
/// Used to drop the restorer's area before any restored code runs, so no
/// fork of the task can inherit it.
pub fn unmapRemote(tids: []const i32, site: u64, addr: u64, len: u64, back: []abi.ThreadState) i32 {
    std.debug.assert(tids.len >= 1 and tids.len <= abi.MAX_THREADS and back.len == tids.len);
    defer for (tids) |tid| {
        _ = pt.detach(tid, 0);
    };
    for (tids, back) |tid, *b| {
        const out = stepOutOf(tid, addr, len);
        if (out != 0) return out;
        const rc = pt.readThread(tid, b);
        if (rc != 0) return rc;
    }
    var s = Session.begin(tids[0], site) catch return sys.neg(sys.EIO);
    var rc: i32 = 0;
    const r = s.syscall(@intFromEnum(sys.SYS.munmap), .{ addr, len, 0, 0, 0, 0 }) catch null;
    if (r == null) {
        rc = sys.neg(sys.EIO);
    } else if (sys.isErr(r.?)) {
        rc = err.fail(sys.errnoOf(r.?), "munmap of the restorer area in {d} failed", .{tids[0]});
    }
    const saved = err.save();
    return err.firstOf(rc, &saved, s.cure());
}

/// cr seizes every thread while it waits at the go barrier, inside
/// [addr, addr+len). Let it run syscall by syscall (PTRACE_SYSCALL) until the
/// rt_sigreturn exit stop puts it back into its own code: the rest of the
/// barrier (the go pipe's read, its close, the threads' futex) and the
/// sigreturn itself. All signals are blocked in the restorer, so nothing else
/// can stop it on the way.
fn stepOutOf(tid: i32, addr: u64, len: u64) i32 {
    var regs: abi.UserRegs = undefined;
    // Bounded: a restarted read or futex, close, futex wake, rt_sigreturn: entry and exit each.
    var steps: u32 = 0;
    while (steps < 24) : (steps += 1) {
        if (pt.getRegs(tid, &regs) != 0) return sys.neg(sys.EIO);
        if (regs.rip < addr or regs.rip >= addr + len) return 0;
        const rc = pt.ptrace(pt.PTRACE_SYSCALL, tid, 0, 0);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_SYSCALL of {d} failed", .{tid});
        const st = pt.waitStop(tid, 5000) catch |e|
            return err.fail(sys.ESRCH, "restored task {d} did not leave the restorer: {s}", .{ tid, @errorName(e) });
        if (st.sig != sys.SIGTRAP) return err.fail(sys.EPROTO, "restored task {d}: unexpected stop (signal {d}) leaving the restorer", .{ tid, st.sig });
    }
    return err.fail(sys.EPROTO, "restored task {d} is still in the restorer at 0x{x}", .{ tid, regs.rip });
}
