//! Running code inside a frozen task without changing any of its code, and
//! without a moment where cr's death (SIGKILL, the OOM killer) would leave a
//! thread with modified registers and nobody to put them back.
//!
//! Before cr touches a thread it writes the thread's own state as an
//! rt_sigreturn frame (its registers, with an interrupted syscall restarted
//! by hand, its signal mask and XSAVE state) where the thread cannot see it:
//! below its stack pointer's red zone on the main stack (where a signal
//! frame would go), or in the parasite's area once there is one. Then every
//! register state cr gives the thread leads back to that frame on its own:
//! - an injected syscall runs at a `syscall; ret` of the task's own code,
//!   with the stack pointer at the frame, whose first word is the address of
//!   the task's own `mov $15, %eax; syscall`: cr stops the thread at the
//!   syscall's exit (PTRACE_SYSCALL) and reads the result; a thread let go
//!   anywhere on the way (cr gone) finishes the syscall, returns into the
//!   rt_sigreturn and is back in its own state;
//! - the parasite, seeing cr's end of its control socket close, jumps to the
//!   same rt_sigreturn (parasite/main.zig).
//! No stop a thread is left in delivers a signal when cr vanishes: interrupt
//! stops, and syscall stops with PTRACE_O_TRACESYSGOOD (0x80|SIGTRAP is no
//! signal), never an int3.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const pt = @import("ptrace.zig");
const probe = @import("probe.zig");
const frame = abi.sigframe;

const PARASITE_STACK: usize = 64 * 1024;
const PR_GET_TID_ADDRESS: u64 = 40;
const PR_GET_PDEATHSIG: u64 = 2;
const PAGE: usize = 4096;
const RED_ZONE: u64 = 128;
/// The ucontext part of a safety frame; the XSAVE image follows, 64-byte aligned.
const FRAME_HEAD: usize = std.mem.alignForward(usize, @sizeOf(frame.RtSigframe), 64);
/// The largest safety frame: the ucontext, an XSAVE area, MAGIC2 (64-byte steps).
pub const FRAME_MAX: usize = FRAME_HEAD + abi.XSTATE_MAX + 64;
const XFEATURE_TILEDATA: u6 = 18;

/// The XSAVE size of a signal frame for a thread that holds no dynamic
/// feature (AMX tile data): every feature the kernel enables but those.
fn defaultXstateSize() u32 {
    var l: abi.CpuXstate = undefined;
    probe.cpuXstate(&l);
    var end: u32 = frame.XSAVE_MIN;
    for (2..abi.XFEATURES) |b| {
        if ((l.xcr0 >> @intCast(b)) & 1 == 0 or b == XFEATURE_TILEDATA) continue;
        end = @max(end, l.offsets[b] + l.sizes[b]);
    }
    return end;
}

/// Where a thread's safety frame is.
pub const FramePlace = union(enum) {
    /// Below the red zone of the main thread's stack, or at the bottom of the
    /// [stack] VMA when the thread runs on another stack (site.stack_*).
    stack,
    /// At this address (the parasite's area).
    at: u64,
};

