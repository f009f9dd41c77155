//! XXH3-128 (xxHash 0.8 with seed 0 and the default secret): the checksum of
//! every image file in manifest.cbor. The manifest guards against accidental
//! corruption (a bad disk, a truncated copy, a flipped bit), not against an
//! attacker who can rewrite the manifest too, so a 128-bit non-cryptographic
//! hash is enough, and XXH3 runs at memory speed on plain SSE2 (libcr is built
//! for baseline x86_64), where SHA-256 without SHA-NI is ~1000 times slower.
//!
//! The digest is the canonical form (high 64 bits then low 64 bits, both big
//! endian), so its hex matches `xxh128sum` and every other XXH3 library.
//!
//! Pure computation, no I/O: this file is compiled twice, into libcr for
//! baseline x86_64 and into an AVX2 object for the bulk loop (see hash.zig,
//! which picks one at run time).
const std = @import("std");

const Block = @Vector(8, u64);
const STRIPE: usize = 64;
/// Stripes between two scrambles: (secret size - stripe) / 8.
const STRIPES_PER_BLOCK: usize = (SECRET.len - STRIPE) / 8;
const BLOCK: usize = STRIPES_PER_BLOCK * STRIPE;
/// Inputs up to this size take the short paths, whose results differ from
/// the long one's.
const MIDSIZE_MAX: usize = 240;

const P32_1: u64 = 0x9E3779B1;
const P32_2: u64 = 0x85EBCA77;
const P32_3: u64 = 0xC2B2AE3D;
const P64_1: u64 = 0x9E3779B185EBCA87;
const P64_2: u64 = 0xC2B2AE3D27D4EB4F;
const P64_3: u64 = 0x165667B19E3779F9;
const P64_4: u64 = 0x85EBCA77C2B2AE63;
const P64_5: u64 = 0x27D4EB2F165667C5;
const PRIME_MX1: u64 = 0x165667919E3779F9;
const PRIME_MX2: u64 = 0x9FB21C651E98DF25;

