//! The parasite: a freestanding blob that libcr copies into a frozen victim and
//! runs there on a stack of its own. It asks the kernel, from inside the task,
//! for what no /proc file or ptrace request tells about the whole process:
//! every sigaction, the itimers, the POSIX timers' settings, the current brk
//! and the dumpable flag (per-thread answers come
//! from syscalls libcr injects into each thread). It
//! writes the answers into its argument block and stops on int3, where libcr
//! reads them and cures the task.
//!
//! Runs inside someone else's process: no allocation, no globals, no libc,
//! every loop bounded, nothing but the syscalls below.
const abi = @import("abi");
const sys = @import("sys");

export fn blob_entry() linksection(".text.entry") callconv(.naked) noreturn {
    // rdi = ParasiteArgs (set by libcr), rsp = top of the parasite stack.
    asm volatile (
        \\ andq $-16, %%rsp
        \\ call parasite_main
        \\ int3
        \\ ud2
    );
}

export fn parasite_main(args: *abi.ParasiteArgs) callconv(.c) void {
    const st = &args.state;
    if (args.magic != abi.PARASITE_MAGIC) {
        st.err = -22;
        st.err_step = 0xffff;
        return;
    }
    st.err = 0;
    st.err_step = 0;

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
    if (args.timer_count > abi.MAX_POSIX_TIMERS) return fail(st, @bitCast(@as(isize, -22)), 300);
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
}

fn fail(st: *abi.ParasiteState, rc: usize, step: u32) void {
    st.err = @bitCast(rc);
    st.err_step = step;
}