/// A thread prepared for injection: its saved state, its safety frame.
pub const Session = struct {
    tid: i32,
    site: abi.InjectSite,
    saved_regs: abi.UserRegs,
    saved_mask: u64,
    xstate_len: usize,
    xstate: [abi.XSTATE_MAX]u8,
    /// The frame as written into the task, and where.
    frame_len: usize,
    frame_at: u64,
    frame_bytes: [FRAME_MAX]u8 align(64),
    /// What the frame covers on the task's stack (put back once it moves off).
    stack_saved_len: usize,
    stack_saved: [FRAME_MAX]u8,

    /// Read the thread's state, write its safety frame at `place`, block
    /// every signal. Nothing of the thread is changed on failure.
    pub fn begin(s: *Session, tid: i32, site: abi.InjectSite, place: FramePlace) !void {
        std.debug.assert(site.syscall_ret != 0 and site.sigreturn != 0);
        s.tid = tid;
        s.site = site;
        s.stack_saved_len = 0;
        s.frame_at = 0;
        if (pt.getRegs(tid, &s.saved_regs) != 0) return error.Ptrace;
        var rc = pt.ptrace(pt.PTRACE_GETSIGMASK, tid, 8, @intFromPtr(&s.saved_mask));
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "PTRACE_GETSIGMASK of {d} failed", .{tid});
            return error.Ptrace;
        }
        var iov = std.posix.iovec{ .base = &s.xstate, .len = s.xstate.len };
        rc = pt.ptrace(pt.PTRACE_GETREGSET, tid, pt.NT_X86_XSTATE, @intFromPtr(&iov));
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "PTRACE_GETREGSET(NT_X86_XSTATE) of {d} failed", .{tid});
            return error.Ptrace;
        }
        s.xstate_len = iov.len;
        try s.buildFrame();
        try s.placeFrame(place);
        // Parked first: from here on a thread let go returns to its own state.
        const r = s.parked();
        if (pt.setRegs(tid, &r) != 0) {
            s.unplaceFrame() catch {};
            s.frame_at = 0;
            return error.Ptrace;
        }
        // No handler of the task's may run while cr's code does; the frame
        // holds the thread's own mask for the way back.
        if (pt.setSigmask(tid, std.math.maxInt(u64)) != 0) {
            _ = pt.setRegs(tid, &s.saved_regs);
            s.unplaceFrame() catch {};
            s.frame_at = 0;
            return error.Ptrace;
        }
    }

    /// The thread's own state as an rt_sigreturn frame, in frame_bytes
    /// (its addresses are filled in by placeFrame).
    fn buildFrame(s: *Session) !void {
        if (s.xstate_len < frame.XSAVE_MIN) {
            _ = err.fail(sys.EIO, "thread {d}: an XSAVE area of {d} bytes", .{ s.tid, s.xstate_len });
            return error.Ptrace;
        }
        const xstate_bv = std.mem.readInt(u64, s.xstate[frame.XSAVE_LEGACY..][0..8], .little);
        // ptrace writes the features of the whole area (XCR0) into the software-reserved bytes.
        const xcr0 = std.mem.readInt(u64, s.xstate[frame.SW_RESERVED_OFF..][0..8], .little);
        // A thread holding tile data has the larger buffer; any other takes the default size.
        const size: u32 = if ((xstate_bv >> XFEATURE_TILEDATA) & 1 == 1) @intCast(s.xstate_len) else @min(defaultXstateSize(), @as(u32, @intCast(s.xstate_len)));
        s.frame_len = FRAME_HEAD + size + 4;
        std.debug.assert(s.frame_len <= FRAME_MAX);
        const fp = s.frame_bytes[FRAME_HEAD..][0 .. size + 4];
        @memcpy(fp[0..size], s.xstate[0..size]);
        frame.setXstateMarkers(fp, size, xcr0);
    }

    /// Fill in the frame's addresses for `at`, write it there.
    fn writeFrameAt(s: *Session, at: u64) !void {
        std.debug.assert(at % 64 == 0);
        const f: *frame.RtSigframe = @ptrCast(@alignCast(&s.frame_bytes));
        const resume_regs = frame.resumeRegs(s.saved_regs);
        frame.fill(f, &resume_regs, s.saved_mask, frame.KEEP_ALTSTACK, at + FRAME_HEAD);
        // What `ret` after an injected syscall pops: the way into rt_sigreturn.
        f.pretcode = s.site.sigreturn;
        if (writeRemote(s.tid, at, s.frame_bytes[0..s.frame_len]) != 0) return error.Ptrace;
        s.frame_at = at;
    }

    /// Put the frame at `place` (saving what it covers on the stack).
    pub fn placeFrame(s: *Session, place: FramePlace) !void {
        switch (place) {
            .at => |a| try s.writeFrameAt(a),
            .stack => {
                const at = try s.stackSlot();
                const n = s.frame_len;
                if (readRemote(s.tid, at, s.stack_saved[0..n]) != 0) {
                    _ = err.fail(sys.EIO, "cannot read the stack of thread {d} at 0x{x}", .{ s.tid, at });
                    return error.Ptrace;
                }
                try s.writeFrameAt(at);
                s.stack_saved_len = n;
            },
        }
    }

    /// Put back what the frame covered on the stack, if it is there.
    fn unplaceFrame(s: *Session) !void {
        if (s.stack_saved_len == 0) return;
        if (writeRemote(s.tid, s.frame_at, s.stack_saved[0..s.stack_saved_len]) != 0) return error.Ptrace;
        s.stack_saved_len = 0;
    }

    /// Move the frame to `place`: written there, the thread parked on it,
    /// and only then what the old one covered on the stack put back.
    pub fn moveFrame(s: *Session, place: FramePlace) !void {
        const old_at = s.frame_at;
        const old_len = s.stack_saved_len;
        var old_saved: [FRAME_MAX]u8 = undefined;
        @memcpy(old_saved[0..old_len], s.stack_saved[0..old_len]);
        s.stack_saved_len = 0;
        try s.placeFrame(place);
        // Park the thread on the new frame before the old one goes.
        var r = s.parked();
        if (pt.setRegs(s.tid, &r) != 0) return error.Ptrace;
        if (old_len != 0 and writeRemote(s.tid, old_at, old_saved[0..old_len]) != 0) return error.Ptrace;
    }

    /// Where on the stack a frame of frame_len bytes goes: below the red
    /// zone of the thread's stack pointer when it is on the [stack] VMA (a
    /// signal frame would go there), else at the bottom of that VMA.
    fn stackSlot(s: *const Session) !u64 {
        const lo = s.site.stack_start;
        const hi = s.site.stack_end;
        const sp = s.saved_regs.rsp;
        const need = s.frame_len + PAGE;
        if (hi > lo and sp > lo and sp <= hi and sp - lo >= need + RED_ZONE) {
            return std.mem.alignBackward(u64, sp - RED_ZONE - s.frame_len, 64);
        }
        if (hi > lo and (sp <= lo or sp > hi) and hi - lo >= need + PAGE) {
            return std.mem.alignForward(u64, lo + PAGE, 64);
        }
        _ = err.fail(sys.ENOMEM, "no room on the stack of {d} for its safety frame ({d} bytes)", .{ s.tid, s.frame_len });
        return error.Ptrace;
    }

    /// Registers that, let go, run into the rt_sigreturn of the frame.
    fn parked(s: *const Session) abi.UserRegs {
        var r = s.saved_regs;
        r.rip = s.site.sigreturn;
        r.rsp = s.frame_at + 8;
        r.orig_rax = std.math.maxInt(u64);
        return r;
    }

    /// Put everything back: the mask, the XSAVE state, the registers (last:
    /// until then a thread let go takes the way back through the frame),
    /// then what the frame covered on the stack. Best effort: reports the first failure.
    pub fn cure(s: *Session) i32 {
        var first: i32 = pt.setSigmask(s.tid, s.saved_mask);
        var iov = std.posix.iovec{ .base = &s.xstate, .len = s.xstate_len };
        const xr = pt.ptrace(pt.PTRACE_SETREGSET, s.tid, pt.NT_X86_XSTATE, @intFromPtr(&iov));
        if (sys.isErr(xr) and first == 0) first = err.fail(sys.errnoOf(xr), "PTRACE_SETREGSET(NT_X86_XSTATE) of {d} failed", .{s.tid});
        const r = pt.setRegs(s.tid, &s.saved_regs);
        if (first == 0) first = r;
        if (r == 0) {
            s.unplaceFrame() catch {
                if (first == 0) first = sys.neg(sys.EIO);
            };
        }
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

    /// Run syscall `nr` in the thread and return its result. The thread
    /// stays parked after it (see parked()).
    pub fn syscall(s: *const Session, nr: usize, a: [6]u64) !u64 {
        var r = s.saved_regs;
        r.rip = s.site.syscall_ret;
        r.rsp = s.frame_at;
        r.rax = nr;
        r.rdi = a[0];
        r.rsi = a[1];
        r.rdx = a[2];
        r.r10 = a[3];
        r.r8 = a[4];
        r.r9 = a[5];
        // orig_rax = -1: no syscall-restart processing when the task resumes.
        r.orig_rax = std.math.maxInt(u64);
        if (pt.setRegs(s.tid, &r) != 0) return error.Ptrace;
        try syscallStop(s.tid, "entry");
        try syscallStop(s.tid, "exit");
        var after: abi.UserRegs = undefined;
        if (pt.getRegs(s.tid, &after) != 0) return error.Ptrace;
        // At the syscall's exit the thread would `ret` into the frame's rt_sigreturn.
        if (after.rsp != s.frame_at or after.rip != s.site.syscall_ret + 2) {
            _ = err.fail(sys.EPROTO, "injected syscall in {d} ended at 0x{x}, not after 0x{x}", .{ s.tid, after.rip, s.site.syscall_ret });
            return error.Ptrace;
        }
        return after.rax;
    }
};

