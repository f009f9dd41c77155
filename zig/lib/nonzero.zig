//! Copying a file's non-zero pages into an image (shmem-ID.img for shared
//! memory objects and memfds, ghost-ID.img for deleted files): big holes are
//! skipped (SEEK_DATA: tmpfs knows which pages exist), the rest is read in
//! 1 MiB chunks, and only pages that are not all zeros are written, back to
//! back in runs, one writev per chunk; hashed on the way for the manifest. A Python
//! mmap.mmap(-1, n) is such an object: often large, sparsely touched.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");
const hash = @import("hash.zig");
const linux = std.os.linux;

const PAGE: usize = 4096;
const CHUNK: usize = 1 << 20;
const SEEK_DATA: usize = 3;
const ENXIO: u16 = 6;

/// Pieces of one chunk written with one writev (a chunk has at most CHUNK / PAGE / 2 + 1 runs).
const MAX_IOV: usize = CHUNK / PAGE / 2 + 1;

/// Where the saved pages went: `runs` (capacity), how many, the bytes written and their hash.
const Out = struct {
    fd: i32,
    runs: []abi.PageRun,
    count: usize = 0,
    written: u64 = 0,
    hasher: hash.Hasher = .init(),
    /// Saved but not yet written: pieces of the current chunk.
    iov: [MAX_IOV]std.posix.iovec_const = undefined,
    pending: usize = 0,
    pending_bytes: usize = 0,

    /// Append `data` (whole pages from byte `start` of the source, inside
    /// the current chunk) to the image; flush() writes it.
    fn save(o: *Out, start: u64, data: []const u8) i32 {
        std.debug.assert(data.len > 0 and data.len % PAGE == 0 and o.pending < MAX_IOV);
        const offset = o.written + o.pending_bytes;
        o.hasher.update(data);
        o.iov[o.pending] = .{ .base = data.ptr, .len = data.len };
        o.pending += 1;
        o.pending_bytes += data.len;
        if (o.count > 0) {
            const last = &o.runs[o.count - 1];
            if (last.start + last.pages * PAGE == start and last.offset + last.pages * PAGE == offset) {
                last.pages += data.len / PAGE;
                return 0;
            }
        }
        if (o.count == o.runs.len) return err.fail(sys.E2BIG, "more than {d} runs of pages", .{o.runs.len});
        o.runs[o.count] = .{ .start = start, .pages = data.len / PAGE, .offset = offset };
        o.count += 1;
        return 0;
    }

    /// Write the pieces saved from the current chunk, before it is reused.
    fn flush(o: *Out) i32 {
        var first: usize = 0;
        // Bounded: every round writes at least a byte or fails.
        while (first < o.pending) {
            const w = sys.syscall3(.writev, sys.fdArg(o.fd), @intFromPtr(&o.iov[first]), o.pending - first);
            if (sys.isErr(w)) {
                if (sys.errnoOf(w) == sys.EINTR) continue;
                return err.fail(sys.errnoOf(w), "writing the image failed", .{});
            }
            std.debug.assert(w > 0);
            var left: usize = w;
            while (first < o.pending and left >= o.iov[first].len) : (first += 1) left -= o.iov[first].len;
            if (first < o.pending) {
                o.iov[first].base += left;
                o.iov[first].len -= left;
            }
        }
        o.written += o.pending_bytes;
        o.pending = 0;
        o.pending_bytes = 0;
        return 0;
    }
};

fn isZero(page: *const [PAGE]u8) bool {
    const V = @Vector(64, u8);
    var acc: V = @splat(0);
    var i: usize = 0;
    while (i < PAGE) : (i += 64) acc |= @as(V, page[i..][0..64].*);
    return @reduce(.Or, acc) == 0;
}

/// Copy the non-zero pages of the first `size` bytes of `src` into `out_fd`
/// (from its position), back to back. A last partial page is stored,
/// zero-padded, whatever it holds (readers stop at `size`). `runs` gets
/// where each saved run belongs ([start, pages, offset in the image]) and
/// `count` how many; `digest` the bytes written and their XXH3-128.
pub fn copy(src: i32, out_fd: i32, size: u64, runs: []abi.PageRun, count: *u32, digest: *abi.Digest) i32 {
    const buf_rc = sys.syscall6(.mmap, 0, CHUNK, 3, 0x22, std.math.maxInt(usize), 0);
    if (sys.isErr(buf_rc)) return err.fail(sys.errnoOf(buf_rc), "cannot map the copy buffer", .{});
    defer _ = sys.syscall2(.munmap, buf_rc, CHUNK);
    const buf: [*]u8 = @ptrFromInt(buf_rc);
    var out: Out = .{ .fd = out_fd, .runs = runs };
    var at: u64 = 0;
    // Bounded: each round moves `at` forward by at least a page, or ends.
    while (at < size) {
        // Jump over a hole; a small one is read (as zeros) with the data
        // around it rather than costing two lseeks per page.
        at = nextData(src, at, size) catch |e| return segmentError(e, at);
        if (at >= size) break;
        const want: usize = @intCast(@min(CHUNK, size - at));
        const n = sys.syscall4(.pread64, sys.fdArg(src), buf_rc, want, at);
        if (sys.isErr(n)) {
            if (sys.errnoOf(n) == sys.EINTR) continue;
            return err.fail(sys.errnoOf(n), "reading at {d} failed", .{at});
        }
        // Shorter than its size: it shrank under us, not a consistent copy.
        if (n != want) return err.fail(sys.EIO, "short read at {d} of {d} bytes", .{ at + n, size });
        var p: usize = 0;
        while (p < n) {
            if (n - p < PAGE) {
                // The last partial page of the file: padded.
                std.debug.assert(at + n == size);
                @memset(buf[n..][0 .. PAGE - (n - p)], 0);
                const rc = out.save(at + p, buf[p..][0..PAGE]);
                if (rc != 0) return rc;
                break;
            }
            if (isZero(buf[p..][0..PAGE])) {
                p += PAGE;
                continue;
            }
            var q = p + PAGE;
            while (q + PAGE <= n and !isZero(buf[q..][0..PAGE])) q += PAGE;
            const rc = out.save(at + p, buf[p..q]);
            if (rc != 0) return rc;
            p = q;
        }
        const rc = out.flush();
        if (rc != 0) return rc;
        at += n;
    }
    count.* = @intCast(out.count);
    digest.* = .{ .bytes = out.written, .hash = out.hasher.final() };
    return 0;
}

