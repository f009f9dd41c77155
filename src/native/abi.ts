// Mirror of zig/abi/abi.zig: sizes and offsets of every struct that crosses
// the FFI boundary. test/unit/abi.test.ts checks them against cr_abi_layout().

export const ABI_VERSION = 4;
/** Most threads of one task cr handles. */
export const MAX_THREADS = 4096;
export const XSTATE_MAX = 16384;
export const NSIG = 64;

export const USER_REGS_SIZE = 216;
/** Order of the fields of struct user_regs_struct (8 bytes each). */
export const USER_REGS_FIELDS = [
  "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi",
  "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
] as const;
export type RegName = (typeof USER_REGS_FIELDS)[number];

export const ThreadState = {
  size: 16656,
  tid: 0,
  xstate_len: 4,
  regs: 8,
  sigmask: 224,
  rseq_ptr: 232,
  rseq_len: 240,
  rseq_sig: 244,
  rseq_flags: 248,
  robust_head: 256,
  robust_len: 264,
  xstate: 272,
} as const;

export const KSIGACTION_SIZE = 32;
export const ITIMERVAL_SIZE = 32;
export const STACK_T_SIZE = 24;

export const MAX_POSIX_TIMERS = 256;
/** struct itimerspec / PosixTimerState (spec, then the overrun count). */
export const ITIMERSPEC_SIZE = 32;
export const POSIX_TIMER_STATE_SIZE = 40;

export const ParasiteState = {
  size: 12424,
  sigactions: 0,
  itimers: 2048,
  posix_timers: 2144,
  brk: 12384,
  dumpable: 12392,
  err: 12400,
  err_step: 12408,
  xcomp_perm: 12416,
} as const;

export const ThreadExtra = { size: 40, tid: 0, pdeath_sig: 4, altstack: 8, tid_address: 32 } as const;

export const PLAN_MAGIC = 0x6372706c616e3031n;
export const MAX_SPECIAL = 4;

export const PlanHeader = {
  size: 2888,
  magic: 0,
  total_len: 8,
  abi_version: 16,
  pid: 20,
  hole_start: 24,
  hole_len: 32,
  vmas_off: 40,
  vmas_count: 44,
  pages_off: 48,
  pages_count: 52,
  files_off: 56,
  files_count: 60,
  pages_file: 64,
  exe_file: 68,
  cwd_file: 72,
  status_fd: 76,
  service_fd_base: 80,
  special_count: 84,
  special: 88,
  mm: 184,
  auxv_off: 288,
  auxv_len: 292,
  sigactions: 296,
  itimers: 2344,
  personality: 2440,
  threads_off: 2448,
  threads_count: 2452,
  posix_timers_off: 2456,
  posix_timers_count: 2460,
  creds: 2464,
  rlimits: 2552,
  rlimits_set: 2808,
  sid: 2816,
  pgid: 2820,
  sigpending_off: 2824,
  sigpending_count: 2828,
  umask: 2832,
  go_fd: 2844,
  seccomp_off: 2848,
  seccomp_count: 2852,
  seccomp_common_off: 2856,
  seccomp_common_count: 2860,
  seccomp_admin: 2864,
  xcomp_perm: 2880,
} as const;
/** One seccomp filter of the plan: its instructions (offset, count) and flags. */
export const PlanSeccompFilter = { size: 16, insns_off: 0, insns_count: 4, flags: 8 } as const;

export const RLIM_NLIMITS = 16;

export const PlanCreds = {
  size: 88, uid: 0, gid: 16, groups_off: 32, groups_count: 36, cap_inh: 40, cap_prm: 48, cap_eff: 56, cap_bnd: 64,
  cap_amb: 72, no_new_privs: 80, dumpable: 84,
} as const;

export const PlanPosixTimer = { size: 64, id: 0, clock: 4, signo: 8, notify: 12, tid: 16, sival: 24, spec: 32 } as const;

export const PlanThread = {
  size: 336,
  tid: 0,
  xstate_len: 4,
  regs: 8,
  xstate_off: 224,
  sigpending_off: 228,
  sigpending_count: 232,
  rseq_len: 236,
  rseq_sig: 240,
  pdeath_sig: 244,
  rseq_ptr: 248,
  sigmask: 256,
  altstack: 264,
  tid_address: 288,
  robust_head: 296,
  robust_len: 304,
  comm: 312,
  seccomp_off: 328,
  seccomp_count: 332,
} as const;

