// Fault injection, for the tests: CR_TEST_FAULT=STEP:fail makes cr fail at
// the named step of a dump or restore (as any error there would), and
// CR_TEST_FAULT=STEP:kill makes it SIGKILL itself there (as the OOM killer
// or an operator's kill -9 would). Unset, faultPoint costs one comparison.
import { CrError } from "./errors.ts";

/** The steps, in the order a dump and a restore pass them. */
export const DUMP_STEPS = ["dump:frozen", "dump:collect", "dump:pages", "dump:images", "dump:manifest", "dump:let-go"] as const;
export const RESTORE_STEPS = ["restore:loaded", "restore:files", "restore:spawned", "restore:ready", "restore:seized", "restore:go", "restore:cleaned"] as const;
export type FaultStep = (typeof DUMP_STEPS)[number] | (typeof RESTORE_STEPS)[number];

const wanted = process.env.CR_TEST_FAULT;

/** Fail or die here if CR_TEST_FAULT names this step. */
export function faultPoint(step: FaultStep): void {
  if (wanted === undefined || !wanted.startsWith(`${step}:`)) return;
  if (wanted === `${step}:kill`) process.kill(process.pid, "SIGKILL");
  if (wanted === `${step}:fail`) throw new CrError("fault", `injected failure at ${step}`);
}
