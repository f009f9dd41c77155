// CRIU's spellings of verbosity and options, as cr takes them.
import { describe, expect, test } from "bun:test";
import { asTyped, normalizeVerbosity } from "../../src/cli-args.ts";

describe("normalizeVerbosity", () => {
  test("-vN sets the level; -v, -vv and --verbose add to CRIU's default 2, up to 4", () => {
    expect(normalizeVerbosity(["dump", "-t", "1", "-v4"])).toEqual(["dump", "-t", "1", "--verbosity", "4"]);
    expect(normalizeVerbosity(["dump", "-v0"])).toEqual(["dump", "--verbosity", "0"]);
    expect(normalizeVerbosity(["dump", "-v"])).toEqual(["dump", "--verbosity", "3"]);
    expect(normalizeVerbosity(["dump", "-vv"])).toEqual(["dump", "--verbosity", "4"]);
    expect(normalizeVerbosity(["dump", "-v", "-v", "-v"])).toEqual(["dump", "--verbosity", "4"]);
    expect(normalizeVerbosity(["dump", "--verbose"])).toEqual(["dump", "--verbosity", "3"]);
    expect(normalizeVerbosity(["dump", "-v9"])).toEqual(["dump", "--verbosity", "4"]);
  });
  test("nothing given, nothing added; other options and values are kept in order", () => {
    expect(normalizeVerbosity(["dump", "-t", "12", "-D", "d", "-o", "dump.log"])).toEqual(["dump", "-t", "12", "-D", "d", "-o", "dump.log"]);
    expect(normalizeVerbosity(["show", "--", "-v"])).toEqual(["show", "--", "-v"]);
  });
});

describe("asTyped", () => {
  test("cac's camel-cased name goes back to what was typed", () => {
    expect(asTyped("Unknown option `--extUnixSk`", ["dump", "--ext-unix-sk", "-t", "1"])).toBe("Unknown option `--ext-unix-sk`");
    expect(asTyped("Unknown option `--fileLocks`", ["dump", "--file-locks=1"])).toBe("Unknown option `--file-locks`");
    expect(asTyped("Unknown option `-x`", ["dump", "-x"])).toBe("Unknown option `-x`");
    expect(asTyped("missing required args for command `show <path>`", ["show"])).toBe("missing required args for command `show <path>`");
  });
});
