//! Every layout shared across a boundary lives here: TypeScript <-> libcr (FFI),
//! libcr <-> parasite blob, libcr <-> restorer blob. `src/native/abi.ts` mirrors
//! the FFI-visible part, and `cr_abi_layout` lets a test compare both sides.
//!
//! Rules: extern structs only, explicit padding, u64 for every address, no
//! pointers (addresses are u64 so the same struct is valid in every address
//! space it is copied to).

const std = @import("std");

pub const ABI_VERSION: u32 = 1;

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

/// Filled by the parasite inside the victim: what only the task itself can see.
pub const ParasiteState = extern struct {
    /// Per-signal rt_sigaction result, index = signo - 1.
    sigactions: [NSIG]KSigaction,
    itimers: [3]Itimerval,
    altstack: StackT,
    tid_address: u64,
    brk: u64,
    /// First failing syscall's -errno (0 when everything worked) and which step.
    err: i64,
    err_step: u32,
    _pad: u32,
};

/// The parasite's argument block, placed right after the blob in the injected area.
pub const ParasiteArgs = extern struct {
    magic: u64,
    state: ParasiteState,
};

pub const PARASITE_MAGIC: u64 = 0x6372_7061_7261_7331; // "crparas1"

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
    /// to `service_fd_base`); closed by the restorer right before rt_sigreturn so
    /// the parent reads EOF = success, or an error record on failure.
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
    tid_address: u64,
    robust_head: u64,
    robust_len: u64,
    rseq_ptr: u64,
    rseq_len: u32,
    rseq_sig: u32,
    sigmask: u64,
    altstack: StackT,

    regs: UserRegs,
    xstate_off: u32,
    xstate_len: u32,

    /// Session / process group to join after clone (0: keep).
    sid: i32,
    pgid: i32,
    /// Pending signals (128-byte siginfo records) the restorer queues to itself.
    sigpending_off: u32,
    sigpending_count: u32,
    /// Task name (prctl PR_SET_NAME), NUL padded.
    comm: [16]u8,
    umask: u32,
    _pad1: u32,
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
};

pub const TreeTask = extern struct {
    pid: i32,
    /// Index of the parent in the task table; -1 for the root.
    parent: i32,
    plan_off: u32,
    plan_len: u32,
    /// 1: re-create as a zombie that ended with `exit_status` (a wait status).
    zombie: u32,
    exit_status: i32,
};

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
    off_parasite_altstack: u32,
    off_parasite_tid_address: u32,
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
    off_plan_rseq_ptr: u32,
    off_plan_sigmask: u32,
    off_plan_altstack: u32,
    off_plan_regs: u32,
    off_plan_xstate_off: u32,
    off_plan_sid: u32,
    size_status_record: u32,
    size_check_report: u32,
    off_plan_sigpending_off: u32,
    off_plan_comm: u32,
    off_plan_umask: u32,
    off_plan_file_shared: u32,
    size_tree_header: u32,
    size_tree_task: u32,
    off_tree_inherited_rseq_ptr: u32,
    off_status_pid: u32,
    size_digest: u32,
    off_digest_hash: u32,
    size_scan_vma: u32,
    off_scan_vma_anon_only: u32,
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
        .off_parasite_altstack = @offsetOf(ParasiteState, "altstack"),
        .off_parasite_tid_address = @offsetOf(ParasiteState, "tid_address"),
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
        .off_plan_rseq_ptr = @offsetOf(PlanHeader, "rseq_ptr"),
        .off_plan_sigmask = @offsetOf(PlanHeader, "sigmask"),
        .off_plan_altstack = @offsetOf(PlanHeader, "altstack"),
        .off_plan_regs = @offsetOf(PlanHeader, "regs"),
        .off_plan_xstate_off = @offsetOf(PlanHeader, "xstate_off"),
        .off_plan_sid = @offsetOf(PlanHeader, "sid"),
        .size_status_record = @sizeOf(StatusRecord),
        .size_check_report = @sizeOf(CheckReport),
        .off_plan_sigpending_off = @offsetOf(PlanHeader, "sigpending_off"),
        .off_plan_comm = @offsetOf(PlanHeader, "comm"),
        .off_plan_umask = @offsetOf(PlanHeader, "umask"),
        .off_plan_file_shared = @offsetOf(PlanFile, "shared"),
        .size_tree_header = @sizeOf(TreeHeader),
        .size_tree_task = @sizeOf(TreeTask),
        .off_tree_inherited_rseq_ptr = @offsetOf(TreeHeader, "inherited_rseq_ptr"),
        .off_status_pid = @offsetOf(StatusRecord, "pid"),
        .size_digest = @sizeOf(Digest),
        .off_digest_hash = @offsetOf(Digest, "hash"),
        .size_scan_vma = @sizeOf(ScanVma),
        .off_scan_vma_anon_only = @offsetOf(ScanVma, "anon_only"),
    };
}

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
    xstate_size: i32,
    _pad: i32,
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
}