const SECRET: [192]u8 = .{
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

pub const Digest = [16]u8;

inline fn r64(p: []const u8, off: usize) u64 {
    return std.mem.readInt(u64, p[off..][0..8], .little);
}

inline fn r32(p: []const u8, off: usize) u32 {
    return std.mem.readInt(u32, p[off..][0..4], .little);
}

inline fn mul128(a: u64, b: u64) struct { lo: u64, hi: u64 } {
    const m = @as(u128, a) * b;
    return .{ .lo = @truncate(m), .hi = @truncate(m >> 64) };
}

inline fn fold64(a: u64, b: u64) u64 {
    const m = mul128(a, b);
    return m.lo ^ m.hi;
}

inline fn avalanche3(h0: u64) u64 {
    const h = (h0 ^ (h0 >> 37)) *% PRIME_MX1;
    return h ^ (h >> 32);
}

inline fn avalanche64(h0: u64) u64 {
    var h = (h0 ^ (h0 >> 33)) *% P64_2;
    h = (h ^ (h >> 29)) *% P64_3;
    return h ^ (h >> 32);
}

inline fn mix16(in: []const u8, in_off: usize, s_off: usize) u64 {
    return fold64(r64(in, in_off) ^ r64(&SECRET, s_off), r64(in, in_off + 8) ^ r64(&SECRET, s_off + 8));
}

const H128 = struct {
    lo: u64,
    hi: u64,

    fn canonical(h: H128) Digest {
        var d: Digest = undefined;
        std.mem.writeInt(u64, d[0..8], h.hi, .big);
        std.mem.writeInt(u64, d[8..16], h.lo, .big);
        return d;
    }

    fn mix32(acc: *H128, in: []const u8, a: usize, b: usize, s_off: usize) void {
        acc.lo +%= mix16(in, a, s_off);
        acc.lo ^= r64(in, b) +% r64(in, b + 8);
        acc.hi +%= mix16(in, b, s_off + 16);
        acc.hi ^= r64(in, a) +% r64(in, a + 8);
    }

    fn finish(acc: H128, len: u64) H128 {
        const lo = acc.lo +% acc.hi;
        const hi = (acc.lo *% P64_1) +% (acc.hi *% P64_4) +% (len *% P64_2);
        return .{ .lo = avalanche3(lo), .hi = 0 -% avalanche3(hi) };
    }
};

/// The short paths, for inputs of at most MIDSIZE_MAX bytes.
fn short(in: []const u8) H128 {
    std.debug.assert(in.len <= MIDSIZE_MAX);
    const len: u64 = in.len;
    if (in.len == 0) {
        return .{ .lo = avalanche64(r64(&SECRET, 64) ^ r64(&SECRET, 72)), .hi = avalanche64(r64(&SECRET, 80) ^ r64(&SECRET, 88)) };
    }
    if (in.len <= 3) {
        const c1: u32 = in[0];
        const c2: u32 = in[in.len >> 1];
        const c3: u32 = in[in.len - 1];
        const lo32: u32 = (c1 << 16) | (c2 << 24) | c3 | (@as(u32, @intCast(in.len)) << 8);
        const hi32: u32 = std.math.rotl(u32, @byteSwap(lo32), 13);
        const flip_lo: u64 = r32(&SECRET, 0) ^ r32(&SECRET, 4);
        const flip_hi: u64 = r32(&SECRET, 8) ^ r32(&SECRET, 12);
        return .{ .lo = avalanche64(lo32 ^ flip_lo), .hi = avalanche64(hi32 ^ flip_hi) };
    }
    if (in.len <= 8) {
        const v: u64 = @as(u64, r32(in, 0)) +% (@as(u64, r32(in, in.len - 4)) << 32);
        const keyed = v ^ (r64(&SECRET, 16) ^ r64(&SECRET, 24));
        var m = mul128(keyed, P64_1 +% (len << 2));
        m.hi +%= m.lo << 1;
        m.lo ^= m.hi >> 3;
        m.lo ^= m.lo >> 35;
        m.lo *%= PRIME_MX2;
        m.lo ^= m.lo >> 28;
        return .{ .lo = m.lo, .hi = avalanche3(m.hi) };
    }
    if (in.len <= 16) {
        const flip_lo = r64(&SECRET, 32) ^ r64(&SECRET, 40);
        const flip_hi = r64(&SECRET, 48) ^ r64(&SECRET, 56);
        const v_lo = r64(in, 0);
        var v_hi = r64(in, in.len - 8);
        var m = mul128(v_lo ^ v_hi ^ flip_lo, P64_1);
        m.lo +%= (len - 1) << 54;
        v_hi ^= flip_hi;
        m.hi +%= v_hi +% @as(u64, @as(u32, @truncate(v_hi))) * (P32_2 - 1);
        m.lo ^= @byteSwap(m.hi);
        var h = mul128(m.lo, P64_2);
        h.hi +%= m.hi *% P64_2;
        return .{ .lo = avalanche3(h.lo), .hi = avalanche3(h.hi) };
    }
    var acc = H128{ .lo = len *% P64_1, .hi = 0 };
    if (in.len <= 128) {
        if (in.len > 32) {
            if (in.len > 64) {
                if (in.len > 96) acc.mix32(in, 48, in.len - 64, 96);
                acc.mix32(in, 32, in.len - 48, 64);
            }
            acc.mix32(in, 16, in.len - 32, 32);
        }
        acc.mix32(in, 0, in.len - 16, 0);
        return acc.finish(len);
    }
    var i: usize = 32;
    while (i < 160) : (i += 32) acc.mix32(in, i - 32, i - 16, i - 32);
    acc.lo = avalanche3(acc.lo);
    acc.hi = avalanche3(acc.hi);
    i = 160;
    while (i <= in.len) : (i += 32) acc.mix32(in, i - 32, i - 16, 3 + i - 160);
    // The last 32 bytes, read back to front, against the end of the minimal secret.
    acc.mix32(in, in.len - 16, in.len - 32, 136 - 17 - 16);
    return acc.finish(len);
}

/// The accumulators as they cross between the two builds of this file.
pub const Acc = [8]u64;
/// Consumes `n` whole blocks (BLOCK bytes each) from the start of a block.
pub const BlocksFn = fn (acc: *Acc, data: [*]const u8, n: usize) callconv(.c) void;

inline fn stripe(acc: *Block, data: *align(1) const [STRIPE]u8, s_off: usize) void {
    const d: Block = @bitCast(data.*);
    const k: Block = @bitCast(SECRET[s_off..][0..STRIPE].*);
    const x = d ^ k;
    acc.* +%= (x & @as(Block, @splat(0xffffffff))) *% (x >> @splat(32));
    acc.* +%= @shuffle(u64, d, undefined, [_]i32{ 1, 0, 3, 2, 5, 4, 7, 6 });
}

fn scramble(acc: *Block) void {
    const k: Block = @bitCast(SECRET[SECRET.len - STRIPE ..][0..STRIPE].*);
    acc.* ^= acc.* >> @splat(47);
    acc.* ^= k;
    acc.* *%= @as(Block, @splat(P32_1));
}

/// The bulk of any long input: whole blocks, unrolled with the secret
/// offsets known at compile time. Where nearly all the time goes.
pub fn blocks(acc_out: *Acc, data: [*]const u8, n: usize) callconv(.c) void {
    var acc: Block = acc_out.*;
    for (0..n) |b| {
        const blk = data + b * BLOCK;
        inline for (0..STRIPES_PER_BLOCK) |i| {
            @prefetch(blk + i * STRIPE + 384, .{});
            stripe(&acc, blk[i * STRIPE ..][0..STRIPE], i * 8);
        }
        scramble(&acc);
    }
    acc_out.* = acc;
}

/// Streaming hasher whose whole blocks go through `blocks_fn`. Keeps at least
/// one byte buffered, so that final() always has the last stripe at hand, as
/// the long path needs it.
pub fn Hasher(comptime blocks_fn: BlocksFn) type {
    return struct {
        const Self = @This();
        acc: Block = .{ P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1 },
        /// Stripes consumed since the last scramble.
        stripes: usize = 0,
        buf: [BUF]u8 = undefined,
        buffered: usize = 0,
        total: u64 = 0,

        /// A multiple of the stripe; bigger only means fewer trips through it.
        const BUF: usize = 256;

        pub fn init() Self {
            return .{};
        }

        /// Whole stripes, continuing the block in progress.
        fn consume(self: *Self, data: []const u8) void {
            std.debug.assert(data.len % STRIPE == 0);
            var d = data;
            while (d.len > 0) {
                if (self.stripes == 0 and d.len >= BLOCK) {
                    var acc: Acc = self.acc;
                    blocks_fn(&acc, d.ptr, d.len / BLOCK);
                    self.acc = acc;
                    d = d[d.len / BLOCK * BLOCK ..];
                    continue;
                }
                const n = @min(STRIPES_PER_BLOCK - self.stripes, d.len / STRIPE);
                for (0..n) |i| stripe(&self.acc, d[i * STRIPE ..][0..STRIPE], (self.stripes + i) * 8);
                self.stripes += n;
                d = d[n * STRIPE ..];
                if (self.stripes == STRIPES_PER_BLOCK) {
                    scramble(&self.acc);
                    self.stripes = 0;
                }
            }
        }

        pub fn update(self: *Self, input: []const u8) void {
            self.total += input.len;
            var in = input;
            // Top up the buffer; flush it only when more input follows, so the
            // last byte always stays behind for final().
            if (self.buffered + in.len <= BUF) {
                @memcpy(self.buf[self.buffered..][0..in.len], in);
                self.buffered += in.len;
                return;
            }
            if (self.buffered > 0) {
                const take = BUF - self.buffered;
                @memcpy(self.buf[self.buffered..], in[0..take]);
                in = in[take..];
                self.consume(&self.buf);
                self.buffered = 0;
            }
            std.debug.assert(in.len > 0);
            // Straight from the input: every whole stripe but the one holding the last byte.
            const direct = (in.len - 1) / STRIPE * STRIPE;
            if (direct > 0) {
                self.consume(in[0..direct]);
                // final() needs the 64 bytes before the end even when fewer are left buffered.
                @memcpy(self.buf[BUF - STRIPE ..], in[direct - STRIPE ..][0..STRIPE]);
                in = in[direct..];
            }
            std.debug.assert(in.len > 0 and in.len <= STRIPE);
            @memcpy(self.buf[0..in.len], in);
            self.buffered = in.len;
        }

        pub fn final(self: *const Self) Digest {
            if (self.total <= MIDSIZE_MAX) return short(self.buf[0..self.buffered]).canonical();
            std.debug.assert(self.buffered > 0);
            var copy = self.*;
            // The buffered stripes but the last (partial or whole) one.
            const whole = (self.buffered - 1) / STRIPE * STRIPE;
            copy.consume(self.buf[0..whole]);
            // The last stripe: the 64 input bytes that end the input, some of
            // which may have been consumed already (they were kept at the end of buf).
            var last: [STRIPE]u8 = undefined;
            if (self.buffered >= STRIPE) {
                last = self.buf[self.buffered - STRIPE ..][0..STRIPE].*;
            } else {
                const old = STRIPE - self.buffered;
                @memcpy(last[0..old], self.buf[BUF - old ..]);
                @memcpy(last[old..], self.buf[0..self.buffered]);
            }
            stripe(&copy.acc, &last, SECRET.len - STRIPE - 7);
            return (H128{
                .lo = merge(copy.acc, 11, self.total *% P64_1),
                .hi = merge(copy.acc, SECRET.len - STRIPE - 11, ~(self.total *% P64_2)),
            }).canonical();
        }

        fn merge(acc: Block, s_off: usize, start: u64) u64 {
            var r = start;
            inline for (0..4) |i| r +%= fold64(acc[2 * i] ^ r64(&SECRET, s_off + 16 * i), acc[2 * i + 1] ^ r64(&SECRET, s_off + 16 * i + 8));
            return avalanche3(r);
        }
    };
}

fn hex(d: Digest) [32]u8 {
    return std.fmt.bytesToHex(d, .lower);
}

/// Check a Hasher against the reference implementation, in one update and in
/// odd-sized ones. The tests of every build of the bulk loop call this.
pub fn expectReferenceVectors(comptime H: type) !void {
    // From python-xxhash 4.1.0 (xxHash 0.8.3): xxh3_128_hexdigest of the
    // first n bytes of the pattern below.
    var data: [4096 + 7]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @truncate((i *% 2654435761) >> 11);
    const cases = [_]struct { len: usize, hex: []const u8 }{
        .{ .len = 0, .hex = "99aa06d3014798d86001c324468d497f" },
        .{ .len = 1, .hex = "a6cd5e9392000f6ac44bdff4074eecdb" },
        .{ .len = 2, .hex = "2329c02fe65320a2aa2778c7308049ca" },
        .{ .len = 3, .hex = "ff4aa96893d9413967a4cd1b2f6add25" },
        .{ .len = 4, .hex = "f481082b3c9ccd74acccfef34770552d" },
        .{ .len = 5, .hex = "c40b4943827a5f5457709681ed8d7b58" },
        .{ .len = 7, .hex = "01fa8fe79206b6ae0021141e06e7c2fa" },
        .{ .len = 8, .hex = "d4c2e07218c984296f670bfba3e8dd0e" },
        .{ .len = 9, .hex = "2068e6f51e50e289a32e151a0a82439b" },
        .{ .len = 12, .hex = "0a5d9ad1414431ccc68baf7558b6f7d2" },
        .{ .len = 15, .hex = "b4abb545b9fa066389e4008fc31ba61c" },
        .{ .len = 16, .hex = "bc5b72ed1f2a7eb4db138e72f59fc3d8" },
        .{ .len = 17, .hex = "2426883f9dbae35b8d0269fa29312bcb" },
        .{ .len = 31, .hex = "b78a033632ba097385cf12128b57633d" },
        .{ .len = 32, .hex = "9a912b5e12813b1ee8f9ec8ee04e0a21" },
        .{ .len = 33, .hex = "26d0fccb631b11326a8885fbc4dccc94" },
        .{ .len = 48, .hex = "481d3b07b69db89c58b17ac7dbac1633" },
        .{ .len = 63, .hex = "48b9bcf5d97f6be96ea371e08138f49e" },
        .{ .len = 64, .hex = "f16eaa1447a26e8cccd34d7716185532" },
        .{ .len = 65, .hex = "f6437f6a50911768c34338602cda25ca" },
        .{ .len = 96, .hex = "7220c42b7de9f5a3f5442729426546dc" },
        .{ .len = 97, .hex = "a8196add33c3a38beddccee0d07f9c32" },
        .{ .len = 127, .hex = "0c4fb5fbbcda910671fcd1a82ce885f9" },
        .{ .len = 128, .hex = "c0480df8abe4be76dfb66572874c68bd" },
        .{ .len = 129, .hex = "8d8bb4e2ed44e483d283aeb4db23eafb" },
        .{ .len = 150, .hex = "298e246ae79f63032536183b62f51f72" },
        .{ .len = 159, .hex = "0c669fe1942207e386bf39efce705806" },
        .{ .len = 160, .hex = "bb1eb56cdf2f290cd20b8f270bcd6d10" },
        .{ .len = 161, .hex = "7605bd04151d10afaec223811371b715" },
        .{ .len = 191, .hex = "17bad91b29a2866bdc04b51703896718" },
        .{ .len = 192, .hex = "4c47cb76e73c1a4edf9efe9fe7e9e714" },
        .{ .len = 193, .hex = "0973f844b59a57bd385afe54fb281d76" },
        .{ .len = 200, .hex = "eb1334736245e78bea93924997060376" },
        .{ .len = 224, .hex = "4f4ab1afbb17b7a25a072f5067c3b14e" },
        .{ .len = 239, .hex = "a188119c59cdfdd724d80e938308d394" },
        .{ .len = 240, .hex = "013ee6c9e8416d2af7edf23d214d3731" },
        .{ .len = 241, .hex = "90011bc3345a97bce1b13e283f955891" },
        .{ .len = 255, .hex = "b72cedf3aa553cdd21445affabcaf6fc" },
        .{ .len = 256, .hex = "26b65aadf4790844c0173b15f41067b7" },
        .{ .len = 257, .hex = "a1ea04a57e9e4d082ad040dedb9d2e67" },
        .{ .len = 300, .hex = "9f8527ab359873a53a29f225fdaf0333" },
        .{ .len = 319, .hex = "f4e16aa1ff86700766bbd917a34ee9b5" },
        .{ .len = 320, .hex = "6c8b3db9d01f32f5d087695948c42fc2" },
        .{ .len = 321, .hex = "5fcf09530bfac6ab1237a3526751fd00" },
        .{ .len = 511, .hex = "99bf6e9ded9d7244d8dcb82bc68cf8f1" },
        .{ .len = 512, .hex = "c116750eb55757ad2781483b32ee83e6" },
        .{ .len = 513, .hex = "5584bd47a1d6d011bab8c9a1cb750450" },
        .{ .len = 1023, .hex = "5d166ffa9c63950109432c825c6e9ced" },
        .{ .len = 1024, .hex = "2afb04698d1a1d8f7809d9a56ad93ddf" },
        .{ .len = 1025, .hex = "b91100f2927495422b6db20917198ae5" },
        .{ .len = 1087, .hex = "cf20ccb5ca46cf48910ef07cd8e4ddef" },
        .{ .len = 1088, .hex = "72004217daab58c484d9f4e8c877688f" },
        .{ .len = 1089, .hex = "f47bb08147f9b5e9dc9fd35852a1a79d" },
        .{ .len = 2047, .hex = "478a8e4b76307599ee0c6fcba0ec7c0c" },
        .{ .len = 2048, .hex = "acd50509b8fc7ffe96a7c60af605f5f1" },
        .{ .len = 2049, .hex = "43024128fb086af5645d39e21927392d" },
        .{ .len = 3000, .hex = "fd951f4428b9534a56928e4ae13399b2" },
        .{ .len = 4096, .hex = "63a094a7bdedf8ececb1d08e49e516e4" },
        .{ .len = 4103, .hex = "50440da5f840abed481a4ff0d5c62bdc" },
    };
    for (cases) |c| {
        var one = H.init();
        one.update(data[0..c.len]);
        try std.testing.expectEqualStrings(c.hex, &hex(one.final()));
        var h = H.init();
        var off: usize = 0;
        var step: usize = 1;
        while (off < c.len) : (step = step * 3 % 97 + 1) {
            const n = @min(step, c.len - off);
            h.update(data[off..][0..n]);
            off += n;
        }
        try std.testing.expectEqualStrings(c.hex, &hex(h.final()));
    }
}

test "xxh3-128 matches the reference for every path" {
    try expectReferenceVectors(Hasher(blocks));
}