/// PTRACE_SYSCALL to the next syscall stop of `tid`. A PTRACE_INTERRUPT
/// that found the thread already stopped (see pages.zig's stall path) stops
/// it once more when it resumes: go on.
fn syscallStop(tid: i32, which: []const u8) !void {
    var tries: u32 = 0;
    while (tries < 4) : (tries += 1) {
        const rc = pt.ptrace(pt.PTRACE_SYSCALL, tid, 0, 0);
        if (sys.isErr(rc)) {
            _ = err.fail(sys.errnoOf(rc), "PTRACE_SYSCALL of {d} failed", .{tid});
            return error.Ptrace;
        }
        const st = pt.waitStop(tid, 10_000) catch |e| {
            _ = err.fail(sys.EIO, "injected syscall in {d} ({s}): {s}", .{ tid, which, @errorName(e) });
            return error.Ptrace;
        };
        if (st.sig == pt.SYSCALL_STOP and st.event == 0) return;
        if (st.sig == sys.SIGTRAP and st.event == pt.PTRACE_EVENT_STOP) continue;
        _ = err.fail(sys.EPROTO, "injected syscall in {d} ({s}): unexpected stop (signal {d}, event {d})", .{ tid, which, st.sig, st.event });
        return error.Ptrace;
    }
    _ = err.fail(sys.EPROTO, "injected syscall in {d} ({s}): interrupted again and again", .{ tid, which });
    return error.Ptrace;
}

