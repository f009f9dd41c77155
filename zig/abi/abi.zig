//! Every layout shared across a boundary lives here: TypeScript <-> libcr (FFI),
//! libcr <-> parasite blob, libcr <-> restorer blob. `src/native/abi.ts` mirrors
//! the FFI-visible part, and `cr_abi_layout` lets a test compare both sides.
//!
//! Rules: extern structs only, explicit padding, u64 for every address, no
//! pointers (addresses are u64 so the same struct is valid in every address
//! space it is copied to).

const std = @import("std");

pub const ABI_VERSION: u32 = 4;

pub const sigframe = @import("sigframe.zig");

test {
    _ = sigframe;
}

/// x86_64 `struct user_regs_struct` as PTRACE_GETREGS returns it.
pub const UserRegs = extern struct {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    rbp: u64,
    rbx: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rax: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    orig_rax: u64,
    rip: u64,
    cs: u64,
    eflags: u64,
    rsp: u64,
    ss: u64,
    fs_base: u64,
    gs_base: u64,
    ds: u64,
    es: u64,
    fs: u64,
    gs: u64,
};

/// Largest XSAVE area we accept (AVX-512 + PKRU + AMX-less CPUs need ~2.7 KiB;
/// AMX tiles need 11 KiB).
pub const XSTATE_MAX: usize = 16384;

/// What libcr reads of one stopped thread with ptrace alone.
pub const ThreadState = extern struct {
    tid: i32,
    xstate_len: u32,
    regs: UserRegs,
    sigmask: u64,
    rseq_ptr: u64,
    rseq_len: u32,
    rseq_sig: u32,
    rseq_flags: u32,
    _pad0: u32,
    robust_head: u64,
    robust_len: u64,
    xstate: [XSTATE_MAX]u8,
};

/// Kernel `struct sigaction` for rt_sigaction on x86_64.
pub const KSigaction = extern struct {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
};

pub const Timeval = extern struct {
    sec: i64,
    usec: i64,
};

pub const Itimerval = extern struct {
    interval: Timeval,
    value: Timeval,
};

pub const StackT = extern struct {
    sp: u64,
    flags: i32,
    _pad: u32,
    size: u64,
};

pub const NSIG: usize = 64;

pub const Timespec = extern struct {
    sec: i64,
    nsec: i64,
};

pub const Itimerspec = extern struct {
    interval: Timespec,
    value: Timespec,
};

/// Most POSIX timers (timer_create) of one task cr handles.
pub const MAX_POSIX_TIMERS: usize = 256;

/// One POSIX timer as the parasite reads it with timer_gettime / timer_getoverrun.
pub const PosixTimerState = extern struct {
    spec: Itimerspec,
    overrun: i32,
    _pad: u32,
};

/// Filled by the parasite inside the victim: what only the task itself can
/// see, process-wide. Per-thread answers come as ThreadExtra records.
pub const ParasiteState = extern struct {
    /// Per-signal rt_sigaction result, index = signo - 1.
    sigactions: [NSIG]KSigaction,
    itimers: [3]Itimerval,
    /// In the order of ParasiteArgs.timer_ids.
    posix_timers: [MAX_POSIX_TIMERS]PosixTimerState,
    brk: u64,
    /// prctl(PR_GET_DUMPABLE): set again after the credentials at restore.
    dumpable: u64,
    /// First failing syscall's -errno (0 when everything worked) and which step.
    err: i64,
    err_step: u32,
    _pad: u32,
    /// arch_prctl(ARCH_GET_XCOMP_PERM): the xstate features the process may
    /// use, dynamic ones (AMX TILEDATA) only once it asked; 0 where the kernel
    /// has no such request (before 5.16: no dynamic features either).
    xcomp_perm: u64,
};

/// A run of pages to dump: `len` bytes (whole pages) from `addr`.
pub const PageRange = extern struct { addr: u64, len: u64 };

/// A run of saved pages of a file-like object (shmem-ID.img, ghost-ID.img):
/// `pages` pages from byte `start` of the object, at byte `offset` of the image.
pub const PageRun = extern struct { start: u64, pages: u64, offset: u64 };

/// What the parasite does in one run: answer ParasiteState (and libcr then
/// asks each thread), or feed the task's pages into a pipe (ParasitePages).
pub const ParasiteMode = enum(u32) { info = 0, pages = 1 };

/// A thread's rseq registration as rseq(2) takes it (len 0: none).
pub const RseqReg = extern struct { ptr: u64, len: u32, sig: u32 };

/// A VMA the task cannot read (no PROT_READ) that holds pages to dump: the
/// parasite opens it for reading while it sends them, then puts `prot` back.
pub const ProtRange = extern struct { start: u64, len: u64, prot: u64 };

