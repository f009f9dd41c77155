//! Raw x86_64 Linux syscalls for the freestanding blobs (parasite, restorer).
//! Nothing here may allocate, touch TLS or need a relocation.

pub const SYS_read: usize = 0;
pub const SYS_write: usize = 1;
pub const SYS_close: usize = 3;
pub const SYS_close_range: usize = 436;
pub const SYS_lseek: usize = 8;
pub const SYS_mmap: usize = 9;
pub const SYS_mprotect: usize = 10;
pub const SYS_munmap: usize = 11;
pub const SYS_brk: usize = 12;
pub const SYS_rt_sigaction: usize = 13;
pub const SYS_rt_sigprocmask: usize = 14;
pub const SYS_rt_sigreturn: usize = 15;
pub const SYS_pread64: usize = 17;
pub const SYS_preadv: usize = 295;
pub const SYS_mremap: usize = 25;
pub const SYS_madvise: usize = 28;
pub const SYS_getitimer: usize = 36;
pub const SYS_setitimer: usize = 38;
pub const SYS_getpid: usize = 39;
pub const SYS_umask: usize = 95;
pub const SYS_exit: usize = 60;
pub const SYS_kill: usize = 62;
pub const SYS_sigaltstack: usize = 131;
pub const SYS_rt_sigqueueinfo: usize = 129;
pub const SYS_personality: usize = 135;
pub const SYS_prctl: usize = 157;
pub const SYS_arch_prctl: usize = 158;
pub const SYS_gettid: usize = 186;
pub const SYS_set_tid_address: usize = 218;
pub const SYS_exit_group: usize = 231;
pub const SYS_set_robust_list: usize = 273;
pub const SYS_rseq: usize = 334;
pub const SYS_pkey_mprotect: usize = 329;
pub const SYS_pkey_alloc: usize = 330;
pub const SYS_pkey_free: usize = 331;
pub const SYS_rt_sigpending: usize = 127;
pub const SYS_rt_sigtimedwait: usize = 128;
pub const SYS_sendto: usize = 44;
pub const SYS_futex: usize = 202;
pub const SYS_timer_create: usize = 222;
pub const SYS_timer_settime: usize = 223;
pub const SYS_timer_gettime: usize = 224;
pub const SYS_timer_getoverrun: usize = 225;
pub const SYS_clone3: usize = 435;
pub const SYS_rt_tgsigqueueinfo: usize = 297;
pub const SYS_vmsplice: usize = 278;

pub const PR_SET_MM: usize = 35;
pub const PR_SET_NAME: usize = 15;
pub const PR_SET_MM_MAP: usize = 14;
pub const PR_GET_TID_ADDRESS: usize = 40;
pub const PR_TIMER_CREATE_RESTORE_IDS: usize = 77;
pub const PR_SET_PDEATHSIG: usize = 1;
pub const PR_GET_DUMPABLE: usize = 3;
pub const PR_SET_DUMPABLE: usize = 4;
pub const PR_SET_KEEPCAPS: usize = 8;
pub const PR_CAPBSET_DROP: usize = 24;
pub const PR_SET_NO_NEW_PRIVS: usize = 38;
pub const PR_CAP_AMBIENT: usize = 47;
pub const PR_CAP_AMBIENT_RAISE: usize = 2;
pub const PR_CAP_AMBIENT_CLEAR_ALL: usize = 4;
pub const SYS_setgroups: usize = 116;
pub const SYS_setresuid: usize = 117;
pub const SYS_setresgid: usize = 119;
pub const SYS_setfsuid: usize = 122;
pub const SYS_setfsgid: usize = 123;
pub const SYS_capset: usize = 126;
pub const SYS_seccomp: usize = 317;
pub const SYS_prlimit64: usize = 302;
pub const ARCH_SET_GS: usize = 0x1001;
pub const ARCH_SET_FS: usize = 0x1002;
pub const ARCH_GET_XCOMP_PERM: usize = 0x1022;
pub const ARCH_REQ_XCOMP_PERM: usize = 0x1023;

pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_SHARED: usize = 0x01;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MAP_GROWSDOWN: usize = 0x100;
pub const MAP_NORESERVE: usize = 0x4000;
pub const MREMAP_MAYMOVE: usize = 1;
pub const MREMAP_FIXED: usize = 2;

/// True when a raw syscall return value is -errno.
pub inline fn isErr(rc: usize) bool {
    return rc > @as(usize, @bitCast(@as(isize, -4096)));
}

pub inline fn syscall0(n: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall1(n: usize, a1: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall2(n: usize, a1: usize, a2: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
          [a2] "{rsi}" (a2),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall3(n: usize, a1: usize, a2: usize, a3: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
          [a2] "{rsi}" (a2),
          [a3] "{rdx}" (a3),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall4(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
          [a2] "{rsi}" (a2),
          [a3] "{rdx}" (a3),
          [a4] "{r10}" (a4),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall5(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
          [a2] "{rsi}" (a2),
          [a3] "{rdx}" (a3),
          [a4] "{r10}" (a4),
          [a5] "{r8}" (a5),
        : .{ .rcx = true, .r11 = true, .memory = true });
}

pub inline fn syscall6(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) usize {
    return asm volatile ("syscall"
        : [ret] "={rax}" (-> usize),
        : [n] "{rax}" (n),
          [a1] "{rdi}" (a1),
          [a2] "{rsi}" (a2),
          [a3] "{rdx}" (a3),
          [a4] "{r10}" (a4),
          [a5] "{r8}" (a5),
          [a6] "{r9}" (a6),
        : .{ .rcx = true, .r11 = true, .memory = true });
}