/// Where things are in a parasite's area: the blob, its arguments, what
/// the mode needs (extras), the main thread's safety frame, the frame of the
/// other thread being asked (one at a time), a scratch record, the stack.
pub const AreaLayout = struct {
    args: usize,
    extras: usize,
    main_frame: usize,
    thread_frame: usize,
    scratch: usize,
    len: usize,

    pub fn of(blob_len: usize, extras_len: usize) AreaLayout {
        const args = std.mem.alignForward(usize, blob_len, 64);
        const extras = extraOffset(args);
        const main_frame = std.mem.alignForward(usize, extras + extras_len, 64);
        const thread_frame = main_frame + FRAME_MAX;
        const scratch = thread_frame + FRAME_MAX;
        const len = std.mem.alignForward(usize, scratch + @sizeOf(abi.ThreadExtra) + PARASITE_STACK, PAGE);
        return .{ .args = args, .extras = extras, .main_frame = main_frame, .thread_frame = thread_frame, .scratch = scratch, .len = len };
    }
};

/// One run of the parasite in a task's main thread (see ParasiteCtl): its
/// session, area, control socket, and the task's fds cr made for it.
pub const ParasiteRun = struct {
    s: Session,
    pid: i32,
    layout: AreaLayout,
    area: u64 = 0,
    /// The task's fds made for this run: the control socket's two ends, then
    /// the page pipe's read and write ends (-1: none, or known closed).
    task_fds: [4]i32 = .{ -1, -1, -1, -1 },
    /// cr's end of the control socket.
    ctl: i32 = -1,
    /// The parasite was started and not yet brought to a stop.
    running: bool = false,

    pub const CTL_TASK = 0;
    pub const CTL_OURS = 1;
    pub const PIPE_READ = 2;
    pub const PIPE_WRITE = 3;

    /// Begin the main thread's session (its frame on the stack), map the
    /// area, make the control socket and take our end of it.
    pub fn open(r: *ParasiteRun, pid: i32, site: abi.InjectSite, layout: AreaLayout) i32 {
        r.* = .{ .s = undefined, .pid = pid, .layout = layout };
        r.s.begin(pid, site, .stack) catch return sys.neg(sys.EIO);
        r.area = mapArea(&r.s, layout.len) catch return sys.neg(sys.EIO);
        const at = r.area + layout.scratch;
        const sp = r.s.syscall(@intFromEnum(sys.SYS.socketpair), .{ 1, 1 | 0o2000000, 0, at, 0, 0 }) catch return sys.neg(sys.EIO);
        if (sys.isErr(sp)) return err.fail(sys.errnoOf(sp), "cannot make the parasite's control socket in {d}", .{pid});
        var pair: [2]i32 = undefined;
        if (readRemote(pid, at, std.mem.asBytes(&pair)) != 0) return sys.neg(sys.EIO);
        r.task_fds[CTL_TASK] = pair[0];
        r.task_fds[CTL_OURS] = pair[1];
        const got = @import("fds.zig").grabFd(pid, pair[1]);
        if (got < 0) return got;
        r.ctl = got;
        return 0;
    }

    /// The control block the parasite gets (rseq: the registration it takes
    /// off while it runs; len 0 for none).
    pub fn ctlArgs(r: *const ParasiteRun, rseq: abi.RseqReg) abi.ParasiteCtl {
        return .{
            .fd = r.task_fds[CTL_TASK],
            .close_fds = .{ r.task_fds[CTL_OURS], r.task_fds[PIPE_READ] },
            ._pad = 0,
            .frame = r.area + r.layout.main_frame,
            .sigreturn = r.s.site.sigreturn,
            .rseq = rseq,
            .rseq_off = 0,
            .sigpipe_pending = 0,
            .area = r.area,
            .area_len = r.layout.len,
        };
    }

    /// With the parasite written: its frame goes into the area, then it runs.
    pub fn start(r: *ParasiteRun) i32 {
        r.s.moveFrame(.{ .at = r.area + r.layout.main_frame }) catch return sys.neg(sys.EIO);
        const regs = parasiteRegs(&r.s, r.area, r.layout.args, r.layout.len);
        r.s.start(&regs, "parasite") catch return sys.neg(sys.EIO);
        r.running = true;
        // It closed them, or will before it reads its first command.
        r.task_fds[CTL_OURS] = -1;
        r.task_fds[PIPE_READ] = -1;
        return 0;
    }

    /// Wait for byte `want` from the parasite, which does `what`. `progress`
    /// (with `ctx`), when given, tells whether it still moves: it may then
    /// take longer than `stall_ms` in all, as long as it never stalls that long.
    pub fn waitFor(r: *const ParasiteRun, want: u8, what: []const u8, stall_ms: u64, progress: ?*const fn (usize) u64, ctx: usize) i32 {
        var last: u64 = if (progress) |p| p(ctx) else 0;
        var since = sys.monotonicNs();
        // Bounded: each round waits 100 ms; no progress for stall_ms ends it.
        while (true) {
            var pfd = [_]std.os.linux.pollfd{.{ .fd = r.ctl, .events = std.os.linux.POLL.IN, .revents = 0 }};
            const n = std.os.linux.poll(&pfd, 1, 100);
            if (!sys.isErr(n) and n == 1) {
                var b: u8 = 0;
                const got = sys.syscall3(.read, sys.fdArg(r.ctl), @intFromPtr(&b), 1);
                if (got == 1 and b == want) return 0;
                if (got == 1) return err.fail(sys.EPROTO, "parasite in {d} said '{c}', expected '{c}'", .{ r.pid, b, want });
                // The other end closed: the task died, most likely.
                _ = pt.waitStop(r.pid, 1000) catch |e| if (e == error.TaskExited)
                    return err.fail(sys.ESRCH, "task {d} ended while {s}", .{ r.pid, what });
                return err.fail(sys.EPIPE, "the parasite in {d} closed its control socket while {s}", .{ r.pid, what });
            }
            // A thread of the parasite's that faulted, or a task killed from outside.
            var status: u32 = 0;
            const w = sys.syscall4(.wait4, sys.fdArg(r.pid), @intFromPtr(&status), sys.WALL | sys.WNOHANG, 0);
            if (!sys.isErr(w) and w != 0) {
                if ((status & 0xff) != 0x7f) return err.fail(sys.ESRCH, "task {d} ended while {s}", .{ r.pid, what });
                return err.fail(sys.EPROTO, "parasite in {d}: unexpected stop (signal {d})", .{ r.pid, (status >> 8) & 0xff });
            }
            const now = sys.monotonicNs();
            if (progress) |p| {
                const moved = p(ctx);
                if (moved != last) {
                    last = moved;
                    since = now;
                }
            }
            if (now - since > stall_ms * std.time.ns_per_ms) {
                return err.fail(sys.ETIMEDOUT, "parasite in {d} made no progress for {d} s", .{ r.pid, stall_ms / 1000 });
            }
        }
    }

    /// Send command `cmd`.
    pub fn send(r: *const ParasiteRun, cmd: u8) i32 {
        const b = [1]u8{cmd};
        const rc = sys.syscall3(.write, sys.fdArg(r.ctl), @intFromPtr(&b), 1);
        if (sys.isErr(rc) or rc != 1) return err.fail(sys.EPIPE, "cannot reach the parasite in {d}", .{r.pid});
        return 0;
    }

    /// Bring a started parasite to an interrupt stop, wherever it is: done
    /// and waiting for a command, or still at work (a failure, a stall).
    pub fn stop(r: *ParasiteRun) i32 {
        if (!r.running) return 0;
        var rc = pt.ptrace(pt.PTRACE_INTERRUPT, r.pid, 0, 0);
        if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_INTERRUPT of {d} failed", .{r.pid});
        var tries: u32 = 0;
        while (tries < 8) : (tries += 1) {
            const st = pt.waitStop(r.pid, 5000) catch |e|
                return err.fail(sys.ETIMEDOUT, "parasite in {d} does not stop: {s}", .{ r.pid, @errorName(e) });
            if (st.event == pt.PTRACE_EVENT_STOP) {
                r.running = false;
                return 0;
            }
            // A fault of the parasite's (signal-delivery stop): the signal is
            // dropped and the interrupt stop follows.
            rc = pt.ptrace(pt.PTRACE_CONT, r.pid, 0, 0);
            if (sys.isErr(rc)) return err.fail(sys.errnoOf(rc), "PTRACE_CONT of {d} failed", .{r.pid});
        }
        return err.fail(sys.EPROTO, "parasite in {d} does not come to an interrupt stop", .{r.pid});
    }

    /// Close a task fd of ours (EBADF: the parasite closed it already).
    pub fn closeInTask(r: *ParasiteRun, which: usize) i32 {
        const fd = r.task_fds[which];
        if (fd < 0) return 0;
        const rc = r.s.syscall(@intFromEnum(sys.SYS.close), .{ @intCast(fd), 0, 0, 0, 0, 0 }) catch return sys.neg(sys.EIO);
        if (sys.isErr(rc) and sys.errnoOf(rc) != sys.EBADF) return err.fail(sys.errnoOf(rc), "cannot close fd {d} in {d}", .{ fd, r.pid });
        r.task_fds[which] = -1;
        return 0;
    }

    /// Undo it all, the parasite stopped (see stop): the task's fds, the
    /// area (the frame back on the stack first: the area goes), our end,
    /// then the cure. Returns the first error.
    pub fn close(r: *ParasiteRun) i32 {
        var first: i32 = r.stop();
        if (r.s.frame_at != 0 and first == 0) {
            for (0..r.task_fds.len) |i| {
                const rc = r.closeInTask(i);
                if (first == 0) first = rc;
            }
            // The area goes only once the thread's frame is out of it: a
            // thread let go after the munmap returns through the frame.
            if (r.area != 0) {
                if (r.s.moveFrame(.stack)) |_| {
                    const rc = unmapArea(&r.s, r.area, r.layout.len);
                    if (first == 0) first = rc;
                    if (rc == 0) r.area = 0;
                } else |_| {
                    if (first == 0) first = sys.neg(sys.EIO);
                }
            }
        }
        if (r.ctl >= 0) sys.close(r.ctl);
        r.ctl = -1;
        // Not cured while the parasite may still run: a cure under it would let it loose.
        if (r.running) return first;
        if (r.s.frame_at != 0) {
            const cured = r.s.cure();
            if (first == 0) first = cured;
        }
        return first;
    }
};

