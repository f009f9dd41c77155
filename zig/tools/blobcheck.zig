//! Build-time check of a blob ELF before it is flattened: the blob is copied
//! to an arbitrary address and run without a loader, so it must not need any
//! relocation, must not go through a GOT, and must not have writable data
//! beyond what the flat image carries. Usage: blobcheck IN.elf STAMP
const std = @import("std");

pub fn main() !void {
    var arena_state = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const args = try std.process.argsAlloc(arena);
    if (args.len != 3) return error.Usage;

    const bytes = try std.fs.cwd().readFileAlloc(arena, args[1], 64 << 20);
    if (bytes.len < @sizeOf(std.elf.Elf64_Ehdr)) return error.NotElf;
    const eh: *align(1) const std.elf.Elf64_Ehdr = @ptrCast(bytes.ptr);
    if (!std.mem.eql(u8, eh.e_ident[0..4], "\x7fELF")) return error.NotElf;
    if (eh.e_entry != 0) {
        std.debug.print("{s}: entry point at 0x{x}, expected 0\n", .{ args[1], eh.e_entry });
        return error.EntryNotAtZero;
    }
    const shdrs_ptr: [*]align(1) const std.elf.Elf64_Shdr = @ptrCast(bytes.ptr + eh.e_shoff);
    const shdrs = shdrs_ptr[0..eh.e_shnum];
    const strtab = shdrs[eh.e_shstrndx];
    var bad = false;
    for (shdrs) |sh| {
        const name = std.mem.sliceTo(bytes[strtab.sh_offset + sh.sh_name ..], 0);
        const is_reloc = sh.sh_type == std.elf.SHT_RELA or sh.sh_type == std.elf.SHT_REL;
        const is_got = std.mem.startsWith(u8, name, ".got");
        const is_bss = sh.sh_type == std.elf.SHT_NOBITS;
        if ((is_reloc or is_got or is_bss) and sh.sh_size != 0) {
            std.debug.print("{s}: section {s} has {d} bytes: the blob must be relocation-free, GOT-free and without bss\n", .{ args[1], name, sh.sh_size });
            bad = true;
        }
    }
    if (bad) return error.BlobNotFlat;
    try std.fs.cwd().writeFile(.{ .sub_path = args[2], .data = "ok\n" });
}
