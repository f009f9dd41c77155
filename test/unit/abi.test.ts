// The TypeScript mirror of zig/abi must agree with what libcr was compiled with.
import { expect, test } from "bun:test";
import { abiLayout } from "../../src/native/index.ts";
import { EXPECTED_LAYOUT, LAYOUT_FIELDS } from "../../src/native/abi.ts";

test("every shared size and offset matches zig/abi", () => {
  const native = abiLayout();
  for (const f of LAYOUT_FIELDS) expect({ field: f, value: native[f] }).toEqual({ field: f, value: EXPECTED_LAYOUT[f] });
});