/// The page dump as the parasite does it: vmsplice every range, in order,
/// into the pipe's write end (the dumper holds the read end and splices it
/// into the pages image), hash what it sent, then close the pipe.
pub const ParasitePages = extern struct {
    /// The PageRange array, inside the injected area.
    ranges: u64,
    range_count: u64,
    /// The ProtRange array, inside the injected area.
    unreadable: u64,
    unreadable_count: u64,
    /// Out: how many of them are open for reading right now (0 once put back).
    opened: u64,
    /// pipe2's answer, injected before the parasite runs: [read end, write end].
    pipe: [2]i32,
    /// Out: bytes sent, and their XXH3-128 (canonical form, as Digest.hash).
    bytes: u64,
    hash: [16]u8,
    /// Out: 1 once the parasite closed the write end (the dumper sees EOF).
    closed: u32,
    /// Out: which step failed (0: none; PagesStep), its -errno, and the address it was at.
    err_step: u32,
    err: i64,
    err_addr: u64,
};

/// The steps of the parasite's page dump, for libcr's error messages.
pub const PagesStep = enum(u32) { none = 0, bad_range = 1, vmsplice = 2, close = 3, open_unreadable = 4, close_unreadable = 5, _ };

/// The parasite's argument block, placed right after the blob in the injected area.
pub const ParasiteArgs = extern struct {
    magic: u64,
    /// The task's POSIX timer ids (from /proc/PID/timers) to read.
    timer_count: u32,
    timer_ids: [MAX_POSIX_TIMERS]i32,
    mode: ParasiteMode,
    state: ParasiteState,
    pages: ParasitePages,
    ctl: ParasiteCtl,
};

/// How the parasite and cr keep in touch, and how the parasite gets the
/// thread back to its own state when cr is gone (lib/inject.zig):
/// - it closes `close_fds` first (the task's copies of what cr took with
///   pidfd_getfd: cr's end of the control socket, the page pipe's read
///   end), so that cr's death shows as EOF or EPIPE;
/// - done, it sends PARASITE_DONE on `fd` and waits there; cr then
///   interrupts it where it waits and cures the thread from outside (the
///   rseq registration included);
/// - on EOF (cr died) it closes its fds, puts the rseq registration back and
///   jumps to the task's rt_sigreturn sequence with the thread's safety
///   frame: the thread is back in its own state. Only its area, unused, stays.
pub const ParasiteCtl = extern struct {
    fd: i32,
    close_fds: [2]i32,
    _pad: u32,
    /// The thread's safety frame (RtSigframe) in the area, and the task's `mov $15, %eax; syscall`.
    frame: u64,
    sigreturn: u64,
    /// The main thread's rseq registration (len 0: none): the parasite takes
    /// it off while it runs (the kernel writes the area at every return to
    /// user space, under the pages being sent) and puts it back.
    rseq: RseqReg,
    /// Set by the parasite while the registration is off.
    rseq_off: u32,
    /// Set by the parasite: SIGPIPE was pending for the thread when it started
    /// (a SIGPIPE its own vmsplice raises once cr is gone must not outlive it).
    sigpipe_pending: u32,
    /// The parasite's area: every table it is given must lie inside.
    area: u64,
    area_len: u64,
};

pub const PARASITE_DONE: u8 = 'D';

pub const PARASITE_MAGIC: u64 = 0x6372_7061_7261_7332; // "crparas2"

/// What only a thread itself can tell (asked by syscalls injected into each
/// thread while the parasite's area is mapped): its parent-death signal,
/// sigaltstack and clear-tid address.
pub const ThreadExtra = extern struct {
    tid: i32,
    /// prctl(PR_GET_PDEATHSIG).
    pdeath_sig: i32,
    altstack: StackT,
    tid_address: u64,
};

/// Where libcr runs code in a frozen task without changing any of its code
/// (lib/inject.zig): a `syscall; ret` and an rt_sigreturn sequence (`mov
/// $15, %eax|%rax; syscall`) found in the task's own executable mappings, and
/// its main stack (the [stack] VMA; 0, 0 when it has none).
pub const InjectSite = extern struct {
    syscall_ret: u64,
    sigreturn: u64,
    stack_start: u64,
    stack_end: u64,
};

/// What cr writes into the go pipe, once per task, when the whole tree is
/// ready (restorer/main.zig waitForGo).
pub const RESTORE_GO: u8 = 'G';

/// Most threads one task may have for cr (dump and restore).
pub const MAX_THREADS: u32 = 4096;

// ---------------------------------------------------------------------------
// Restore plan: one flat buffer built by TypeScript, read by libcr (child stage)
// and by the restorer. Arrays and strings are (offset, count/len) pairs relative
// to the start of the plan, so the plan stays valid wherever it is copied.
// ---------------------------------------------------------------------------

