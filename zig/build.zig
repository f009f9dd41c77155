//! Builds libcr.so (no libc, raw syscalls, loaded by Bun through bun:ffi) and the
//! two freestanding position-independent blobs: parasite.bin (runs inside the
//! frozen victim) and restorer.bin (last stage of restore inside the new task).
const std = @import("std");

pub fn build(b: *std.Build) void {
    const optimize = b.standardOptimizeOption(.{});
    const linux_target = b.resolveTargetQuery(.{ .cpu_arch = .x86_64, .os_tag = .linux, .abi = .none });
    const blob_target = b.resolveTargetQuery(.{ .cpu_arch = .x86_64, .os_tag = .freestanding, .abi = .none });

    const abi = b.createModule(.{ .root_source_file = b.path("abi/abi.zig"), .target = linux_target });

    // libcr.so
    const lib_mod = b.createModule(.{
        .root_source_file = b.path("lib/root.zig"),
        .target = linux_target,
        .optimize = optimize,
        .link_libc = false,
        .pic = true,
        // The page dump's splicer is a thread of libcr's own (lib/pages.zig).
        .single_threaded = false,
        .strip = optimize != .Debug,
    });
    lib_mod.addImport("abi", abi);
    // XXH3's bulk loop again, for AVX2 CPUs: libcr stays baseline x86_64 and
    // lib/hash.zig picks this build at run time when CPUID allows.
    var avx2_query: std.Target.Query = .{ .cpu_arch = .x86_64, .os_tag = .linux, .abi = .none, .cpu_model = .baseline };
    avx2_query.cpu_features_add.addFeature(@intFromEnum(std.Target.x86.Feature.avx2));
    const xxh3_avx2 = b.addObject(.{ .name = "xxh3_avx2", .root_module = b.createModule(.{
        .root_source_file = b.path("lib/xxh3_avx2.zig"),
        .target = b.resolveTargetQuery(avx2_query),
        .optimize = optimize,
        .link_libc = false,
        .pic = true,
        .single_threaded = true,
        .strip = optimize != .Debug,
    }) });
    lib_mod.addObject(xxh3_avx2);
    const lib = b.addLibrary(.{ .name = "cr", .root_module = lib_mod, .linkage = .dynamic });
    b.installArtifact(lib);

    // Blobs and their flatness check.
    const check_tool = b.addExecutable(.{
        .name = "blobcheck",
        .root_module = b.createModule(.{
            .root_source_file = b.path("tools/blobcheck.zig"),
            .target = b.graph.host,
            .optimize = .Debug,
        }),
    });
    for ([_][]const u8{ "parasite", "restorer" }) |name| {
        const blob_abi = b.createModule(.{ .root_source_file = b.path("abi/abi.zig"), .target = blob_target });
        const mod = b.createModule(.{
            .root_source_file = b.path(b.fmt("{s}/main.zig", .{name})),
            .target = blob_target,
            .optimize = .ReleaseSafe,
            .pic = true,
            .red_zone = false,
            .stack_protector = false,
            .stack_check = false,
            // The restorer starts the task's threads and syncs them with
            // atomics, which a single-threaded build would lower to plain ops.
            .single_threaded = !std.mem.eql(u8, name, "restorer"),
            .strip = false,
            .code_model = .small,
        });
        mod.addImport("abi", blob_abi);
        mod.addImport("sys", b.createModule(.{ .root_source_file = b.path("blob/sys.zig"), .target = blob_target }));
        // The parasite hashes the pages it sends (baseline SSE2 build of the bulk loop).
        mod.addImport("xxh3", b.createModule(.{ .root_source_file = b.path("lib/xxh3.zig"), .target = blob_target }));
        const gather = b.createModule(.{ .root_source_file = b.path("lib/gather.zig"), .target = blob_target });
        gather.addImport("abi", blob_abi);
        mod.addImport("gather", gather);
        const elf = b.addExecutable(.{ .name = b.fmt("{s}.elf", .{name}), .root_module = mod });
        elf.pie = true;
        elf.entry = .{ .symbol_name = "blob_entry" };
        elf.setLinkerScript(b.path("blob.ld"));

        const check = b.addRunArtifact(check_tool);
        check.addArtifactArg(elf);
        _ = check.addOutputFileArg(b.fmt("{s}.checked", .{name}));

        const flat = b.addObjCopy(elf.getEmittedBin(), .{ .format = .bin });
        const install = b.addInstallBinFile(flat.getOutput(), b.fmt("{s}.bin", .{name}));
        install.step.dependOn(&check.step);
        b.getInstallStep().dependOn(&install.step);
    }

    // zig build test
    const test_step = b.step("test", "Run the Zig unit tests");
    const lib_tests = b.addTest(.{ .root_module = lib_mod });
    test_step.dependOn(&b.addRunArtifact(lib_tests).step);
    // The shared layouts' own tests (zig/abi: the signal frame's rules).
    const abi_tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("abi/abi.zig"),
        .target = linux_target,
        .optimize = optimize,
    }) });
    test_step.dependOn(&b.addRunArtifact(abi_tests).step);
}
