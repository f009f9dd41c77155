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
 *
 * The root's session, when led outside the tree, is cr's own session (the
 * root inherits it). So is its process group when led outside the tree; with
 * --shell-job (tree.external.pgid) every task of that group joins cr's group
 * `crPgid`, as CRIU does, so that the shell running cr restore sees the job's
 * stops through cr. A root that led its own group leads a new one again.
 */
export function orderTasks(tree: TreeImage, rootPid: number, crPgid: number): OrderedTask[] {
  const out: OrderedTask[] = [];
  const index = new Map<number, number>();
  const pids = new Set(tree.tasks.map((t) => t.pid));
  const outsidePgid = tree.external?.pgid;
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
      if (t.pgid === t.pid) pgid = t.pid;
      else if (pids.has(t.pgid)) throw bad(`unsupported: the root is in process group ${t.pgid}, led by one of its descendants`);
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
      } else if (t.pgid === outsidePgid) {
        pgid = crPgid;
      } else if (!pids.has(t.pgid)) {
        const hint = t.pgid === tree.tasks[0]!.pgid && !tree.external ? " (dump with --shell-job)" : " (not supported yet)";
        throw bad(`the leader of its process group ${t.pgid} is outside the dumped tree${hint}`);
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

/** --shell-job: the group the task leading it makes the terminal's foreground, through shared fd `shared` (an index). */
export interface Foreground {
  pgid: number;
  shared: number;
}

/** The buffer of abi.TreeHeader for `tasks` (in order) and the shared fds (ascending). */
export function buildTreeBuffer(tasks: TreeBufferTask[], sharedFds: number[], serviceFdBase: number, fg?: Foreground): Uint8Array {
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
  if (fg) {
    if (!tasks.some((t) => t.pid === fg.pgid && !t.zombie) || fg.shared < 0 || fg.shared >= sharedFds.length) {
      throw new CrError("restore", `foreground group ${fg.pgid} is not led by a live task, or its terminal is not a shared fd`);
    }
    dv.setInt32(H.fg_pgid, fg.pgid, true);
    dv.setInt32(H.fg_tty, fg.shared, true);
  }
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