pub const PLAN_MAGIC: u64 = 0x6372_706c_616e_3031; // "crplan01"

pub const VmaKind = enum(u32) {
    anon = 0,
    file = 1,
};

pub const PlanVma = extern struct {
    start: u64,
    end: u64,
    /// File offset for file mappings.
    pgoff: u64,
    prot: u32,
    /// MAP_PRIVATE / MAP_SHARED / MAP_GROWSDOWN / MAP_ANONYMOUS etc.
    flags: u32,
    kind: VmaKind,
    /// Index into `PlanHeader.files` for file mappings, else -1.
    file_index: i32,
    /// Pages to fill: `page_count` ranges starting at `page_first` in the page table.
    page_first: u32,
    page_count: u32,
    /// Memory protection key (pkey_mprotect) other than the default, 1 .. 15; 0: none.
    pkey: u32,
    _pad: u32 = 0,
};

/// A run of pages of one VMA stored contiguously in the pages file.
pub const PlanPages = extern struct {
    addr: u64,
    len: u64,
    file_off: u64,
};

/// A file the child stage opens before jumping into the restorer.
pub const PlanFile = extern struct {
    path_off: u32,
    path_len: u32,
    flags: u32,
    mode: u32,
    pos: u64,
    /// After the child stage opened it: the fd the restorer uses (-1 before).
    fd: i32,
    /// Where the restored task wants it (-1: service file, closed by the restorer).
    target_fd: i32,
    /// Index into the tree's shared fd table: an open file description cr
    /// created before the fork (every fd of a task is one, and memfds), or -1
    /// for a service file the task opens itself by path.
    shared: i32,
    cloexec: u32,
};

/// One special mapping (vvar, vvar_vclock, vdso) to move from where the new
/// task has it (inherited from cr) to where the dumped task had it.
pub const PlanSpecial = extern struct {
    cur_start: u64,
    target_start: u64,
    len: u64,
};

pub const MAX_SPECIAL: usize = 4;

/// prctl(PR_SET_MM, PR_SET_MM_MAP) argument, `struct prctl_mm_map`.
pub const PrctlMmMap = extern struct {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
};

pub const PlanHeader = extern struct {
    magic: u64,
    total_len: u64,
    abi_version: u32,
    pid: i32,

    /// Where the restorer, the plan copy and the restorer stack are placed:
    /// a hole no target VMA and no current mapping of cr uses.
    hole_start: u64,
    hole_len: u64,

    vmas_off: u32,
    vmas_count: u32,
    pages_off: u32,
    pages_count: u32,
    files_off: u32,
    files_count: u32,
    /// Index in `files` of the pages image, the exe, and the cwd directory.
    pages_file: i32,
    exe_file: i32,
    cwd_file: i32,
    /// fd of the status pipe's write end in the new task (the child stage moves it
    /// to `service_fd_base`); closed by the restorer once the task is ready, so
    /// the parent reads EOF = every task ready, or an error record on failure.
    status_fd: i32,
    /// First fd number the child stage may use for its own (service) fds.
    service_fd_base: i32,
    special_count: u32,
    special: [MAX_SPECIAL]PlanSpecial,

    mm: PrctlMmMap,
    auxv_off: u32,
    auxv_len: u32,

    sigactions: [NSIG]KSigaction,
    itimers: [3]Itimerval,
    personality: u64,

    /// Every thread (PlanThread), the main thread (tid == pid) first.
    threads_off: u32,
    threads_count: u32,
    /// POSIX timers (PlanPosixTimer), created once every thread exists.
    posix_timers_off: u32,
    posix_timers_count: u32,
    /// Credentials every thread takes last, once nothing privileged is left to do.
    creds: PlanCreds,
    /// Resource limits (prlimit64), RLIMIT_* order; bit N of `rlimits_set` says resource N is set.
    rlimits: [RLIM_NLIMITS]Rlimit,
    rlimits_set: u32,
    _pad2: u32,

    /// Session / process group to join after clone (0: keep).
    sid: i32,
    pgid: i32,
    /// Signals pending for the whole process (128-byte siginfo records).
    sigpending_off: u32,
    sigpending_count: u32,
    umask: u32,
    /// Futex words of the restorer's own (0 in the plan cr builds): threads
    /// not yet ready to leave, and the main thread's "leave now".
    threads_waiting: u32,
    threads_go: u32,
    /// Read end of the go pipe (set by the child stage): the restorer blocks
    /// on it once the task is ready, until cr lets the whole tree go at once.
    go_fd: i32,
    /// Seccomp filters (PlanSeccompFilter) at `seccomp_off`. The filters of
    /// `seccomp_common_count` indexes (u32) at `seccomp_common_off` start
    /// every thread's chain: the main thread installs them for all threads at
    /// once (SECCOMP_FILTER_FLAG_TSYNC, so they are shared as they were);
    /// each thread then installs the rest of its own chain (PlanThread).
    seccomp_off: u32,
    seccomp_count: u32,
    seccomp_common_off: u32,
    seccomp_common_count: u32,
    /// 1: no_new_privs is 0 and the final effective set lacks CAP_SYS_ADMIN,
    /// which seccomp() requires then: every thread keeps CAP_SYS_ADMIN until
    /// its filters are in, then sets its exact capabilities.
    seccomp_admin: u32,
    /// Futex words of the restorer's own (0 in the plan cr builds): the main
    /// thread installed the common filters; threads still installing theirs.
    seccomp_common_done: u32,
    seccomp_pending: u32,
    _pad3: u32,
    /// Dynamic xstate features (bit N = feature N: AMX TILEDATA) the process
    /// had permission for: the restorer asks for each (ARCH_REQ_XCOMP_PERM)
    /// before any thread is created. Every thread whose frame holds one of
    /// them uses it once first, so the kernel gives it the larger buffer the
    /// frame needs (see the restorer's useDynamicFeatures).
    xcomp_perm: u64,
};

