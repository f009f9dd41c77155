// The live progress line of a long dump on a terminal: phase, MiB done of
// the MiB known, MiB/s, time left. Shown only on a TTY, only once the work
// has taken about a second, at most five times a second, and erased when done.

export interface ProgressLine {
  update(doneBytes: number, totalBytes: number): void;
  /** Erase the line (if one was shown). */
  end(): void;
}

const MIB = 2 ** 20;

/** The line's text: "dump: 1536 / 4096 MiB, 2150 MiB/s, 1.2 s left". */
export function progressText(phase: string, done: number, total: number, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? done / MIB / (elapsedMs / 1000) : 0;
  const left = rate > 0 && total > done ? `, ${((total - done) / MIB / rate).toFixed(1)} s left` : "";
  return `${phase}: ${(done / MIB).toFixed(0)} / ${(total / MIB).toFixed(0)} MiB, ${rate.toFixed(0)} MiB/s${left}`;
}

/**
 * A progress line on `out` (a TTY), shown from `afterMs` after its creation
 * on (CR_TEST_PROGRESS_AFTER_MS lets tests see it on short work).
 */
export function progressLine(phase: string, out: { write(s: string): unknown }, afterMs = Number(process.env.CR_TEST_PROGRESS_AFTER_MS ?? 1000)): ProgressLine {
  const start = performance.now();
  let shown = false, lastDraw = Number.NEGATIVE_INFINITY;
  return {
    update(done, total) {
      const now = performance.now();
      if (now - start < afterMs || now - lastDraw < 200) return;
      lastDraw = now;
      shown = true;
      out.write(`\r\x1b[K${progressText(phase, done, total, now - start)}`);
    },
    end() {
      if (shown) out.write("\r\x1b[K");
      shown = false;
    },
  };
}
