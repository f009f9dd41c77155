import { describe, expect, test } from "bun:test";
import { parseTimers, SIGEV_THREAD_ID } from "../../src/proc/timers.ts";

describe("parseTimers", () => {
  test("signal, none and thread-directed timers", () => {
    const text = [
      "ID: 7", "signal: 14/0000000000001234", "notify: signal/pid.15577", "ClockID: 1",
      "ID: 42", "signal: 0/0000000000000000", "notify: none/pid.15577", "ClockID: 0",
      "ID: 3", "signal: 34/00007f00deadbeef", "notify: signal/tid.15580", "ClockID: -6",
      "",
    ].join("\n");
    expect(parseTimers(text)).toEqual([
      { id: 7, signo: 14, sival: 0x1234n, notify: 0, tid: 0, clockId: 1 },
      { id: 42, signo: 0, sival: 0n, notify: 1, tid: 0, clockId: 0 },
      { id: 3, signo: 34, sival: 0x7f00deadbeefn, notify: SIGEV_THREAD_ID, tid: 15580, clockId: -6 },
    ]);
  });

  test("no timers", () => {
    expect(parseTimers("")).toEqual([]);
  });

  test("malformed entries are refused", () => {
    expect(() => parseTimers("signal: 14/0\n")).toThrow("before ID");
    expect(() => parseTimers("ID: 1\nsignal: 14/0\nClockID: 1\n")).toThrow("incomplete");
    expect(() => parseTimers("ID: 1\nsignal: x/0\nnotify: signal/pid.1\nClockID: 1\n")).toThrow("bad signal");
    expect(() => parseTimers("ID: 1\nsignal: 1/0\nnotify: bogus/pid.1\nClockID: 1\n")).toThrow("bad notify");
  });
});