/** The restorer hole: [blob | plan | one thread area per thread | main stack] (zig/abi). */
export const RESTORER_STACK = 256 * 1024;
export const RESTORER_THREAD_AREA = 69632;

export const TREE_MAGIC = 0x6372747265653031n;
export const TreeHeader = {
  size: 64, magic: 0, total_len: 8, abi_version: 16, task_count: 20, tasks_off: 24, shared_off: 28, shared_count: 32,
  service_fd_base: 36, inherited_rseq_ptr: 40, fg_pgid: 56, fg_tty: 60,
} as const;
export const TreeTask = {
  size: 32, pid: 0, parent: 4, plan_off: 8, plan_len: 12, zombie: 16, exit_status: 20, epoll_off: 24, epoll_count: 28,
} as const;
export const TreeEpoll = { size: 24, epfd: 0, tfd: 4, events: 8, data: 16 } as const;
export const MAX_EPOLL_REGS = 1 << 20;
export const SIGINFO_SIZE = 128;
/** The kernel's struct termios (TCGETS/TCSETS: four flags, c_line, 19 control characters). */
export const TERMIOS_SIZE = 36;

export const PlanSpecial = { size: 24, cur_start: 0, target_start: 8, len: 16 } as const;
/** struct prctl_mm_map field order (u64 each, then auxv_size u32, exe_fd u32). */
export const PRCTL_MM_FIELDS = [
  "start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
  "arg_start", "arg_end", "env_start", "env_end", "auxv",
] as const;
export const PlanVma = {
  size: 56, start: 0, end: 8, pgoff: 16, prot: 24, flags: 28, kind: 32, file_index: 36, page_first: 40, page_count: 44, pkey: 48,
} as const;
export const PlanPages = { size: 24, addr: 0, len: 8, file_off: 16 } as const;
export const PlanFile = {
  size: 40, path_off: 0, path_len: 4, flags: 8, mode: 12, pos: 16, fd: 24, target_fd: 28, shared: 32, cloexec: 36,
} as const;
export const StatusRecord = { size: 24, err: 0, step: 8, index: 12, pid: 16 } as const;
/** A VMA for cr_scan_pages: start, end (u64), anon_only (u32), padding. */
export const ScanVma = { size: 24, start: 0, end: 8, anon_only: 16 } as const;
/** A run of pages (addr, len) and an unreadable VMA (start, len, prot): u64 fields only. */
export const PageRange = { size: 16 } as const;
export const ProtRange = { size: 24, prot: 16 } as const;
/** A run of saved pages of a file-like object: start, pages, offset (u64 each). */
export const PageRun = { size: 24, offset: 16 } as const;
/** A byte count and the XXH3-128 of those bytes (16 bytes, canonical big-endian order). */
export const Digest = { size: 24, bytes: 0, hash: 8, hashLen: 16 } as const;

/** sock_diag's view of a unix socket: u32 fields, then the name (108 bytes). */
export const UnixDiag = {
  size: 144, ino: 0, type: 4, state: 8, has_peer: 12, peer: 16, shutdown: 20, rqueue: 24, wqueue: 28, name_len: 32, name: 36,
} as const;
export const UNIX_PATH_MAX = 108;
/** getsockopt's domain, type, protocol and SO_SNDBUF of a socket (i32 each). */
export const SockOpts = { size: 16, domain: 0, type: 4, protocol: 8, sndbuf: 12 } as const;
/** sock_diag's view of a TCP socket: u32 fields, then the local and remote addresses (16 bytes each). */
export const InetDiag = {
  size: 64, ino: 0, family: 4, state: 8, rqueue: 12, wqueue: 16, sport: 20, dport: 24, ifindex: 28, src: 32, dst: 48,
} as const;
/** Option bits of cr_inet_opts / cr_inet_listen. */
export const INET_OPT = { reuseaddr: 1, reuseport: 2, v6only: 4, nodelay: 8, keepalive: 16 } as const;

export const RESTORE_STEPS: Record<number, string> = {
  1: "child setup", 2: "open file", 3: "dup fd", 4: "chdir", 5: "map restorer hole", 6: "unmap old mappings",
  7: "move vdso/vvar", 8: "map VMA", 9: "fill pages", 10: "protect VMA", 11: "prctl(PR_SET_MM_MAP)",
  12: "rt_sigaction", 13: "setitimer", 14: "rseq", 15: "misc", 16: "rt_sigreturn", 17: "setsid/setpgid",
  18: "fork a child", 19: "re-create a zombie", 20: "thread", 21: "POSIX timer (re-created at its id: Linux 6.15+, see cr check)", 22: "credentials",
  23: "epoll_ctl (register a file in an epoll)", 24: "prlimit", 25: "tcsetpgrp (the job's terminal foreground)",
  26: "seccomp (install a filter)", 27: "xstate (dynamic feature permission, or a frame the kernel would not take)",
  28: "memory protection key (pkey_alloc / pkey_mprotect)",
};

