//! The image checksum as libcr uses it: XXH3-128 (xxh3.zig) with the bulk
//! loop in AVX2 when the CPU and kernel allow it, else in SSE2; and hashing a
//! file descriptor to EOF.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const xxh3 = @import("xxh3.zig");

extern fn cr_xxh3_blocks_avx2(acc: *xxh3.Acc, data: [*]const u8, n: usize) callconv(.c) void;

const Kernel = enum(u8) { unknown, sse2, avx2 };
/// Decided on first use, on the thread that calls libcr (the only one that hashes).
var kernel: Kernel = .unknown;

fn detect() Kernel {
    const leaf1 = sys.cpuid(1, 0);
    const osxsave = leaf1[2] & (1 << 27) != 0;
    const avx = leaf1[2] & (1 << 28) != 0;
    if (!osxsave or !avx or sys.cpuid(0, 0)[0] < 7) return .sse2;
    // The kernel must save the YMM registers (XCR0 bits 1 and 2), or AVX
    // state would be lost at every context switch.
    if (sys.xgetbv(0) & 0b110 != 0b110) return .sse2;
    const avx2 = sys.cpuid(7, 0)[1] & (1 << 5) != 0;
    return if (avx2) .avx2 else .sse2;
}

fn blocks(acc: *xxh3.Acc, data: [*]const u8, n: usize) callconv(.c) void {
    if (kernel == .unknown) kernel = detect();
    switch (kernel) {
        .avx2 => cr_xxh3_blocks_avx2(acc, data, n),
        .sse2 => xxh3.blocks(acc, data, n),
        .unknown => unreachable,
    }
}

pub const Hasher = xxh3.Hasher(blocks);

/// Read size per call: small enough that the hash finds the data still in L2.
const READ_CHUNK: usize = 256 << 10;

/// Hash `fd` from its position to EOF (the manifest check of restore and
/// `cr show --verify`, and the metadata files at dump time).
pub fn hashFd(fd: i32, out: *abi.Digest) i32 {
    const map_rc = sys.syscall6(.mmap, 0, READ_CHUNK, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(map_rc)) return err.fail(sys.errnoOf(map_rc), "cannot map the hash buffer", .{});
    defer _ = sys.syscall2(.munmap, map_rc, READ_CHUNK);
    const buf: [*]u8 = @ptrFromInt(map_rc);
    var h = Hasher.init();
    var total: u64 = 0;
    while (true) {
        const n = sys.syscall3(.read, sys.fdArg(fd), map_rc, READ_CHUNK);
        if (sys.isErr(n)) {
            if (sys.errnoOf(n) == sys.EINTR) continue;
            return err.fail(sys.errnoOf(n), "reading the file to hash failed", .{});
        }
        if (n == 0) break;
        h.update(buf[0..n]);
        total += n;
    }
    out.* = .{ .bytes = total, .hash = h.final() };
    return 0;
}

test "both builds of the bulk loop match the reference" {
    try xxh3.expectReferenceVectors(xxh3.Hasher(xxh3.blocks));
    if (detect() != .avx2) return error.SkipZigTest;
    try xxh3.expectReferenceVectors(xxh3.Hasher(cr_xxh3_blocks_avx2));
}
