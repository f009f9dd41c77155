// The live progress line: its text, when it shows, and that it goes away.
import { describe, expect, test } from "bun:test";
import { progressLine, progressText } from "../../src/progress.ts";

const MIB = 2 ** 20;

describe("progressText", () => {
  test("MiB done of known, rate, time left", () => {
    expect(progressText("dump", 1024 * MIB, 4096 * MIB, 500)).toBe("dump: 1024 / 4096 MiB, 2048 MiB/s, 1.5 s left");
    expect(progressText("dump", 4096 * MIB, 4096 * MIB, 2000)).toBe("dump: 4096 / 4096 MiB, 2048 MiB/s");
    expect(progressText("dump", 0, 100 * MIB, 0)).toBe("dump: 0 / 100 MiB, 0 MiB/s");
  });
});

describe("progressLine", () => {
  test("nothing before its delay; then drawn at most every 200 ms; erased at the end", () => {
    const out: string[] = [];
    const w = { write: (s: string) => out.push(s) };
    const late = progressLine("dump", w, 60_000);
    late.update(1, 2);
    late.end();
    expect(out).toEqual([]);
    const now = progressLine("dump", w, 0);
    now.update(MIB, 2 * MIB);
    now.update(MIB, 2 * MIB); // within 200 ms: not drawn again
    expect(out).toHaveLength(1);
    expect(out[0]).toStartWith("\r\x1b[Kdump: 1 / 2 MiB, ");
    now.end();
    expect(out.at(-1)).toBe("\r\x1b[K");
  });
});