/// One classic BPF seccomp filter: `insns_count` struct sock_filter (8 bytes
/// each) at `insns_off`, installed with seccomp(SECCOMP_SET_MODE_FILTER, flags).
pub const PlanSeccompFilter = extern struct {
    insns_off: u32,
    insns_count: u32,
    flags: u32,
    _pad: u32,
};

/// Most classic BPF instructions of one filter (BPF_MAXINSNS); most filters per plan.
pub const SECCOMP_MAX_INSNS: u32 = 4096;
pub const MAX_SECCOMP_FILTERS: u32 = 4096;

/// One thread as the restorer brings it back: its registers and xstate, and
/// the per-thread kernel state it loads itself before its rt_sigreturn.
pub const PlanThread = extern struct {
    tid: i32,
    xstate_len: u32,
    regs: UserRegs,
    xstate_off: u32,
    /// Signals pending for this thread only, queued with rt_tgsigqueueinfo.
    sigpending_off: u32,
    sigpending_count: u32,
    rseq_len: u32,
    rseq_sig: u32,
    /// prctl(PR_SET_PDEATHSIG) once the credentials are set (they reset it); 0: none.
    pdeath_sig: u32,
    rseq_ptr: u64,
    sigmask: u64,
    altstack: StackT,
    tid_address: u64,
    robust_head: u64,
    robust_len: u64,
    /// Thread name (prctl PR_SET_NAME), NUL padded.
    comm: [16]u8,
    /// The thread's own seccomp filters, after the plan's common ones:
    /// `seccomp_count` indexes (u32) into the plan's filters at `seccomp_off`, oldest first.
    seccomp_off: u32,
    seccomp_count: u32,
};

/// Credentials: ids as /proc/PID/status lists them (real, effective, saved,
/// fs), supplementary groups (u32 each at `groups_off`), capability sets.
pub const PlanCreds = extern struct {
    uid: [4]u32,
    gid: [4]u32,
    groups_off: u32,
    groups_count: u32,
    cap_inh: u64,
    cap_prm: u64,
    cap_eff: u64,
    cap_bnd: u64,
    cap_amb: u64,
    no_new_privs: u32,
    dumpable: u32,
};

pub const RLIM_NLIMITS: usize = 16;

pub const Rlimit = extern struct {
    cur: u64,
    max: u64,
};

/// Most supplementary groups the kernel allows (NGROUPS_MAX).
pub const MAX_GROUPS: u32 = 65536;

/// One POSIX timer: timer_create at `id` (PR_TIMER_CREATE_RESTORE_IDS) with
/// this sigevent, then timer_settime (relative) with `spec`.
pub const PlanPosixTimer = extern struct {
    id: i32,
    clock: i32,
    signo: i32,
    /// sigev_notify: SIGEV_SIGNAL / SIGEV_NONE, | SIGEV_THREAD_ID with `tid`.
    notify: i32,
    tid: i32,
    _pad: u32,
    sival: u64,
    spec: Itimerspec,
};

/// The restorer hole: [blob | plan copy | one RESTORER_THREAD_AREA per thread
/// | RESTORER_STACK]. A thread's area holds its signal frame (the first
/// RESTORER_FRAME_RESERVE bytes) and, above it, the stack it runs on; the
/// main thread runs on RESTORER_STACK.
pub const RESTORER_STACK: usize = 256 * 1024;
pub const RESTORER_FRAME_RESERVE: usize = XSTATE_MAX + 4096;
pub const RESTORER_THREAD_AREA: usize = RESTORER_FRAME_RESERVE + 48 * 1024;

