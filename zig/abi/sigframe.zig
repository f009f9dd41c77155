//! The x86_64 rt_sigreturn frame, as the kernel reads it: the restorer ends
//! every restored thread in one, and libcr leaves one beside every thread it
//! runs code in at dump time (the thread's own state, for the case where cr
//! dies before it cures the thread: see lib/inject.zig). One layout, one
//! way to fill it.
const std = @import("std");
const abi = @import("abi.zig");

pub const SigContext = extern struct {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    cs: u16,
    gs: u16,
    fs: u16,
    ss: u16,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved1: [8]u64,
};

pub const UContext = extern struct {
    flags: u64,
    link: u64,
    stack: abi.StackT,
    mcontext: SigContext,
    sigmask: u64,
};

/// rt_sigreturn reads it at the stack pointer minus 8: `pretcode` is the
/// return address a handler would have popped.
pub const RtSigframe = extern struct {
    pretcode: u64,
    uc: UContext,
    info: [128]u8,
};

comptime {
    std.debug.assert(@sizeOf(SigContext) == 256);
    std.debug.assert(@sizeOf(UContext) == 304);
    std.debug.assert(@offsetOf(RtSigframe, "uc") == 8);
}

pub const UC_FP_XSTATE: u64 = 1;
pub const UC_SIGCONTEXT_SS: u64 = 2;
pub const UC_STRICT_RESTORE_SS: u64 = 4;
pub const FP_XSTATE_MAGIC1: u32 = 0x46505853;
pub const FP_XSTATE_MAGIC2: u32 = 0x46505845;
/// The software-reserved bytes of the legacy XSAVE area (struct _fpx_sw_bytes).
pub const SW_RESERVED_OFF: usize = 464;
pub const XSAVE_LEGACY: usize = 512;
pub const XSAVE_MIN: usize = XSAVE_LEGACY + 64;

/// An altstack rt_sigreturn cannot set (ss_flags neither 0, SS_ONSTACK nor
/// SS_DISABLE): the kernel ignores the failure, and the thread's altstack
/// stays as it is. For a frame whose thread's altstack cr does not know.
pub const KEEP_ALTSTACK = abi.StackT{ .sp = 0, .flags = 3, ._pad = 0, .size = 0 };

/// The frame's ucontext: registers `r`, signal mask, altstack, and the
/// XSAVE image at `fpstate` (64-byte aligned, marked with setXstateMarkers).
pub fn fill(f: *RtSigframe, r: *const abi.UserRegs, sigmask: u64, stack: abi.StackT, fpstate: u64) void {
    std.debug.assert(fpstate % 64 == 0);
    f.* = std.mem.zeroes(RtSigframe);
    f.uc.flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    f.uc.stack = stack;
    f.uc.sigmask = sigmask;
    const m = &f.uc.mcontext;
    m.r8 = r.r8;
    m.r9 = r.r9;
    m.r10 = r.r10;
    m.r11 = r.r11;
    m.r12 = r.r12;
    m.r13 = r.r13;
    m.r14 = r.r14;
    m.r15 = r.r15;
    m.rdi = r.rdi;
    m.rsi = r.rsi;
    m.rbp = r.rbp;
    m.rbx = r.rbx;
    m.rdx = r.rdx;
    m.rax = r.rax;
    m.rcx = r.rcx;
    m.rsp = r.rsp;
    m.rip = r.rip;
    m.eflags = r.eflags;
    m.cs = @truncate(r.cs);
    // 64-bit rt_sigreturn takes fs/gs bases from the thread, not from here.
    m.gs = 0;
    m.fs = 0;
    m.ss = @truncate(r.ss);
    m.fpstate = fpstate;
}

/// Mark the XSAVE image `x` (at least `size` + 4 bytes) as a frame's full
/// XSAVE state of `size` bytes holding `features`: what rt_sigreturn checks
/// before it takes more than the legacy x87/SSE part.
pub fn setXstateMarkers(x: []u8, size: u32, features: u64) void {
    std.debug.assert(size >= XSAVE_MIN and x.len >= size + 4);
    @memset(x[SW_RESERVED_OFF..XSAVE_LEGACY], 0);
    std.mem.writeInt(u32, x[SW_RESERVED_OFF..][0..4], FP_XSTATE_MAGIC1, .little);
    std.mem.writeInt(u32, x[SW_RESERVED_OFF + 4 ..][0..4], size + 4, .little); // extended_size
    std.mem.writeInt(u64, x[SW_RESERVED_OFF + 8 ..][0..8], features, .little);
    std.mem.writeInt(u32, x[SW_RESERVED_OFF + 16 ..][0..4], size, .little); // xstate_size
    std.mem.writeInt(u32, x[size..][0..4], FP_XSTATE_MAGIC2, .little);
}

