//! Which pages of a frozen task to save: the runs of present or swapped pages
//! of each VMA to dump, and in private file mappings only the private
//! (anonymous, copied-on-write) ones; file pages come back from the file.
//!
//! The kernel answers with runs through PAGEMAP_SCAN (6.7+): ~3 ms for 1 GiB,
//! where reading /proc/PID/pagemap (8 bytes per page) and looking at every
//! entry takes ~10 ms in Zig and ~15 ms in TypeScript. Older kernels get the
//! pagemap reading. Both apply the same rule: pagemap's PM_FILE and
//! PAGEMAP_SCAN's PAGE_IS_FILE are the same test (a page that is not anonymous).
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");

const PAGE: u64 = 4096;
const ENOTTY: u16 = 25;

/// PAGEMAP_SCAN: _IOWR('f', 16, struct pm_scan_arg).
pub const PAGEMAP_SCAN: usize = 0xC0606610;
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;

/// struct pm_scan_arg.
pub const ScanArg = extern struct {
    size: u64 = @sizeOf(ScanArg),
    flags: u64 = 0,
    start: u64,
    end: u64,
    walk_end: u64 = 0,
    vec: u64,
    vec_len: u64,
    max_pages: u64 = 0,
    category_inverted: u64 = 0,
    category_mask: u64 = 0,
    category_anyof_mask: u64 = 0,
    return_mask: u64 = 0,
};

/// struct page_region.
const Region = extern struct { start: u64, end: u64, categories: u64 };

/// pagemap entry bits.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

pub const Strategy = enum { scan_ioctl, read_pagemap };

/// The caller's run buffer, filled in address order. Adjacent pages merge
/// into one run, but never across two VMAs (each pagemap entry of the image
/// belongs to one VMA).
const Out = struct {
    runs: []abi.PageRange,
    n: usize = 0,
    new_vma: bool = true,

    /// False when a new run is needed and there is no room: stop, and
    /// resume at `start` next call.
    fn add(self: *Out, start: u64, end: u64) bool {
        std.debug.assert(start < end and start % PAGE == 0 and end % PAGE == 0);
        if (!self.new_vma and self.n > 0) {
            const last = &self.runs[self.n - 1];
            if (last.addr + last.len == start) {
                last.len += end - start;
                return true;
            }
        }
        if (self.n == self.runs.len) return false;
        self.runs[self.n] = .{ .addr = start, .len = end - start };
        self.n += 1;
        self.new_vma = false;
        return true;
    }
};

const Step = union(enum) {
    done,
    /// The run buffer is full: resume at this address.
    full: u64,
    /// The kernel has no PAGEMAP_SCAN.
    unsupported,
    failed: i32,
};

fn scanIoctl(pm_fd: usize, from: u64, to: u64, anon_only: bool, out: *Out) Step {
    var regions: [256]Region = undefined;
    var at = from;
    while (at < to) {
        var arg = ScanArg{
            .start = at,
            .end = to,
            .vec = @intFromPtr(&regions),
            .vec_len = regions.len,
            // In private file mappings: not file pages (inverted, then required).
            .category_inverted = if (anon_only) PAGE_IS_FILE else 0,
            .category_mask = if (anon_only) PAGE_IS_FILE else 0,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        };
        const rc = sys.syscall3(.ioctl, pm_fd, PAGEMAP_SCAN, @intFromPtr(&arg));
        if (sys.isErr(rc)) {
            if (sys.errnoOf(rc) == ENOTTY) return .unsupported;
            return .{ .failed = err.fail(sys.errnoOf(rc), "PAGEMAP_SCAN of 0x{x}-0x{x} failed", .{ at, to }) };
        }
        std.debug.assert(rc <= regions.len);
        for (regions[0..rc]) |r| {
            if (!out.add(r.start, r.end)) return .{ .full = r.start };
        }
        // The walk stops early only when the region vector is full.
        std.debug.assert(arg.walk_end > at and arg.walk_end <= to);
        at = arg.walk_end;
    }
    return .done;
}

fn scanPagemap(pm_fd: usize, from: u64, to: u64, anon_only: bool, out: *Out) Step {
    var entries: [4096]u64 = undefined;
    var at = from;
    while (at < to) {
        const n: usize = @intCast(@min((to - at) / PAGE, entries.len));
        const got = sys.syscall4(.pread64, pm_fd, @intFromPtr(&entries), n * 8, at / PAGE * 8);
        if (sys.isErr(got)) return .{ .failed = err.fail(sys.errnoOf(got), "reading pagemap at 0x{x} failed", .{at}) };
        if (got != n * 8) return .{ .failed = err.fail(sys.EIO, "short read of pagemap at 0x{x}", .{at}) };
        for (entries[0..n], 0..) |e, i| {
            const keep = e & (PM_PRESENT | PM_SWAP) != 0 and !(anon_only and e & PM_FILE != 0);
            if (!keep) continue;
            const addr = at + i * PAGE;
            if (!out.add(addr, addr + PAGE)) return .{ .full = addr };
        }
        at += n * PAGE;
    }
    return .done;
}