/** abi.InjectSite: the task's `syscall; ret` and rt_sigreturn code, and its [stack] VMA. */
export const InjectSite = { size: 32, syscall_ret: 0, sigreturn: 8, stack_start: 16, stack_end: 24 } as const;

/** What cr writes into the go pipe, once per task, when the whole tree is ready (abi.RESTORE_GO). */
export const RESTORE_GO = "G".charCodeAt(0);

/** Feature bits of an XSAVE area cr describes (abi.XFEATURES). */
export const XFEATURES = 32;
/** abi.CpuXstate: xcr0, size, then offsets and sizes (u32 each) by feature bit. */
export const CpuXstate = { size: 272, xcr0: 0, size_: 8, offsets: 16, sizes: 144 } as const;

export const CHECK_FIELDS = [
  "ptrace_seize", "ptrace_interrupt", "process_vm_readv", "clone3_set_tid", "pidfd_open", "pidfd_getfd",
  "rseq_config", "userfaultfd", "memfd_create", "prctl_mm_map", "pagemap_scan", "soft_dirty",
  "timer_restore_ids",
] as const;
export type CheckField = (typeof CHECK_FIELDS)[number];
export const CHECK_REPORT_SIZE = 52;

/** Field order of zig's abi.Layout (u32 each). */
export const LAYOUT_FIELDS = [
  "abi_version", "size_user_regs", "size_thread_state", "off_thread_state_regs", "off_thread_state_sigmask",
  "off_thread_state_rseq_ptr", "off_thread_state_robust_head", "off_thread_state_xstate", "size_parasite_state",
  "off_parasite_itimers", "off_parasite_brk", "off_parasite_err",
  "size_plan_header", "size_plan_vma", "size_plan_pages", "size_plan_file", "size_plan_special", "off_plan_special",
  "off_plan_mm", "off_plan_auxv_off", "off_plan_sigactions", "off_plan_itimers", "off_plan_personality",
  "off_plan_sid", "size_status_record", "size_check_report", "off_plan_sigpending_off", "off_plan_umask",
  "off_plan_file_shared", "size_tree_header", "size_tree_task", "off_tree_inherited_rseq_ptr", "off_status_pid",
  "off_plan_threads_off", "size_plan_thread", "off_plan_thread_regs", "off_plan_thread_xstate_off",
  "off_plan_thread_rseq_ptr", "off_plan_thread_sigmask", "off_plan_thread_altstack", "off_plan_thread_tid_address",
  "off_plan_thread_comm", "size_thread_extra", "restorer_thread_area", "off_parasite_posix_timers",
  "size_parasite_args", "off_parasite_args_timer_ids", "off_parasite_args_state", "off_plan_posix_timers_off",
  "size_plan_posix_timer", "off_plan_creds", "size_plan_creds", "off_plan_rlimits",
  "off_thread_extra_pdeath_sig", "off_plan_thread_pdeath_sig",
  "size_tree_epoll", "off_tree_task_epoll_off", "off_tree_fg_pgid", "size_termios",
  "size_digest", "off_digest_hash", "size_scan_vma", "off_scan_vma_anon_only",
  "size_page_range", "size_prot_range", "off_prot_range_prot", "size_page_run", "off_page_run_offset",
  "size_unix_diag", "off_unix_diag_name_len", "off_unix_diag_name", "size_sock_opts",
  "size_inet_diag", "off_inet_diag_src",
  "off_plan_seccomp_off", "size_plan_seccomp_filter", "off_plan_thread_seccomp_off",
  "off_parasite_xcomp_perm", "off_plan_xcomp_perm", "size_cpu_xstate", "size_inject_site",
] as const;

