// Preloaded by bun test (bunfig.toml): the test process becomes a child
// subreaper, so tasks restored by `cr restore -d` (whose parent exits) come
// back to it to be reaped instead of to a slow PID 1.
import { setChildSubreaper } from "../../src/native/index.ts";

setChildSubreaper();
