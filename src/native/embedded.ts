// The native artifacts, embedded into dist/cr by `bun build --compile` (the
// `type: "file"` imports) and read from zig/zig-out when running from source.
import libPath from "../../zig/zig-out/lib/libcr.so" with { type: "file" };
import parasitePath from "../../zig/zig-out/bin/parasite.bin" with { type: "file" };
import restorerPath from "../../zig/zig-out/bin/restorer.bin" with { type: "file" };

export const embedded = { libPath, parasitePath, restorerPath } as const;