/** What the TypeScript side believes, in LAYOUT_FIELDS order. */
export const EXPECTED_LAYOUT: Record<(typeof LAYOUT_FIELDS)[number], number> = {
  abi_version: ABI_VERSION,
  size_user_regs: USER_REGS_SIZE,
  size_thread_state: ThreadState.size,
  off_thread_state_regs: ThreadState.regs,
  off_thread_state_sigmask: ThreadState.sigmask,
  off_thread_state_rseq_ptr: ThreadState.rseq_ptr,
  off_thread_state_robust_head: ThreadState.robust_head,
  off_thread_state_xstate: ThreadState.xstate,
  size_parasite_state: ParasiteState.size,
  off_parasite_itimers: ParasiteState.itimers,
  off_parasite_brk: ParasiteState.brk,
  off_parasite_err: ParasiteState.err,
  size_plan_header: PlanHeader.size,
  size_plan_vma: PlanVma.size,
  size_plan_pages: PlanPages.size,
  size_plan_file: PlanFile.size,
  size_plan_special: PlanSpecial.size,
  off_plan_special: PlanHeader.special,
  off_plan_mm: PlanHeader.mm,
  off_plan_auxv_off: PlanHeader.auxv_off,
  off_plan_sigactions: PlanHeader.sigactions,
  off_plan_itimers: PlanHeader.itimers,
  off_plan_personality: PlanHeader.personality,
  off_plan_sid: PlanHeader.sid,
  size_status_record: StatusRecord.size,
  size_check_report: CHECK_REPORT_SIZE,
  off_plan_sigpending_off: PlanHeader.sigpending_off,
  off_plan_umask: PlanHeader.umask,
  off_plan_file_shared: PlanFile.shared,
  size_tree_header: TreeHeader.size,
  size_tree_task: TreeTask.size,
  off_tree_inherited_rseq_ptr: TreeHeader.inherited_rseq_ptr,
  off_status_pid: StatusRecord.pid,
  off_plan_threads_off: PlanHeader.threads_off,
  size_plan_thread: PlanThread.size,
  off_plan_thread_regs: PlanThread.regs,
  off_plan_thread_xstate_off: PlanThread.xstate_off,
  off_plan_thread_rseq_ptr: PlanThread.rseq_ptr,
  off_plan_thread_sigmask: PlanThread.sigmask,
  off_plan_thread_altstack: PlanThread.altstack,
  off_plan_thread_tid_address: PlanThread.tid_address,
  off_plan_thread_comm: PlanThread.comm,
  size_thread_extra: ThreadExtra.size,
  restorer_thread_area: RESTORER_THREAD_AREA,
  off_parasite_posix_timers: ParasiteState.posix_timers,
  // ParasiteArgs is libcr <-> parasite only; its layout is checked here all the same.
  size_parasite_args: 13632,
  off_parasite_args_timer_ids: 12,
  off_parasite_args_state: 1040,
  off_plan_posix_timers_off: PlanHeader.posix_timers_off,
  size_plan_posix_timer: PlanPosixTimer.size,
  off_plan_creds: PlanHeader.creds,
  size_plan_creds: PlanCreds.size,
  off_plan_rlimits: PlanHeader.rlimits,
  off_thread_extra_pdeath_sig: ThreadExtra.pdeath_sig,
  off_plan_thread_pdeath_sig: PlanThread.pdeath_sig,
  size_tree_epoll: TreeEpoll.size,
  off_tree_task_epoll_off: TreeTask.epoll_off,
  off_tree_fg_pgid: TreeHeader.fg_pgid,
  size_termios: TERMIOS_SIZE,
  size_digest: Digest.size,
  off_digest_hash: Digest.hash,
  size_scan_vma: ScanVma.size,
  off_scan_vma_anon_only: ScanVma.anon_only,
  size_page_range: PageRange.size,
  size_prot_range: ProtRange.size,
  off_prot_range_prot: ProtRange.prot,
  size_page_run: PageRun.size,
  off_page_run_offset: PageRun.offset,
  size_unix_diag: UnixDiag.size,
  off_unix_diag_name_len: UnixDiag.name_len,
  off_unix_diag_name: UnixDiag.name,
  size_sock_opts: SockOpts.size,
  size_inet_diag: InetDiag.size,
  off_inet_diag_src: InetDiag.src,
  off_plan_seccomp_off: PlanHeader.seccomp_off,
  size_plan_seccomp_filter: PlanSeccompFilter.size,
  off_plan_thread_seccomp_off: PlanThread.seccomp_off,
  off_parasite_xcomp_perm: ParasiteState.xcomp_perm,
  off_plan_xcomp_perm: PlanHeader.xcomp_perm,
  size_cpu_xstate: CpuXstate.size,
  size_inject_site: InjectSite.size,
};