/// The first byte of data of `fd` at or after `pos` (page aligned), or
/// `size` when there is none. A file system that cannot tell holes is all data.
fn nextData(fd: i32, pos: u64, size: u64) error{Seek}!u64 {
    std.debug.assert(pos % PAGE == 0);
    const d = sys.syscall3(.lseek, sys.fdArg(fd), pos, SEEK_DATA);
    if (sys.isErr(d)) {
        return switch (sys.errnoOf(d)) {
            ENXIO => size,
            sys.EINVAL => pos,
            else => error.Seek,
        };
    }
    // SEEK_DATA from a page-aligned pos lands at pos or after: so does its page.
    const start = d / PAGE * PAGE;
    std.debug.assert(start >= pos);
    return @min(start, size);
}

fn segmentError(e: error{Seek}, pos: u64) i32 {
    return err.fail(sys.EIO, "cannot find the data after {d}: {s}", .{ pos, @errorName(e) });
}

test "holes, zero pages and a partial last page" {
    const src: i32 = @intCast(linux.memfd_create("nonzero-src", 0));
    defer sys.close(src);
    const out_fd: i32 = @intCast(linux.memfd_create("nonzero-out", 0));
    defer sys.close(out_fd);
    // 40 pages and a bit: data in pages 1, 2 (written, but zeros: not saved), 3, 20-22, 40 (partial).
    const size: u64 = 40 * PAGE + 100;
    try std.testing.expect(!sys.isErr(linux.ftruncate(src, @intCast(size))));
    var page: [PAGE]u8 = undefined;
    const put = struct {
        fn at(fd: i32, p: u64, data: []const u8) !void {
            try std.testing.expectEqual(data.len, linux.pwrite(fd, data.ptr, data.len, @intCast(p * PAGE)));
        }
    }.at;
    @memset(&page, 0xa1);
    try put(src, 1, &page);
    @memset(&page, 0);
    try put(src, 2, &page);
    @memset(&page, 0xa3);
    try put(src, 3, &page);
    for (20..23) |p| {
        @memset(&page, @intCast(p));
        try put(src, p, &page);
    }
    try put(src, 40, "tail");

    var runs: [8]abi.PageRun = undefined;
    var count: u32 = 0;
    var d: abi.Digest = undefined;
    try std.testing.expectEqual(@as(i32, 0), copy(src, out_fd, size, &runs, &count, &d));
    try std.testing.expectEqualSlices(abi.PageRun, &.{
        .{ .start = 1 * PAGE, .pages = 1, .offset = 0 },
        .{ .start = 3 * PAGE, .pages = 1, .offset = 1 * PAGE },
        .{ .start = 20 * PAGE, .pages = 3, .offset = 2 * PAGE },
        .{ .start = 40 * PAGE, .pages = 1, .offset = 5 * PAGE },
    }, runs[0..count]);
    try std.testing.expectEqual(@as(u64, 6 * PAGE), d.bytes);
    // The image holds exactly those pages, the last one padded, and the digest is its hash.
    var back: [6 * PAGE]u8 = undefined;
    try std.testing.expectEqual(back.len, linux.pread(out_fd, &back, back.len, 0));
    try std.testing.expectEqual(@as(u8, 0xa1), back[0]);
    try std.testing.expectEqual(@as(u8, 0xa3), back[PAGE]);
    try std.testing.expectEqual(@as(u8, 21), back[3 * PAGE]);
    try std.testing.expectEqualSlices(u8, "tail", back[5 * PAGE ..][0..4]);
    try std.testing.expect(std.mem.allEqual(u8, back[5 * PAGE + 4 ..], 0));
    var h = hash.Hasher.init();
    h.update(&back);
    try std.testing.expectEqualSlices(u8, &h.final(), &d.hash);
    // Too few runs: a clear error, not an overflow.
    try std.testing.expectEqual(@as(i32, -7), copy(src, out_fd, size, runs[0..2], &count, &d));
}
