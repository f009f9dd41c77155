//! Finding, in a task's own code, the two instruction sequences cr runs
//! injected code through (see inject.zig): a `syscall; ret` and an
//! rt_sigreturn (`mov $15, %eax` or `mov $15, %rax`, then `syscall`). Every
//! dynamic program has both in ld.so (and libc); static ones in their
//! syscall wrappers and signal trampoline. The code is only read.
const std = @import("std");
const abi = @import("abi");
const sys = @import("sys.zig");
const err = @import("err.zig");

const SYSCALL_RET = [_]u8{ 0x0f, 0x05, 0xc3 };
const SIGRETURN_EAX = [_]u8{ 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
const SIGRETURN_RAX = [_]u8{ 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
/// Read in chunks this big, overlapping by the longest pattern less one byte.
const CHUNK: usize = 64 << 10;
const OVERLAP: usize = SIGRETURN_RAX.len - 1;

pub const Found = struct { syscall_ret: u64 = 0, sigreturn: u64 = 0 };

/// Look for both sequences in `code` (whose first byte is at `base`), filling what is still missing.
pub fn scanBytes(code: []const u8, base: u64, found: *Found) void {
    if (found.syscall_ret == 0) {
        if (std.mem.indexOf(u8, code, &SYSCALL_RET)) |i| found.syscall_ret = base + i;
    }
    if (found.sigreturn == 0) {
        if (std.mem.indexOf(u8, code, &SIGRETURN_EAX)) |i| {
            found.sigreturn = base + i;
        } else if (std.mem.indexOf(u8, code, &SIGRETURN_RAX)) |i| {
            found.sigreturn = base + i;
        }
    }
}

/// Scan the executable `ranges` of `pid`, in the order given, until both are found.
pub fn find(pid: i32, ranges: []const abi.PageRange, found: *Found) i32 {
    var buf: [CHUNK + OVERLAP]u8 = undefined;
    for (ranges) |r| {
        var off: u64 = 0;
        // Bounded: every round moves CHUNK bytes on.
        while (off < r.len) : (off += CHUNK) {
            const n: usize = @intCast(@min(r.len - off, CHUNK + OVERLAP));
            const liov = [_]std.posix.iovec{.{ .base = &buf, .len = n }};
            const riov = [_]std.posix.iovec_const{.{ .base = @ptrFromInt(r.addr + off), .len = n }};
            const got = std.os.linux.process_vm_readv(pid, &liov, &riov, 0);
            // An execute-only mapping cannot be read: go on with the next.
            if (sys.isErr(got)) break;
            scanBytes(buf[0..got], r.addr + off, found);
            if (found.syscall_ret != 0 and found.sigreturn != 0) return 0;
        }
    }
    return err.fail(sys.ENOENT, "no `syscall; ret` or no rt_sigreturn code in the executable mappings of {d}: cr cannot run code in it", .{pid});
}

test "both sequences are found, the first of each, across a chunk's end too" {
    var code = [_]u8{0x90} ** 32;
    @memcpy(code[3..6], &SYSCALL_RET);
    @memcpy(code[10..19], &SIGRETURN_RAX);
    @memcpy(code[20..23], &SYSCALL_RET);
    var only_ret = code;
    @memset(only_ret[10..19], 0x90);
    var f: Found = .{};
    scanBytes(&code, 0x1000, &f);
    try std.testing.expectEqual(@as(u64, 0x1003), f.syscall_ret);
    try std.testing.expectEqual(@as(u64, 0x100a), f.sigreturn);
    var g: Found = .{};
    scanBytes(code[0..12], 0x1000, &g);
    try std.testing.expectEqual(@as(u64, 0), g.sigreturn);
    // The same through process_vm_readv, on our own memory: the missing
    // rt_sigreturn is reported, what was found is kept.
    var h: Found = .{};
    const ranges = [_]abi.PageRange{.{ .addr = @intFromPtr(&only_ret), .len = only_ret.len }};
    try std.testing.expectEqual(@as(i32, -2), find(@intCast(std.os.linux.getpid()), ranges[0..], &h));
    try std.testing.expectEqual(@as(u64, @intFromPtr(&only_ret) + 3), h.syscall_ret);
}