/// Run the parasite in `tids[0]` (the main thread) in info mode, ask every
/// thread of `tids` for its ThreadExtra, remove it all.
pub fn runParasite(tids: []const i32, site: abi.InjectSite, blob: []const u8, timer_ids: []const i32, out: *abi.ParasiteState, extras: []abi.ThreadExtra) i32 {
    std.debug.assert(blob.len > 0 and blob.len < 1 << 20);
    std.debug.assert(timer_ids.len <= abi.MAX_POSIX_TIMERS);
    std.debug.assert(tids.len >= 1 and tids.len == extras.len and tids.len <= abi.MAX_THREADS);
    // Two sessions of FRAME_MAX-sized buffers: off the caller's stack.
    const mem = sys.syscall6(.mmap, 0, @sizeOf(ParasiteRun) + @sizeOf(Session), 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(mem)) return err.fail(sys.errnoOf(mem), "cannot map the parasite's bookkeeping", .{});
    defer _ = sys.syscall2(.munmap, mem, @sizeOf(ParasiteRun) + @sizeOf(Session));
    const r: *ParasiteRun = @ptrFromInt(mem);
    const ts: *Session = @ptrFromInt(std.mem.alignForward(usize, mem + @sizeOf(ParasiteRun), 64));
    var rc = r.open(tids[0], site, AreaLayout.of(blob.len, 0));
    if (rc == 0) rc = runInfo(r, ts, tids, blob, timer_ids, out, extras);
    const saved = err.save();
    return err.firstOf(rc, &saved, r.close());
}