/// Kernel `struct clone_args` (clone3): libcr forks tasks with it, the
/// restorer starts threads with it.
pub const CloneArgs = extern struct {
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

pub const TREE_MAGIC: u64 = 0x6372_7472_6565_3031; // "crtree01"

/// The whole restore: one buffer with this header, the task table (parents
/// before children, the root first), the shared fd table (i32 each) and every
/// task's plan. Each task's child stage reads its own entry from its COW copy.
pub const TreeHeader = extern struct {
    magic: u64,
    total_len: u64,
    abi_version: u32,
    task_count: u32,
    tasks_off: u32,
    shared_off: u32,
    shared_count: u32,
    /// The status pipe's number in every task; the shared fds follow it.
    service_fd_base: i32,
    /// rseq registration the new tasks inherit from cr's thread: it must be
    /// unregistered before cr's memory goes, or the kernel's next rseq update
    /// faults. Filled by libcr, not by TypeScript.
    inherited_rseq_ptr: u64,
    inherited_rseq_len: u32,
    inherited_rseq_sig: u32,
    /// --shell-job: the process group to make the foreground of the terminal
    /// at shared fd index `fg_tty`, by the task that leads it, right after
    /// making it and before the job runs; 0: none.
    fg_pgid: i32,
    fg_tty: i32,
};

/// The kernel's struct termios on x86_64 (asm-generic termbits.h), as
/// TCGETS/TCSETS read and write it: four tcflag_t, c_line and NCCS = 19
/// control characters (glibc's struct termios is longer). See lib/tty.zig.
pub const TERMIOS_SIZE: usize = 36;

pub const TreeTask = extern struct {
    pid: i32,
    /// Index of the parent in the task table; -1 for the root.
    parent: i32,
    plan_off: u32,
    plan_len: u32,
    /// 1: re-create as a zombie that ended with `exit_status` (a wait status).
    zombie: u32,
    exit_status: i32,
    /// The task's epoll registrations: `epoll_count` TreeEpoll at `epoll_off`
    /// of the tree buffer (0, 0 when none).
    epoll_off: u32,
    epoll_count: u32,
};

/// One epoll registration a restored task makes itself, once its own fds are
/// in place (the kernel keys a registration by the file and the fd number in
/// the process that makes it, so cr cannot make it before the fork).
pub const TreeEpoll = extern struct {
    /// The epoll and the file to register, as the task's fd numbers.
    epfd: i32,
    tfd: i32,
    events: u32,
    _pad: u32,
    data: u64,
};

pub const MAX_EPOLL_REGS: u32 = 1 << 20;

pub const MAX_TASKS: u32 = 1 << 15;
pub const MAX_SHARED_FDS: u32 = 1 << 16;

pub const SIGINFO_SIZE: usize = 128;

/// What the restorer or child stage writes to the status pipe on failure.
pub const StatusRecord = extern struct {
    /// Negative errno.
    err: i64,
    /// Which step failed (RestoreStep).
    step: u32,
    /// Index of the VMA / file / page run involved, or 0.
    index: u32,
    /// The task that failed.
    pid: i32,
    _pad: u32,
};

pub const RestoreStep = enum(u32) {
    child_setup = 1,
    open_file = 2,
    dup_fd = 3,
    chdir = 4,
    map_hole = 5,
    unmap_old = 6,
    move_special = 7,
    map_vma = 8,
    fill_pages = 9,
    protect_vma = 10,
    set_mm = 11,
    sigaction = 12,
    itimer = 13,
    rseq = 14,
    misc = 15,
    sigreturn = 16,
    session = 17,
    fork = 18,
    zombie = 19,
    thread = 20,
    posix_timer = 21,
    creds = 22,
    epoll = 23,
    rlimit = 24,
    foreground = 25,
    seccomp = 26,
    xstate = 27,
    pkey = 28,
};

/// A VMA whose pages cr_scan_pages looks at; in address order.
pub const ScanVma = extern struct {
    start: u64,
    end: u64,
    /// 1 for a private file mapping: only its private copies of pages count.
    anon_only: u32,
    _pad: u32 = 0,
};

/// A byte count and the XXH3-128 of those bytes (canonical, big endian): what
/// cr_dump_pages wrote and what cr_hash_fd read.
pub const Digest = extern struct {
    bytes: u64,
    hash: [16]u8,
};

/// What sock_diag (UNIX_DIAG) says about one unix socket: cr_unix_diag.
pub const UnixDiag = extern struct {
    ino: u32,
    /// SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5.
    type: u32,
    /// TCP_ESTABLISHED 1, TCP_CLOSE 7, TCP_LISTEN 10.
    state: u32,
    /// 1 when the socket has a peer (UNIX_DIAG_PEER was there).
    has_peer: u32,
    /// The peer's inode; 0 when the peer was closed since.
    peer: u32,
    /// RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2.
    shutdown: u32,
    /// UNIX_DIAG_RQLEN. Listening: connections waiting to be accepted, and
    /// the backlog. Else: bytes to read (DGRAM: the first message's only),
    /// and bytes sent not yet read by the peer.
    rqueue: u32,
    wqueue: u32,
    /// Bytes of `name` (0: not bound); an abstract name starts with a 0 byte.
    name_len: u32,
    name: [UNIX_PATH_MAX]u8,
};

pub const UNIX_PATH_MAX: usize = 108;

/// What sock_diag (INET_DIAG, TCP) says about one IPv4/IPv6 socket: cr_inet_diag.
pub const InetDiag = extern struct {
    ino: u32,
    /// AF_INET 2, AF_INET6 10.
    family: u32,
    /// TCP_ESTABLISHED 1 ... TCP_CLOSE 7, TCP_LISTEN 10 (the kernel's TCP_* states).
    state: u32,
    /// Listening: connections waiting to be accepted, and the backlog.
    /// Else: bytes to read, and bytes sent not yet acknowledged.
    rqueue: u32,
    wqueue: u32,
    /// Local and remote port, host byte order.
    sport: u32,
    dport: u32,
    /// The interface the socket is bound to (SO_BINDTODEVICE, an IPv6 scope), 0: none.
    ifindex: u32,
    /// Local and remote address, network byte order: 4 bytes for AF_INET, then zeros.
    src: [16]u8,
    dst: [16]u8,
};

/// Options of a TCP socket a dump reads (cr_inet_opts) and a restore sets
/// (cr_inet_listen), one bit each.
pub const INET_OPT_REUSEADDR: u32 = 1;
pub const INET_OPT_REUSEPORT: u32 = 2;
pub const INET_OPT_V6ONLY: u32 = 4;
pub const INET_OPT_NODELAY: u32 = 8;
pub const INET_OPT_KEEPALIVE: u32 = 16;
pub const INET_OPT_ALL: u32 = INET_OPT_REUSEADDR | INET_OPT_REUSEPORT | INET_OPT_V6ONLY | INET_OPT_NODELAY | INET_OPT_KEEPALIVE;

/// The socket options of an fd that a dump reads (cr_sock_opts).
pub const SockOpts = extern struct {
    domain: i32,
    type: i32,
    protocol: i32,
    /// SO_SNDBUF as getsockopt shows it (twice what was set).
    sndbuf: i32,
};

/// The sizes and offsets the TypeScript mirror checks (see cr_abi_layout).
pub const Layout = extern struct {
    abi_version: u32,
    size_user_regs: u32,
    size_thread_state: u32,
    off_thread_state_regs: u32,
    off_thread_state_sigmask: u32,
    off_thread_state_rseq_ptr: u32,
    off_thread_state_robust_head: u32,
    off_thread_state_xstate: u32,
    size_parasite_state: u32,
    off_parasite_itimers: u32,
    off_parasite_brk: u32,
    off_parasite_err: u32,
    size_plan_header: u32,
    size_plan_vma: u32,
    size_plan_pages: u32,
    size_plan_file: u32,
    size_plan_special: u32,
    off_plan_special: u32,
    off_plan_mm: u32,
    off_plan_auxv_off: u32,
    off_plan_sigactions: u32,
    off_plan_itimers: u32,
    off_plan_personality: u32,
    off_plan_sid: u32,
    size_status_record: u32,
    size_check_report: u32,
    off_plan_sigpending_off: u32,
    off_plan_umask: u32,
    off_plan_file_shared: u32,
    size_tree_header: u32,
    size_tree_task: u32,
    off_tree_inherited_rseq_ptr: u32,
    off_status_pid: u32,
    off_plan_threads_off: u32,
    size_plan_thread: u32,
    off_plan_thread_regs: u32,
    off_plan_thread_xstate_off: u32,
    off_plan_thread_rseq_ptr: u32,
    off_plan_thread_sigmask: u32,
    off_plan_thread_altstack: u32,
    off_plan_thread_tid_address: u32,
    off_plan_thread_comm: u32,
    size_thread_extra: u32,
    restorer_thread_area: u32,
    off_parasite_posix_timers: u32,
    size_parasite_args: u32,
    off_parasite_args_timer_ids: u32,
    off_parasite_args_state: u32,
    off_plan_posix_timers_off: u32,
    size_plan_posix_timer: u32,
    off_plan_creds: u32,
    size_plan_creds: u32,
    off_plan_rlimits: u32,
    off_thread_extra_pdeath_sig: u32,
    off_plan_thread_pdeath_sig: u32,
    size_tree_epoll: u32,
    off_tree_task_epoll_off: u32,
    off_tree_fg_pgid: u32,
    size_termios: u32,
    size_digest: u32,
    off_digest_hash: u32,
    size_scan_vma: u32,
    off_scan_vma_anon_only: u32,
    size_page_range: u32,
    size_prot_range: u32,
    off_prot_range_prot: u32,
    size_page_run: u32,
    off_page_run_offset: u32,
    size_unix_diag: u32,
    off_unix_diag_name_len: u32,
    off_unix_diag_name: u32,
    size_sock_opts: u32,
    size_inet_diag: u32,
    off_inet_diag_src: u32,
    off_plan_seccomp_off: u32,
    size_plan_seccomp_filter: u32,
    off_plan_thread_seccomp_off: u32,
    off_parasite_xcomp_perm: u32,
    off_plan_xcomp_perm: u32,
    size_cpu_xstate: u32,
    size_inject_site: u32,
};

pub fn layout() Layout {
    return .{
        .abi_version = ABI_VERSION,
        .size_user_regs = @sizeOf(UserRegs),
        .size_thread_state = @sizeOf(ThreadState),
        .off_thread_state_regs = @offsetOf(ThreadState, "regs"),
        .off_thread_state_sigmask = @offsetOf(ThreadState, "sigmask"),
        .off_thread_state_rseq_ptr = @offsetOf(ThreadState, "rseq_ptr"),
        .off_thread_state_robust_head = @offsetOf(ThreadState, "robust_head"),
        .off_thread_state_xstate = @offsetOf(ThreadState, "xstate"),
        .size_parasite_state = @sizeOf(ParasiteState),
        .off_parasite_itimers = @offsetOf(ParasiteState, "itimers"),
        .off_parasite_brk = @offsetOf(ParasiteState, "brk"),
        .off_parasite_err = @offsetOf(ParasiteState, "err"),
        .size_plan_header = @sizeOf(PlanHeader),
        .size_plan_vma = @sizeOf(PlanVma),
        .size_plan_pages = @sizeOf(PlanPages),
        .size_plan_file = @sizeOf(PlanFile),
        .size_plan_special = @sizeOf(PlanSpecial),
        .off_plan_special = @offsetOf(PlanHeader, "special"),
        .off_plan_mm = @offsetOf(PlanHeader, "mm"),
        .off_plan_auxv_off = @offsetOf(PlanHeader, "auxv_off"),
        .off_plan_sigactions = @offsetOf(PlanHeader, "sigactions"),
        .off_plan_itimers = @offsetOf(PlanHeader, "itimers"),
        .off_plan_personality = @offsetOf(PlanHeader, "personality"),
        .off_plan_sid = @offsetOf(PlanHeader, "sid"),
        .size_status_record = @sizeOf(StatusRecord),
        .size_check_report = @sizeOf(CheckReport),
        .off_plan_sigpending_off = @offsetOf(PlanHeader, "sigpending_off"),
        .off_plan_umask = @offsetOf(PlanHeader, "umask"),
        .off_plan_file_shared = @offsetOf(PlanFile, "shared"),
        .size_tree_header = @sizeOf(TreeHeader),
        .size_tree_task = @sizeOf(TreeTask),
        .off_tree_inherited_rseq_ptr = @offsetOf(TreeHeader, "inherited_rseq_ptr"),
        .off_status_pid = @offsetOf(StatusRecord, "pid"),
        .off_plan_threads_off = @offsetOf(PlanHeader, "threads_off"),
        .size_plan_thread = @sizeOf(PlanThread),
        .off_plan_thread_regs = @offsetOf(PlanThread, "regs"),
        .off_plan_thread_xstate_off = @offsetOf(PlanThread, "xstate_off"),
        .off_plan_thread_rseq_ptr = @offsetOf(PlanThread, "rseq_ptr"),
        .off_plan_thread_sigmask = @offsetOf(PlanThread, "sigmask"),
        .off_plan_thread_altstack = @offsetOf(PlanThread, "altstack"),
        .off_plan_thread_tid_address = @offsetOf(PlanThread, "tid_address"),
        .off_plan_thread_comm = @offsetOf(PlanThread, "comm"),
        .size_thread_extra = @sizeOf(ThreadExtra),
        .restorer_thread_area = RESTORER_THREAD_AREA,
        .off_parasite_posix_timers = @offsetOf(ParasiteState, "posix_timers"),
        .size_parasite_args = @sizeOf(ParasiteArgs),
        .off_parasite_args_timer_ids = @offsetOf(ParasiteArgs, "timer_ids"),
        .off_parasite_args_state = @offsetOf(ParasiteArgs, "state"),
        .off_plan_posix_timers_off = @offsetOf(PlanHeader, "posix_timers_off"),
        .size_plan_posix_timer = @sizeOf(PlanPosixTimer),
        .off_plan_creds = @offsetOf(PlanHeader, "creds"),
        .size_plan_creds = @sizeOf(PlanCreds),
        .off_plan_rlimits = @offsetOf(PlanHeader, "rlimits"),
        .off_thread_extra_pdeath_sig = @offsetOf(ThreadExtra, "pdeath_sig"),
        .off_plan_thread_pdeath_sig = @offsetOf(PlanThread, "pdeath_sig"),
        .size_tree_epoll = @sizeOf(TreeEpoll),
        .off_tree_task_epoll_off = @offsetOf(TreeTask, "epoll_off"),
        .off_tree_fg_pgid = @offsetOf(TreeHeader, "fg_pgid"),
        .size_termios = TERMIOS_SIZE,
        .size_digest = @sizeOf(Digest),
        .off_digest_hash = @offsetOf(Digest, "hash"),
        .size_scan_vma = @sizeOf(ScanVma),
        .off_scan_vma_anon_only = @offsetOf(ScanVma, "anon_only"),
        .size_page_range = @sizeOf(PageRange),
        .size_prot_range = @sizeOf(ProtRange),
        .off_prot_range_prot = @offsetOf(ProtRange, "prot"),
        .size_page_run = @sizeOf(PageRun),
        .off_page_run_offset = @offsetOf(PageRun, "offset"),
        .size_unix_diag = @sizeOf(UnixDiag),
        .off_unix_diag_name_len = @offsetOf(UnixDiag, "name_len"),
        .off_unix_diag_name = @offsetOf(UnixDiag, "name"),
        .size_sock_opts = @sizeOf(SockOpts),
        .size_inet_diag = @sizeOf(InetDiag),
        .off_inet_diag_src = @offsetOf(InetDiag, "src"),
        .off_plan_seccomp_off = @offsetOf(PlanHeader, "seccomp_off"),
        .size_plan_seccomp_filter = @sizeOf(PlanSeccompFilter),
        .off_plan_thread_seccomp_off = @offsetOf(PlanThread, "seccomp_off"),
        .off_parasite_xcomp_perm = @offsetOf(ParasiteState, "xcomp_perm"),
        .off_plan_xcomp_perm = @offsetOf(PlanHeader, "xcomp_perm"),
        .size_cpu_xstate = @sizeOf(CpuXstate),
        .size_inject_site = @sizeOf(InjectSite),
    };
}

/// Feature bits of the XSAVE area (x87 = 0, SSE = 1, ...) cr can describe.
pub const XFEATURES: usize = 32;

/// This CPU's XSAVE area as the kernel lays it out for user space (the
/// standard, non-compacted format of ptrace and signal frames): `xcr0`, the
/// user features the kernel enabled; `size`, the area for all of them; and
/// per feature bit N >= 2 its offset and size (CPUID leaf 0xD, sub-leaf N;
/// 0 for a feature this CPU does not have).
pub const CpuXstate = extern struct {
    xcr0: u64,
    size: u32,
    _pad: u32,
    offsets: [XFEATURES]u32,
    sizes: [XFEATURES]u32,
};

/// Results of the kernel feature probes of `cr check`. Each field: 1 works,
/// 0 missing, negative = -errno of the probe that failed.
pub const CheckReport = extern struct {
    ptrace_seize: i32,
    ptrace_interrupt: i32,
    process_vm_readv: i32,
    clone3_set_tid: i32,
    pidfd_open: i32,
    pidfd_getfd: i32,
    rseq_config: i32,
    userfaultfd: i32,
    memfd_create: i32,
    prctl_mm_map: i32,
    pagemap_scan: i32,
    soft_dirty: i32,
    /// prctl(PR_TIMER_CREATE_RESTORE_IDS) (6.15+): POSIX timers at their ids.
    timer_restore_ids: i32,
};

comptime {
    std.debug.assert(@sizeOf(UserRegs) == 27 * 8);
    std.debug.assert(@sizeOf(KSigaction) == 32);
    std.debug.assert(@sizeOf(PrctlMmMap) == 104);
    std.debug.assert(@sizeOf(PlanHeader) % 8 == 0);
    std.debug.assert(@sizeOf(PlanVma) % 8 == 0);
    std.debug.assert(@sizeOf(PlanFile) % 8 == 0);
    std.debug.assert(@sizeOf(TreeHeader) % 8 == 0);
    std.debug.assert(@sizeOf(TreeTask) % 8 == 0);
    std.debug.assert(@sizeOf(PlanThread) % 8 == 0);
    std.debug.assert(@sizeOf(CloneArgs) == 88);
    std.debug.assert(@sizeOf(PlanPosixTimer) == 64);
    std.debug.assert(@offsetOf(ParasiteArgs, "state") % 8 == 0);
    std.debug.assert(RESTORER_THREAD_AREA % 4096 == 0 and RESTORER_FRAME_RESERVE % 16 == 0);
    std.debug.assert(@sizeOf(TreeEpoll) % 8 == 0);
}
