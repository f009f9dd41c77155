// Usage errors of the command line: one clear line, exit status 2.
import { describe, expect, test } from "bun:test";
import { cr } from "../helpers/procs.ts";

describe("cr usage errors", () => {
  for (const args of [["show", "-D", "/tmp"], ["dump", "-t", "1", "--bogus"], ["dump", "-t"], ["frobnicate"]]) {
    test(`cr ${args.join(" ")}`, () => {
      const r = cr(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toStartWith("cr: ");
      expect(r.stderr).not.toContain("internal error");
    });
  }
});