fn runInfo(r: *ParasiteRun, ts: *Session, tids: []const i32, blob: []const u8, timer_ids: []const i32, out: *abi.ParasiteState, extras: []abi.ThreadExtra) i32 {
    var args = std.mem.zeroes(abi.ParasiteArgs);
    args.magic = abi.PARASITE_MAGIC;
    args.mode = .info;
    args.timer_count = @intCast(timer_ids.len);
    @memcpy(args.timer_ids[0..timer_ids.len], timer_ids);
    args.state.err = -1;
    args.ctl = r.ctlArgs(.{ .ptr = 0, .len = 0, .sig = 0 });
    const w = writeParasite(r.pid, r.area, blob, r.layout.args, &args, &.{});
    if (w != 0) return w;
    var rc = r.start();
    if (rc == 0) rc = r.waitFor(abi.PARASITE_DONE, "the parasite ran", 10_000, null, 0);
    if (rc == 0) rc = r.stop();
    if (rc != 0) return rc;

    if (readRemote(r.pid, r.area + r.layout.args, std.mem.asBytes(&args)) != 0) return sys.neg(sys.EIO);
    if (args.state.err != 0) {
        const e: u16 = if (args.state.err < 0 and args.state.err > -4096) @intCast(-args.state.err) else sys.EIO;
        return err.fail(e, "parasite in {d}: step {d} failed", .{ r.pid, args.state.err_step });
    }
    out.* = args.state;

    // Per-thread answers, one thread at a time, each with its frame in the area.
    const scratch = r.area + r.layout.scratch;
    if (askThread(&r.s, scratch, &extras[0]) != 0) return sys.neg(sys.EIO);
    for (tids[1..], extras[1..]) |tid, *x| {
        ts.begin(tid, r.s.site, .{ .at = r.area + r.layout.thread_frame }) catch return sys.neg(sys.EIO);
        const arc = askThread(ts, scratch, x);
        const saved = err.save();
        const first = err.firstOf(arc, &saved, ts.cure());
        if (first != 0) return first;
    }
    return 0;
}

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

