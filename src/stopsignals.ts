// While cr holds a tree (frozen for a dump, half-built by a restore), the
// signals that ask it to stop (SIGHUP, SIGINT, SIGQUIT, SIGTERM) are only
// noted: dying at once would leave tracees without their tracer, and kill a
// task that runs the parasite at that moment. The work checks between steps
// and gives up cleanly (the dump lets the tree run on, the restore removes
// what it built); cr then exits with 128 + the signal. A signal that comes
// after the last check is raised again once the work is done.
import { CrError } from "./errors.ts";
import * as native from "./native/index.ts";
import { signal as signalName } from "./show/names.ts";

/** Throws, for `op`, once a stop signal came; `what` says what is left as it was. */
export type StopCheck = (what: string) => void;

export function withStopSignalsHeld<T>(op: string, work: (check: StopCheck) => T): T {
  native.holdStopSignals();
  let threw = false;
  try {
    return work((what) => {
      const sig = native.stopSignal();
      if (sig !== 0) throw new CrError(op, `interrupted by ${signalName(sig)}: ${what}`, { signal: sig });
    });
  } catch (e) {
    threw = true;
    throw e;
  } finally {
    const sig = native.releaseStopSignals();
    // Done all the same: let the signal do what it was sent for, now.
    if (sig !== 0 && !threw) process.kill(process.pid, sig);
  }
}
