// The restore tree: the order tasks are created in (parents first), the
// session and group each one sets up, and the one buffer (abi.TreeHeader,
// task table, shared fd table, plans, epoll registrations) libcr forks the
// whole tree from. Pure.
import { CrError } from "../errors.ts";
import * as abi from "../native/abi.ts";
import type { EpollRegistration, TreeImage } from "../images/index.ts";

type TreeTask = TreeImage["tasks"][number];

export interface OrderedTask {
  task: TreeTask;
  /** Index of the parent in the order; -1 for the root. */
  parent: number;
  /** For the plan: setsid() when sid === pid, else inherited. */
  sid: number;
  /** For the plan: 0 = inherited, else setpgid(0, pgid). */
  pgid: number;
}

/**
 * The tasks of `tree` in creation order: the root first, every parent before
 * its children (the dump writes them so; this checks it). Refuses sessions
 * and groups that cannot be re-created by forking alone.
 */
export function orderTasks(tree: TreeImage, rootPid: number): OrderedTask[] {
  const out: OrderedTask[] = [];
  const index = new Map<number, number>();
  for (const [i, t] of tree.tasks.entries()) {
    const bad = (msg: string) => new CrError("restore", msg, { pid: t.pid });
    if (index.has(t.pid)) throw bad("appears twice in tree.cbor");
    let parent = -1;
    let sid = 0;
    let pgid = 0;
    if (i === 0) {
      if (t.pid !== rootPid) throw bad(`tree.cbor starts with ${t.pid}, the inventory's root is ${rootPid}`);
      if (t.state === "zombie") throw bad("the root task is a zombie");
      // Outside the tree there is only cr's own session and group to inherit.
      sid = t.sid;
      pgid = t.pgid === t.pid ? t.pid : 0;
    } else {
      const p = index.get(t.ppid);
      if (p === undefined) throw bad(`its parent ${t.ppid} is not an earlier task of tree.cbor`);
      const pt = out[p]!.task;
      parent = p;
      if (t.sid === t.pid) {
        sid = t.pid;
        pgid = t.pid;
      } else if (t.sid !== pt.sid) {
        throw bad(`unsupported: session ${t.sid} is neither its own nor its parent's (${pt.sid})`);
      } else if (t.pgid === pt.pgid) {
        pgid = 0;
      } else if (t.pgid === t.pid) {
        pgid = t.pid;
      } else {
        const leader = index.get(t.pgid);
        const lt = leader === undefined ? undefined : out[leader]!.task;
        if (!lt || lt.pgid !== lt.pid || lt.sid !== t.sid) {
          throw bad(`unsupported: process group ${t.pgid} is not led by an earlier task of its session`);
        }
        pgid = t.pgid;
      }
    }
    index.set(t.pid, out.length);
    out.push({ task: t, parent, sid, pgid });
  }
  if (out.length === 0) throw new CrError("restore", "tree.cbor has no task");
  return out;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

export interface TreeBufferTask {
  pid: number;
  parent: number;
  zombie: boolean;
  exitStatus: number;
  plan: Uint8Array;
  /** Made by the task once its fds are in place. */
  epolls: readonly EpollRegistration[];
}

/** The buffer of abi.TreeHeader for `tasks` (in order) and the shared fds (ascending). */
export function buildTreeBuffer(tasks: TreeBufferTask[], sharedFds: number[], serviceFdBase: number): Uint8Array {
  const H = abi.TreeHeader;
  const T = abi.TreeTask;
  const tasksOff = align8(H.size);
  const sharedOff = tasksOff + tasks.length * T.size;
  let off = align8(sharedOff + sharedFds.length * 4);
  const planOffs = tasks.map((t) => {
    const o = off;
    off = align8(off + t.plan.length);
    return o;
  });
  const epollOffs = tasks.map((t) => {
    if (t.epolls.length === 0) return 0;
    if (t.epolls.length > abi.MAX_EPOLL_REGS) throw new CrError("restore", `${t.epolls.length} epoll registrations`, { pid: t.pid });
    const o = off;
    off += t.epolls.length * abi.TreeEpoll.size;
    return o;
  });
  const bytes = new Uint8Array(off);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(H.magic, abi.TREE_MAGIC, true);
  dv.setBigUint64(H.total_len, BigInt(off), true);
  dv.setUint32(H.abi_version, abi.ABI_VERSION, true);
  dv.setUint32(H.task_count, tasks.length, true);
  dv.setUint32(H.tasks_off, tasksOff, true);
  dv.setUint32(H.shared_off, sharedOff, true);
  dv.setUint32(H.shared_count, sharedFds.length, true);
  dv.setInt32(H.service_fd_base, serviceFdBase, true);
  tasks.forEach((t, i) => {
    const o = tasksOff + i * T.size;
    dv.setInt32(o + T.pid, t.pid, true);
    dv.setInt32(o + T.parent, t.parent, true);
    dv.setUint32(o + T.plan_off, planOffs[i]!, true);
    dv.setUint32(o + T.plan_len, t.plan.length, true);
    dv.setUint32(o + T.zombie, t.zombie ? 1 : 0, true);
    dv.setInt32(o + T.exit_status, t.exitStatus, true);
    bytes.set(t.plan, planOffs[i]!);
    dv.setUint32(o + T.epoll_off, epollOffs[i]!, true);
    dv.setUint32(o + T.epoll_count, t.epolls.length, true);
    t.epolls.forEach((e, k) => {
      const E = abi.TreeEpoll;
      const at = epollOffs[i]! + k * E.size;
      dv.setInt32(at + E.epfd, e.epfd, true);
      dv.setInt32(at + E.tfd, e.tfd, true);
      dv.setUint32(at + E.events, e.events, true);
      dv.setBigUint64(at + E.data, e.data, true);
    });
  });
  sharedFds.forEach((fd, i) => dv.setInt32(sharedOff + i * 4, fd, true));
  return bytes;
}