/// The markers of setXstateMarkers are there and agree with the image's length `x.len` (size + 4).
pub fn xstateMarkersValid(x: []const u8) bool {
    if (x.len < XSAVE_MIN + 4 or x.len > abi.XSTATE_MAX) return false;
    const magic1 = std.mem.readInt(u32, x[SW_RESERVED_OFF..][0..4], .little);
    const extended = std.mem.readInt(u32, x[SW_RESERVED_OFF + 4 ..][0..4], .little);
    const size = std.mem.readInt(u32, x[SW_RESERVED_OFF + 16 ..][0..4], .little);
    const magic2 = std.mem.readInt(u32, x[x.len - 4 ..][0..4], .little);
    const xcomp_bv = std.mem.readInt(u64, x[XSAVE_LEGACY + 8 ..][0..8], .little);
    return magic1 == FP_XSTATE_MAGIC1 and extended == x.len and size == x.len - 4 and
        magic2 == FP_XSTATE_MAGIC2 and xcomp_bv == 0;
}

const ERESTARTSYS: u64 = 512;
const ERESTARTNOINTR: u64 = 513;
const ERESTARTNOHAND: u64 = 514;
const ERESTART_RESTARTBLOCK: u64 = 516;
const EINTR: u64 = 4;
const SYS_POLL: u64 = 7;

/// Registers as the thread must resume through rt_sigreturn, which (unlike
/// a resume from a ptrace stop) never restarts an interrupted syscall: the
/// restart done by hand. A restart block cannot survive rt_sigreturn: EINTR,
/// but for poll(), whose EINTR programs such as `tail -f` take as fatal: it
/// is issued again with its arguments. The rules of src/restore/plan.ts's
/// fixupSyscallRestart, which the restore applies to the images.
pub fn resumeRegs(r: abi.UserRegs) abi.UserRegs {
    var out = r;
    if (@as(i64, @bitCast(r.orig_rax)) < 0) return out;
    const e = -%r.rax;
    switch (e) {
        ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND => {
            out.rax = r.orig_rax;
            out.rip = r.rip -% 2;
        },
        ERESTART_RESTARTBLOCK => if (r.orig_rax == SYS_POLL) {
            out.rax = r.orig_rax;
            out.rip = r.rip -% 2;
        } else {
            out.rax = -%EINTR;
        },
        else => {},
    }
    return out;
}

test "resumeRegs restarts what the kernel would, by hand" {
    var r = std.mem.zeroes(abi.UserRegs);
    r.orig_rax = 0; // read
    r.rax = -%ERESTARTSYS;
    r.rip = 0x1002;
    const a = resumeRegs(r);
    try std.testing.expectEqual(@as(u64, 0), a.rax);
    try std.testing.expectEqual(@as(u64, 0x1000), a.rip);
    r.orig_rax = 35; // nanosleep
    r.rax = -%ERESTART_RESTARTBLOCK;
    const b = resumeRegs(r);
    try std.testing.expectEqual(-%EINTR, b.rax);
    try std.testing.expectEqual(@as(u64, 0x1002), b.rip);
    r.orig_rax = SYS_POLL;
    const c = resumeRegs(r);
    try std.testing.expectEqual(SYS_POLL, c.rax);
    try std.testing.expectEqual(@as(u64, 0x1000), c.rip);
    r.orig_rax = std.math.maxInt(u64); // not in a syscall
    r.rax = -%ERESTARTSYS;
    try std.testing.expectEqual(r, resumeRegs(r));
    r.orig_rax = 1; // write that returned 5
    r.rax = 5;
    try std.testing.expectEqual(r, resumeRegs(r));
}

test "xstate markers: set, then recognised; a wrong length is not" {
    var x = [_]u8{0} ** (XSAVE_MIN + 64 + 4);
    setXstateMarkers(&x, XSAVE_MIN + 64, 0x7);
    try std.testing.expect(xstateMarkersValid(&x));
    try std.testing.expect(!xstateMarkersValid(x[0 .. x.len - 4]));
}
