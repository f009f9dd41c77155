// After the restorer: each restored thread's registers, signal mask and
// XSAVE state as the kernel holds them (read with ptrace right after its
// rt_sigreturn, before it runs any code of its own) against what the plan
// told the restorer. A difference fails the restore, naming the thread and
// the component: a layout mistake becomes a loud failure, never corruption.
import * as abi from "../native/abi.ts";
import { xstateDifference, type XstateLayout } from "../xstate.ts";

export interface ThreadExpectation {
  tid: number;
  regs: Uint8Array;
  sigmask: bigint;
  /** The frame's fpstate (xstate.ts frameXstate). */
  frame: Uint8Array;
}

export interface ThreadReadBack {
  tid: number;
  regs: Uint8Array;
  sigmask: bigint;
  xstate: Uint8Array;
}

/** What the restorer was told for each thread of a plan, in plan order. */
export function planThreads(plan: Uint8Array): ThreadExpectation[] {
  const dv = new DataView(plan.buffer, plan.byteOffset, plan.byteLength);
  const H = abi.PlanHeader, T = abi.PlanThread;
  const off = dv.getUint32(H.threads_off, true), n = dv.getUint32(H.threads_count, true);
  return Array.from({ length: n }, (_, i) => {
    const o = off + i * T.size;
    const x = dv.getUint32(o + T.xstate_off, true);
    return {
      tid: dv.getInt32(o + T.tid, true),
      regs: plan.slice(o + T.regs, o + T.regs + abi.USER_REGS_SIZE),
      sigmask: dv.getBigUint64(o + T.sigmask, true),
      frame: plan.slice(x, x + dv.getUint32(o + T.xstate_len, true)),
    };
  });
}

/**
 * The flags rt_sigreturn takes from a frame (the kernel's FIX_EFLAGS without
 * RF): CF PF AF ZF SF TF DF OF AC. The others (IF, the fixed bit, ID ...)
 * are the kernel's or the CPU's.
 */
const EFLAGS_RESTORED = 0x40dd5n;

/** The first difference between what thread `want.tid` should hold and what it holds; null if none. */
export function threadDifference(want: ThreadExpectation, got: ThreadReadBack, here: XstateLayout): string | null {
  const w = new DataView(want.regs.buffer, want.regs.byteOffset, want.regs.byteLength);
  const g = new DataView(got.regs.buffer, got.regs.byteOffset, got.regs.byteLength);
  for (const [i, name] of abi.USER_REGS_FIELDS.entries()) {
    // rt_sigreturn sets orig_rax to -1 itself: no syscall to restart.
    if (name === "orig_rax") continue;
    let a = w.getBigUint64(i * 8, true), b = g.getBigUint64(i * 8, true);
    if (name === "eflags") {
      a &= EFLAGS_RESTORED;
      b &= EFLAGS_RESTORED;
    }
    if (a !== b) return `register ${name} is 0x${b.toString(16)}, expected 0x${a.toString(16)}`;
  }
  if (want.sigmask !== got.sigmask) return `signal mask is 0x${got.sigmask.toString(16)}, expected 0x${want.sigmask.toString(16)}`;
  const x = xstateDifference(want.frame, got.xstate, here);
  return x === null ? null : `xstate ${x}`;
}
