// Mirror of zig/abi/abi.zig: sizes and offsets of every struct that crosses
// the FFI boundary. test/unit/abi.test.ts checks them against cr_abi_layout().

export const ABI_VERSION = 1;
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

export const ParasiteState = {
  size: 2200,
  sigactions: 0,
  itimers: 2048,
  altstack: 2144,
  tid_address: 2168,
  brk: 2176,
  err: 2184,
  err_step: 2192,
} as const;

export const PLAN_MAGIC = 0x6372706c616e3031n;
export const MAX_SPECIAL = 4;

export const PlanHeader = {
  size: 2784,
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
  tid_address: 2448,
  robust_head: 2456,
  robust_len: 2464,
  rseq_ptr: 2472,
  rseq_len: 2480,
  rseq_sig: 2484,
  sigmask: 2488,
  altstack: 2496,
  regs: 2520,
  xstate_off: 2736,
  xstate_len: 2740,
  sid: 2744,
  pgid: 2748,
  sigpending_off: 2752,
  sigpending_count: 2756,
  comm: 2760,
  umask: 2776,
} as const;

export const TREE_MAGIC = 0x6372747265653031n;
export const TreeHeader = {
  size: 56, magic: 0, total_len: 8, abi_version: 16, task_count: 20, tasks_off: 24, shared_off: 28, shared_count: 32,
  service_fd_base: 36, inherited_rseq_ptr: 40,
} as const;
export const TreeTask = { size: 24, pid: 0, parent: 4, plan_off: 8, plan_len: 12, zombie: 16, exit_status: 20 } as const;
export const SIGINFO_SIZE = 128;

export const PlanSpecial = { size: 24, cur_start: 0, target_start: 8, len: 16 } as const;
/** struct prctl_mm_map field order (u64 each, then auxv_size u32, exe_fd u32). */
export const PRCTL_MM_FIELDS = [
  "start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
  "arg_start", "arg_end", "env_start", "env_end", "auxv",
] as const;
export const PlanVma = {
  size: 48, start: 0, end: 8, pgoff: 16, prot: 24, flags: 28, kind: 32, file_index: 36, page_first: 40, page_count: 44,
} as const;
export const PlanPages = { size: 24, addr: 0, len: 8, file_off: 16 } as const;
export const PlanFile = {
  size: 40, path_off: 0, path_len: 4, flags: 8, mode: 12, pos: 16, fd: 24, target_fd: 28, shared: 32, cloexec: 36,
} as const;
export const StatusRecord = { size: 24, err: 0, step: 8, index: 12, pid: 16 } as const;
/** A VMA for cr_scan_pages: start, end (u64), anon_only (u32), padding. */
export const ScanVma = { size: 24, start: 0, end: 8, anon_only: 16 } as const;
/** A byte count and the XXH3-128 of those bytes (16 bytes, canonical big-endian order). */
export const Digest = { size: 24, bytes: 0, hash: 8, hashLen: 16 } as const;

export const RESTORE_STEPS: Record<number, string> = {
  1: "child setup", 2: "open file", 3: "dup fd", 4: "chdir", 5: "map restorer hole", 6: "unmap old mappings",
  7: "move vdso/vvar", 8: "map VMA", 9: "fill pages", 10: "protect VMA", 11: "prctl(PR_SET_MM_MAP)",
  12: "rt_sigaction", 13: "setitimer", 14: "rseq", 15: "misc", 16: "rt_sigreturn", 17: "setsid/setpgid",
  18: "fork a child", 19: "re-create a zombie",
};

export const CHECK_FIELDS = [
  "ptrace_seize", "ptrace_interrupt", "process_vm_readv", "clone3_set_tid", "pidfd_open", "pidfd_getfd",
  "rseq_config", "userfaultfd", "memfd_create", "prctl_mm_map", "pagemap_scan", "soft_dirty", "xstate_size",
] as const;
export type CheckField = (typeof CHECK_FIELDS)[number];
export const CHECK_REPORT_SIZE = 56;

/** Field order of zig's abi.Layout (u32 each). */
export const LAYOUT_FIELDS = [
  "abi_version", "size_user_regs", "size_thread_state", "off_thread_state_regs", "off_thread_state_sigmask",
  "off_thread_state_rseq_ptr", "off_thread_state_robust_head", "off_thread_state_xstate", "size_parasite_state",
  "off_parasite_itimers", "off_parasite_altstack", "off_parasite_tid_address", "off_parasite_brk", "off_parasite_err",
  "size_plan_header", "size_plan_vma", "size_plan_pages", "size_plan_file", "size_plan_special", "off_plan_special",
  "off_plan_mm", "off_plan_auxv_off", "off_plan_sigactions", "off_plan_itimers", "off_plan_personality",
  "off_plan_rseq_ptr", "off_plan_sigmask", "off_plan_altstack", "off_plan_regs", "off_plan_xstate_off", "off_plan_sid",
  "size_status_record", "size_check_report", "off_plan_sigpending_off", "off_plan_comm", "off_plan_umask",
  "off_plan_file_shared", "size_tree_header", "size_tree_task", "off_tree_inherited_rseq_ptr", "off_status_pid",
  "size_digest", "off_digest_hash", "size_scan_vma", "off_scan_vma_anon_only",
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
  off_parasite_altstack: ParasiteState.altstack,
  off_parasite_tid_address: ParasiteState.tid_address,
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
  off_plan_rseq_ptr: PlanHeader.rseq_ptr,
  off_plan_sigmask: PlanHeader.sigmask,
  off_plan_altstack: PlanHeader.altstack,
  off_plan_regs: PlanHeader.regs,
  off_plan_xstate_off: PlanHeader.xstate_off,
  off_plan_sid: PlanHeader.sid,
  size_status_record: StatusRecord.size,
  size_check_report: CHECK_REPORT_SIZE,
  off_plan_sigpending_off: PlanHeader.sigpending_off,
  off_plan_comm: PlanHeader.comm,
  off_plan_umask: PlanHeader.umask,
  off_plan_file_shared: PlanFile.shared,
  size_tree_header: TreeHeader.size,
  size_tree_task: TreeTask.size,
  off_tree_inherited_rseq_ptr: TreeHeader.inherited_rseq_ptr,
  off_status_pid: StatusRecord.pid,
  size_digest: Digest.size,
  off_digest_hash: Digest.hash,
  size_scan_vma: ScanVma.size,
  off_scan_vma_anon_only: ScanVma.anon_only,
};