pub fn writeRemote(tid: i32, addr: u64, buf: []const u8) i32 {
    const liov = [_]std.posix.iovec_const{.{ .base = buf.ptr, .len = buf.len }};
    const riov = [_]std.posix.iovec_const{.{ .base = @ptrFromInt(addr), .len = buf.len }};
    const n = std.os.linux.process_vm_writev(tid, &liov, &riov, 0);
    if (sys.isErr(n) or n != buf.len) return err.fail(sys.EIO, "writing {d} bytes into {d} at 0x{x} failed", .{ buf.len, tid, addr });
    return 0;
}

pub fn readRemote(tid: i32, addr: u64, buf: []u8) i32 {
    const liov = [_]std.posix.iovec{.{ .base = buf.ptr, .len = buf.len }};
    const riov = [_]std.posix.iovec_const{.{ .base = @ptrFromInt(addr), .len = buf.len }};
    const n = std.os.linux.process_vm_readv(tid, &liov, &riov, 0);
    if (sys.isErr(n) or n != buf.len) return err.fail(sys.EIO, "reading {d} bytes of {d} at 0x{x} failed", .{ buf.len, tid, addr });
    return 0;
}

/// munmap a range inside a restored task whose threads `tids` (the main
/// thread first) cr seized while they waited at the go barrier: step each
/// out of the range, read its state back into `back` (the registers, xstate
/// and sigmask its rt_sigreturn gave it, before it runs any code of its
/// own), inject the syscall into the main thread and cure it. The threads
/// stay seized, each at a syscall stop, until cr has compared what was read
/// back and lets them go (cr_detach). Used to drop the restorer's area before
/// any restored code runs, so no fork of the task can inherit it.
pub fn unmapRemote(tids: []const i32, site: abi.InjectSite, addr: u64, len: u64, back: []abi.ThreadState) i32 {
    std.debug.assert(tids.len >= 1 and tids.len <= abi.MAX_THREADS and back.len == tids.len);
    for (tids, back) |tid, *b| {
        const out = stepOutOf(tid, addr, len);
        if (out != 0) return out;
        const rc = pt.readThread(tid, b);
        if (rc != 0) return rc;
    }
    const mem = sys.syscall6(.mmap, 0, @sizeOf(Session), 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(mem)) return err.fail(sys.errnoOf(mem), "cannot map the injection's bookkeeping", .{});
    defer _ = sys.syscall2(.munmap, mem, @sizeOf(Session));
    const s: *Session = @ptrFromInt(mem);
    s.begin(tids[0], site, .stack) catch return sys.neg(sys.EIO);
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
        if (st.sig != pt.SYSCALL_STOP) return err.fail(sys.EPROTO, "restored task {d}: unexpected stop (signal {d}) leaving the restorer", .{ tid, st.sig });
    }
    return err.fail(sys.EPROTO, "restored task {d} is still in the restorer at 0x{x}", .{ tid, regs.rip });
}
