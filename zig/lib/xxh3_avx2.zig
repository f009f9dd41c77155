//! Root of the object that holds the AVX2 build of XXH3's bulk loop (twice
//! as fast as the SSE2 one). build.zig compiles it for baseline x86_64 plus
//! AVX2 only, so AVX and AVX2 are all hash.zig must find in CPUID to call it.
const xxh3 = @import("xxh3.zig");

comptime {
    // Hidden: for hash.zig, not one more entry point of libcr.
    @export(&xxh3.blocks, .{ .name = "cr_xxh3_blocks_avx2", .visibility = .hidden });
}