/// Fill `runs` with the pages to save of `vmas` (in address order), starting
/// at address `from`. Returns how many runs, and sets `next` to where the
/// next call must start when `runs` filled up, else to 0.
pub fn scan(pid: i32, vmas: []const abi.ScanVma, from: u64, runs: []abi.PageRange, next: *u64, strategy: Strategy) i32 {
    std.debug.assert(runs.len > 0);
    var path_buf: [32]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/pagemap", .{pid}) catch unreachable;
    const fd = sys.syscall4(.openat, sys.fdArg(-100), @intFromPtr(path.ptr), 0o2000000, 0); // O_RDONLY|O_CLOEXEC
    if (sys.isErr(fd)) return err.fail(sys.errnoOf(fd), "cannot open {s}", .{path});
    defer _ = sys.syscall1(.close, fd);

    var how = strategy;
    var out = Out{ .runs = runs };
    next.* = 0;
    for (vmas) |v| {
        std.debug.assert(v.start < v.end and v.start % PAGE == 0 and v.end % PAGE == 0);
        if (v.end <= from) continue;
        out.new_vma = true;
        const start = @max(v.start, from);
        const anon_only = v.anon_only != 0;
        var step = if (how == .scan_ioctl) scanIoctl(fd, start, v.end, anon_only, &out) else scanPagemap(fd, start, v.end, anon_only, &out);
        if (step == .unsupported) {
            how = .read_pagemap;
            step = scanPagemap(fd, start, v.end, anon_only, &out);
        }
        switch (step) {
            .done => {},
            .full => |addr| {
                next.* = addr;
                break;
            },
            .unsupported => unreachable,
            .failed => |rc| return rc,
        }
    }
    return @intCast(out.n);
}

fn expectSameRuns(vmas: []const abi.ScanVma, cap: usize) !void {
    const pid: i32 = @intCast(std.os.linux.getpid());
    var a: [64]abi.PageRange = undefined;
    var b: [64]abi.PageRange = undefined;
    var na: usize = 0;
    var nb: usize = 0;
    inline for (.{ Strategy.scan_ioctl, Strategy.read_pagemap }) |s| {
        const dst = if (s == .scan_ioctl) &a else &b;
        const count = if (s == .scan_ioctl) &na else &nb;
        var from: u64 = 0;
        while (true) {
            var next: u64 = 0;
            const rc = scan(pid, vmas, from, dst[count.*..][0..cap], &next, s);
            try std.testing.expect(rc >= 0);
            count.* += @intCast(rc);
            if (next == 0) break;
            try std.testing.expect(next > from);
            from = next;
        }
    }
    try std.testing.expectEqualSlices(abi.PageRange, a[0..na], b[0..nb]);
}

test "PAGEMAP_SCAN and pagemap agree, also when resumed" {
    const linux = std.os.linux;
    // Anonymous: pages 0-2, 5 and 9 touched, two VMAs back to back (the
    // second one mapped over the end of the first, with other protections).
    const anon = linux.mmap(null, 16 * PAGE, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    try std.testing.expect(!sys.isErr(anon));
    defer _ = linux.munmap(@ptrFromInt(anon), 16 * PAGE);
    const p: [*]u8 = @ptrFromInt(anon);
    for ([_]usize{ 0, 1, 2, 5, 9, 12 }) |i| p[i * PAGE] = 1;
    _ = linux.mprotect(@ptrFromInt(anon + 8 * PAGE), 8 * PAGE, linux.PROT.READ);
    // A private file mapping: pages 0-3 read (file pages), 1 and 2 written (private copies).
    const mfd: i32 = @intCast(linux.memfd_create("scan-test", 0));
    defer sys.close(mfd);
    _ = linux.ftruncate(mfd, 8 * PAGE);
    const file = linux.mmap(null, 8 * PAGE, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE }, mfd, 0);
    try std.testing.expect(!sys.isErr(file));
    defer _ = linux.munmap(@ptrFromInt(file), 8 * PAGE);
    const f: [*]volatile u8 = @ptrFromInt(file);
    for (0..4) |i| _ = f[i * PAGE];
    f[1 * PAGE] = 1;
    f[2 * PAGE] = 1;

    const vmas = [_]abi.ScanVma{
        .{ .start = anon, .end = anon + 8 * PAGE, .anon_only = 0 },
        .{ .start = anon + 8 * PAGE, .end = anon + 16 * PAGE, .anon_only = 0 },
        .{ .start = file, .end = file + 8 * PAGE, .anon_only = 1 },
    };
    // Sorted by address, as the caller passes them.
    var sorted = vmas;
    if (file < anon) sorted = .{ vmas[2], vmas[0], vmas[1] };
    for ([_]usize{ 64, 1, 2 }) |cap| try expectSameRuns(&sorted, cap);

    var runs: [8]abi.PageRange = undefined;
    var next: u64 = 0;
    const n = scan(@intCast(linux.getpid()), &sorted, 0, &runs, &next, .scan_ioctl);
    try std.testing.expectEqual(@as(u64, 0), next);
    // 0-2, 5 | 9, 12 | 1-2 of the file: the VMA boundary splits nothing here
    // but would keep 7-8 apart.
    try std.testing.expectEqual(@as(i32, 5), n);
}
